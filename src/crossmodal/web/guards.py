"""What a local server checks before any route runs: the Host header (DNS rebinding) and the
length of the URL, each refused with the API's one error body, `{"detail": "one line"}`."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_URL_BYTES", "RequestGuardMiddleware", "host_allowed", "http_protocol"]

#: Longest path + query answered; a longer one gets 414 (no route takes anything that long:
#: a query is at most 1,000 characters, 3 bytes each when percent-encoded twice over).
MAX_URL_BYTES = 16 * 1024


def host_allowed(host_header: str, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header (`name`, `name:port`, `[v6]:port`) names an allowed host."""
    if "*" in allowed:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8000
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".") in {a.lower().strip("[]") for a in allowed}


class RequestGuardMiddleware:
    """Pure ASGI: refuse a request whose Host is not allowed (400) or whose URL is too long
    (414) before the app sees it.

    A web page elsewhere can make a browser send requests here through DNS rebinding (its
    name re-pointed at 127.0.0.1), and the browser lets it read the answers since they are
    same-origin as far as it knows; but the Host header still carries the page's name.
    """

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if not host_allowed(host, self.allowed_hosts):
            shown = host[:100] or "(none)"
            await send_json(
                send,
                400,
                f"host {shown!r} is not served here: start the server with "
                f"--allowed-host {shown.rsplit(':', 1)[0] if shown != '(none)' else 'NAME'}",
            )
            return
        length = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if length > MAX_URL_BYTES:
            await send_json(
                send, 414, f"the URL is too long ({length:,} bytes; at most {MAX_URL_BYTES:,})"
            )
            return
        await self.app(scope, receive, send)


async def send_json(
    send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An error reply from ASGI middleware, in the API's error schema."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def http_protocol() -> type:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with its one non-JSON
    answer, the 400 for a request its parser refuses (a 100,000-character URL, a header
    line too long, bytes that are not HTTP), sent in the API's error schema instead."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools is a dependency
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]  # (the fallback class of another uvicorn version)

    class JSONErrorsProtocol(Base):
        def send_400_response(self, msg: str) -> None:
            body = json.dumps(
                {"detail": f"{msg.rstrip('.')}: a URL or header too long, or not HTTP/1.1"}
            ).encode()
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return JSONErrorsProtocol
