"""What a running web app may accept and who may change the collection."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_UPLOAD_MB", "LOCAL_HOSTS", "WebSettings"]

#: the names of this machine's loopback addresses
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

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
    #: Host headers answered (any port); others get 400, so that a web page on another site
    #: cannot reach this server through DNS rebinding. "*" answers any (behind a proxy that
    #: checks it). `crossmodal serve --allowed-host` adds names.
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    #: origins sent CORS headers (none by default: the page is served from the same origin)
    cors_origins: tuple[str, ...] = ()
    #: reads (searches, thumbnails, stats) need the token too
    token_reads: bool = False
    #: uploads decoded at once; more wait (up to `decode_queue` of them), the rest get 503
    decode_slots: int = 2
    decode_queue: int = 8
    #: seconds a waiting upload waits for a decoding slot before its 503
    decode_wait_s: float = 20.0
    #: a secret written only to the collection's owner-only `server.json`: a request carrying
    #: it (crossmodal/client.py) may have full paths without the token
    local_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be positive")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be positive")
        if self.token_reads and not self.token:
            raise ValueError("token_reads needs a token")
        if self.decode_slots < 1 or self.decode_queue < 0:
            raise ValueError("decode_slots must be positive and decode_queue not negative")

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
        hosts = tuple(h for h in os.environ.get("CROSSMODAL_ALLOWED_HOSTS", "").split(",") if h)
        origins = tuple(o for o in os.environ.get("CROSSMODAL_CORS_ORIGINS", "").split(",") if o)
        key = os.environ.get("CROSSMODAL_LOCAL_KEY") or defaults.local_key
        return cls(
            local_key=key,
            allowed_hosts=hosts or LOCAL_HOSTS,
            cors_origins=origins,
            token_reads=os.environ.get("CROSSMODAL_TOKEN_READS", "0") not in ("", "0"),
            token=token,
            max_upload_bytes=int(mb * 1024 * 1024),
            max_pixels=pixels,
            max_batch=batch,
            query_cache_size=cache,
            encode_threads=max(1, threads),
            child_encoders=children,
        )
