"""Upload handling: a body-size limit enforced before and while a request streams in, and
image decoding that trusts the bytes, not the file name or the Content-Type.

Uploads never touch a path of ours: the body is read into memory (Starlette spools a file part
over 1 MB into an anonymous temporary file, which the OS deletes when it is closed at the end
of the request), decoded from a `BytesIO`, and dropped.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator
from typing import Any

from PIL import Image

from crossmodal.data.images import decode_bytes
from crossmodal.errors import ImageLoadError
from crossmodal.web.errors import Rejected
from crossmodal.web.guards import send_json

__all__ = [
    "MULTIPART_SLACK",
    "UPLOAD_FORMATS",
    "BodyLimitMiddleware",
    "DecodeSlots",
    "decode_image",
    "release_memory",
    "size_text",
    "tune_malloc",
]

#: Formats an upload may be. Pillow identifies more (EPS, for one, runs Ghostscript to
#: decode), and an upload is untrusted input, so only plain raster photo formats are opened.
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

#: Bytes a multipart body may carry beyond the file itself (boundaries, part headers, the
#: small form fields), so that a file of exactly the limit is still accepted.
MULTIPART_SLACK = 64 * 1024


def size_text(n: int) -> str:
    """Bytes as people write them: 10 MB, 97.7 KB."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.3g} MB"
    return f"{n / 1024:.3g} KB"


def decode_image(data: bytes, max_pixels: int, draft_size: int | None = None) -> Image.Image:
    """An upright RGB image from uploaded bytes, or `Rejected` with the reason.

    Decoded by `crossmodal.data.images.decode_bytes`, the decoder of indexed files too (the
    pixel count is read from the header first, so a decompression bomb costs nothing); its
    `ImageLoadError` is mapped here to the HTTP status and the words of an upload."""
    try:
        # (Pillow's warnings are filtered once, in crossmodal.data.images)
        return decode_bytes(data, max_pixels, draft_size, formats=UPLOAD_FORMATS)
    except ImageLoadError as exc:
        raise _rejection(exc, max_pixels) from None


def _rejection(exc: ImageLoadError, max_pixels: int) -> Rejected:
    if exc.kind == "empty":
        return Rejected(400, "the uploaded file is empty")
    if exc.kind == "not_image":
        return Rejected(415, "not an image: upload a JPEG, PNG, WebP, GIF, BMP or TIFF picture")
    if exc.kind == "too_large":
        if exc.size is None:
            return Rejected(
                413, f"image too large: it has more than {max_pixels:,} pixels (the limit)"
            )
        width, height = exc.size
        return Rejected(
            413,
            f"image too large: {width} x {height} pixels exceeds the limit of "
            f"{max_pixels:,} pixels",
        )
    return Rejected(422, f"the image is {exc}")


class DecodeSlots:
    """At most `slots` uploads decoded at once, `queue` more waiting (up to `wait_s`); the
    rest are refused at once with 503 and Retry-After.

    A decoded frame is the one large allocation of a request (a 38 MP PNG: 150 MB, as Pillow
    keeps RGB in 4 bytes a pixel), so this bounds a server's memory by slots x the largest
    accepted frame, whatever the number of clients. After each decode the freed memory is
    handed back to the OS (`release_memory`).
    """

    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        self.slots, self.queue, self.wait_s = slots, queue, wait_s
        self._free = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._inside = 0  # decoding + waiting
        self.refused = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._inside >= self.slots + self.queue:
                self.refused += 1
                raise self._busy()
            self._inside += 1
        try:
            if not self._free.acquire(timeout=self.wait_s):
                with self._lock:
                    self.refused += 1
                raise self._busy()
            try:
                yield
            finally:
                self._free.release()
                release_memory()
        finally:
            with self._lock:
                self._inside -= 1

    def _busy(self) -> Rejected:
        return Rejected(
            503,
            "the server is busy decoding other uploads: try again in a few seconds",
            headers={"Retry-After": "2"},
        )


_libc: Any = None


def tune_malloc() -> None:
    """glibc only: allocations from 4 MB up (a decoded frame's 16 MB blocks) are mapped and
    unmapped each time, so that their memory goes back to the OS when freed. By default the
    threshold moves up to 32 MB after the first such free, and the blocks are then carved out
    of per-thread heaps, which keep them: 8 parallel 38 MP uploads left a server at 5.5 GB."""
    lib = _glibc()
    if lib is not None:
        lib.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD


def release_memory() -> None:
    """Return freed heap memory to the OS (glibc's malloc_trim; elsewhere nothing)."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)


def _glibc() -> Any:
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                lib = ctypes.CDLL("libc.so.6")
                lib.malloc_trim, lib.mallopt  # noqa: B018 -- glibc, not musl
                _libc = lib
    return _libc or None


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413: from Content-Length before reading a
    byte, and, for chunked or lying clients, as soon as the streamed body passes the limit.

    A pure ASGI middleware (not `BaseHTTPMiddleware`) so that it sees the body as it streams.
    When the limit is crossed mid-body, whatever the app does with the aborted read (FastAPI
    turns it into a 400) is discarded and the 413 sent instead.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, "invalid Content-Length header")
                    return
        limit = self.max_bytes
        if declared is not None and declared > limit:
            await _send_json(send, 413, self._message())
            return

        received = 0
        overflow = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if overflow and not started:
                return  # the app's answer to the aborted read: replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if overflow and not started:
            await _send_json(send, 413, self._message())

    def _message(self) -> str:
        allowed = max(0, self.max_bytes - MULTIPART_SLACK)
        return f"upload too large: the limit is {size_text(allowed)} (the server's --max-upload-mb)"


class _BodyTooLarge(Exception):
    pass


async def _send_json(send: Any, status: int, detail: str) -> None:
    # the rest of the body is not read: tell the client not to reuse the connection
    await send_json(send, status, detail, [(b"connection", b"close")])
