"""The small interfaces every provider implements, one per capability, and what they return.

A capability is chosen by configuration (`crossmodal.providers.config`), never by the caller:
the chat, the page and the CLI ask `registry.chat_provider()` etc. for "whatever is set up" and
get a `ProviderNotConfigured` naming the variable to set when nothing is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from crossmodal.errors import CrossmodalError

__all__ = [
    "ChatMessage",
    "ChatProvider",
    "GeneratedMedia",
    "ImageGenerator",
    "ProgressCallback",
    "ProviderError",
    "ProviderNotConfigured",
    "VideoGenerator",
    "VideoTask",
    "WebImageHit",
    "WebImageSearch",
]


class ProviderError(CrossmodalError):
    """A provider answered with an error, a malformed reply, or not at all (one clear line)."""

    def __init__(self, provider: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class ProviderNotConfigured(ProviderError):
    """A capability was asked for but no key is set; the message names the variable to set."""


#: {"role": "system" | "user" | "assistant", "content": str}; a user turn may carry `image`
#: (JPEG/PNG bytes) for the vision model, which each client encodes as its protocol wants
ChatMessage = dict[str, Any]

#: called while a long task runs: (status word, seconds elapsed)
ProgressCallback = Callable[[str, float], None]


@dataclass
class GeneratedMedia:
    """An image or video a provider made, saved on disk next to a JSON sidecar."""

    kind: str  # "image" | "video"
    path: Path
    prompt: str
    provider: str
    model: str
    source_url: str | None = None
    cover_url: str | None = None
    task_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".json")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["sidecar"] = str(self.sidecar)
        return out


@dataclass
class VideoTask:
    """One poll of an asynchronous video task."""

    task_id: str
    status: str  # "PROCESSING" | "SUCCESS" | "FAIL" (CogVideoX's task_status words)
    video_url: str | None = None
    cover_url: str | None = None


@dataclass
class WebImageHit:
    """One similar image found on the web: a score in [0, 1], and what the service says of it."""

    score: float
    url: str | None
    title: str | None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ChatProvider(Protocol):
    name: str
    model: str

    def chat(self, messages: list[ChatMessage], *, temperature: float = 0.3) -> str: ...

    def chat_stream(
        self, messages: list[ChatMessage], *, temperature: float = 0.3
    ) -> Iterator[str]: ...


@runtime_checkable
class ImageGenerator(Protocol):
    name: str
    model: str

    def generate_image(
        self, prompt: str, out_dir: Path, *, size: str | None = None
    ) -> GeneratedMedia: ...


@runtime_checkable
class VideoGenerator(Protocol):
    name: str
    model: str

    def submit_video(self, prompt: str, image: bytes | None = None) -> VideoTask: ...

    def poll_video(self, task_id: str) -> VideoTask: ...

    def generate_video(
        self,
        prompt: str,
        out_dir: Path,
        *,
        image: bytes | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GeneratedMedia: ...


@runtime_checkable
class WebImageSearch(Protocol):
    name: str

    def search_similar(self, image: bytes, *, limit: int = 10) -> list[WebImageHit]: ...
