"""The one exception the web layer raises itself: a request refused with a status and a reason."""

from __future__ import annotations

__all__ = ["Rejected"]


class Rejected(Exception):
    """Answered as `{"detail": detail}` with HTTP `status` (a 4xx, or 503 when busy)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
