"""What the web app adds to the providers: the chat's sessions, video tasks run in the
background (the page polls them), and generated files served by name.

A video takes minutes, longer than a request should: `POST /api/generate/video` (or a video
request in the chat) starts a task on a small thread pool and answers its id at once; the page
polls `GET /api/generate/tasks/{id}` for the status words and the elapsed time the client
reports, then shows the finished video as a card.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmodal.errors import CrossmodalError
from crossmodal.providers import (
    GeneratedMedia,
    ProviderError,
    ProviderNotConfigured,
    ProvidersConfig,
    generate_image,
    generate_video,
    web_search,
)
from crossmodal.web.errors import Rejected

__all__ = ["GenerationDesk", "media_card"]

_NAME = re.compile(r"^[\w.-]+\.(png|jpg|jpeg|webp|mp4|webm)$")


def media_card(media: GeneratedMedia | dict[str, Any]) -> dict[str, Any]:
    """A generated file as the page shows it: its URL under /api/media, prompt and provider."""
    data = media.to_dict() if isinstance(media, GeneratedMedia) else dict(media)
    folder = "images" if data["kind"] == "image" else "videos"
    name = Path(data["path"]).name
    return {
        "kind": data["kind"],
        "url": f"/api/media/{folder}/{name}",
        "prompt": data["prompt"],
        "provider": data["provider"],
        "model": data["model"],
        "task_id": data.get("task_id"),
        "label": "generated / 生成",
    }


@dataclass
class Task:
    id: str
    prompt: str
    status: str = "submitted"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        end = self.finished or time.monotonic()
        return {
            "id": self.id,
            "prompt": self.prompt,
            "status": self.status,
            "elapsed": round(end - self.started, 1),
            "done": self.status in ("success", "failed"),
            "result": self.result,
            "error": self.error,
        }


class GenerationDesk:
    """Generation, web search and video tasks of one server (thread-safe)."""

    def __init__(self, config: ProvidersConfig, max_tasks: int = 200) -> None:
        self.config = config
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="video")
        self.max_tasks = max_tasks

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def image(self, prompt: str) -> dict[str, Any]:
        return media_card(_call(generate_image, prompt, config=self.config))

    def start_video(self, prompt: str, image: bytes | None) -> dict[str, Any]:
        if not self.config.summary()["video"]:
            # say it now, not in a task the page would have to poll to learn it
            raise ProviderNotConfigured(
                "Zhipu BigModel", "no API key; set CROSSMODAL_ZHIPU_API_KEY (or ZHIPUAI_API_KEY)"
            )
        if not " ".join(prompt.split()):
            raise Rejected(422, "prompt: describe what should happen in the video")
        task = Task(uuid.uuid4().hex[:12], prompt)
        with self._lock:
            self._tasks[task.id] = task
            while len(self._tasks) > self.max_tasks:
                self._tasks.popitem(last=False)
        self._pool.submit(self._run_video, task, image)
        return task.to_dict()

    def _run_video(self, task: Task, image: bytes | None) -> None:
        def progress(status: str, elapsed: float) -> None:
            # the provider's SUCCESS comes before the download: the task is done only when
            # its card is ready
            task.status = "downloading" if status == "success" else status

        try:
            media = generate_video(
                task.prompt, image=image, on_progress=progress, config=self.config
            )
            task.result = media_card(media)
            task.status = "success"
        except CrossmodalError as exc:
            task.error = str(exc)
            task.status = "failed"
        except Exception as exc:  # a bug must still end the task the page is polling
            task.error = f"unexpected error: {type(exc).__name__}"
            task.status = "failed"
        finally:
            task.finished = time.monotonic()

    def task(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            raise Rejected(404, f"no generation task {task_id!r} (tasks are kept in memory)")
        return task.to_dict()

    def web_search(self, image: bytes, k: int) -> dict[str, Any]:
        hits = _call(web_search, image, limit=k, config=self.config)
        return {"hits": [h.to_dict() for h in hits], "provider": "baidu"}

    def media_path(self, folder: str, name: str) -> Path:
        if folder not in ("images", "videos") or not _NAME.match(name):
            raise Rejected(404, "no such generated file")
        path = self.config.media_dir / folder / name
        if not path.is_file():
            raise Rejected(404, "no such generated file")
        return path


def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Provider errors as HTTP refusals: no key 400 (what to set), the provider failed 502."""
    try:
        return func(*args, **kwargs)
    except ProviderNotConfigured as exc:
        raise Rejected(400, str(exc)) from None
    except ProviderError as exc:
        raise Rejected(502, str(exc)) from None
