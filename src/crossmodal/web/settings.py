"""What a running web app may accept and who may change the collection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_UPLOAD_MB", "WebSettings"]

DEFAULT_MAX_UPLOAD_MB = 10.0
#: Uploads above this many pixels are refused before their pixels are decoded: a 40 MP photo
#: is larger than any phone camera's, while a 10 MB PNG of one colour can claim 4 gigapixels.
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class WebSettings:
    """`token=None` disables every write endpoint (they answer 401)."""

    token: str | None = None
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: query vectors kept per process; a repeated query then costs a FAISS scan, not a forward
    query_cache_size: int = 2048
    #: answers of text searches kept (JSON, a few KB each), dropped when the catalogue changes
    page_cache_size: int = 4096
    #: text searches of concurrent requests run as one batch (one text-tower forward), at
    #: most; 1: no batching
    max_batch: int = 16
    #: batches of text searches running at once (one torch thread each); default: one per
    #: core (`crossmodal serve --workers N` gives each of its N processes cores / N)
    encode_threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    #: run the text tower in `encode_threads` child processes (crossmodal.web.encoders):
    #: each loads the model's text towers (~0.8 GB for `default`) and starts in ~10 s; on 2
    #: cores ~1.1x the new queries answered per second; `crossmodal serve` turns it on
    child_encoders: bool = False
    #: thumbnails (JPEG bytes, ~10 KB each) kept per process
    thumbnail_cache_size: int = 512
    #: warm the model with one query before serving, so the first user does not pay for it
    warm_up: bool = True

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be positive")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be positive")

    @classmethod
    def from_env(cls) -> WebSettings:
        """Settings handed to uvicorn worker processes (which import the app by name)."""
        token = os.environ.get("CROSSMODAL_TOKEN") or None
        mb = float(os.environ.get("CROSSMODAL_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
        pixels = int(os.environ.get("CROSSMODAL_MAX_PIXELS", DEFAULT_MAX_PIXELS))
        defaults = cls()
        batch = int(os.environ.get("CROSSMODAL_QUERY_BATCH", defaults.max_batch))
        cache = int(os.environ.get("CROSSMODAL_QUERY_CACHE", defaults.query_cache_size))
        threads = int(os.environ.get("CROSSMODAL_ENCODE_THREADS", defaults.encode_threads))
        children = os.environ.get("CROSSMODAL_CHILD_ENCODERS", "0") not in ("", "0")
        return cls(
            token=token,
            max_upload_bytes=int(mb * 1024 * 1024),
            max_pixels=pixels,
            max_batch=batch,
            query_cache_size=cache,
            encode_threads=max(1, threads),
            child_encoders=children,
        )
