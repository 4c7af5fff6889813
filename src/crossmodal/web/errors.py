"""The one exception the web layer raises itself: a request refused with a status and a reason."""

from __future__ import annotations

__all__ = ["Rejected"]


class Rejected(Exception):
    """Answered as `{"detail": detail}` with HTTP `status` (a 4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
