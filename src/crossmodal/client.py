"""Asking a running `crossmodal serve` instead of embedding in-process.

`crossmodal serve` writes `server.json` into the collection folder while it listens (its
address, pid, the catalogue's identity and, when reads need it, the token; readable by the
owner only) and removes it on exit. `crossmodal search` with a query the API answers (one
text, t2i or t2t) reads it, checks that the process is alive and serves this very
collection, and asks over HTTP with the standard library: 40-60 ms instead of starting a
model. A stale or foreign file, a server that does not answer within a moment, or any error
means the search runs in-process as before: the file is a hint, never a requirement.

The file also holds the server's local key, a random secret made at each start: a caller
that sends it has read the file, so it may read the collection folder, and the server gives
it full paths (`absolute=true`) as it gives them to a holder of the token. The CLI then
prints without opening the catalogue itself (crossmodal/cli/served.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SERVER_FILE = "server.json"
#: how long a search waits for a server to accept before embedding in-process instead
TIMEOUT_S = 2.0
#: how long it waits for the answer of a server that accepted: loading a model here would
#: take longer than a busy server (on a loaded machine a first query took over 2 s)
ANSWER_TIMEOUT_S = 10.0
#: the request header carrying `server.json`'s local key (full paths without the token)
LOCAL_KEY_HEADER = "X-Crossmodal-Local-Key"


def catalog_identity(folder: Path) -> str | None:
    """What tells one collection from another at the same path: the catalogue file's inode
    (a collection deleted and made again is another file; its mtime changes with every
    write, so it cannot be part of this)."""
    catalog = folder / "catalog.sqlite"
    try:
        stat = catalog.stat()
    except OSError:
        return None
    return f"{stat.st_ino}:{stat.st_dev}"


def write_server_file(
    folder: Path, url: str, token: str | None, token_reads: bool, local_key: str | None = None
) -> Path | None:
    """Announce a server of `folder` (None: the folder cannot be written, nothing announced)."""
    info = {
        "url": url,
        "pid": os.getpid(),
        "collection": str(folder.absolute()),
        "catalog": catalog_identity(folder),
        "token": token if token_reads else None,
        "local_key": local_key,
    }
    path = folder / SERVER_FILE
    tmp = folder / f".{SERVER_FILE}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle)
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def remove_server_file(folder: Path) -> None:
    """Remove the file if it is this process's (a second server may have replaced it)."""
    path = folder / SERVER_FILE
    info = _read(path)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def find_server(folder: Path) -> dict[str, Any] | None:
    """The live server of this collection, from its `server.json`, or None."""
    folder = folder.absolute()
    info = _read(folder / SERVER_FILE)
    if info is None or not isinstance(info.get("url"), str):
        return None
    if info.get("collection") != str(folder) or info.get("catalog") != catalog_identity(folder):
        return None
    return info if _alive(info.get("pid")) else None


def one_text(terms: Sequence[tuple[float, object]], mode: str) -> str | None:
    """The text of a query (`parse_query`'s terms) that the server's `/api/search` answers
    exactly as an in-process search would, or None."""
    if mode not in ("auto", "t2i", "t2t") or len(terms) != 1:
        return None
    weight, item = terms[0]
    if weight != 1 or not isinstance(item, str):
        return None
    from crossmodal.search_options import is_file

    text = item.strip()
    # the server folds runs of spaces; a file-like term is an image query
    if not text or " ".join(text.split()) != text or is_file(item):
        return None
    return text


def server_text_search(
    folder: Path,
    text: str,
    mode: str,
    k: int,
    absolute: bool = False,
    descriptions: bool | None = None,
) -> list[dict[str, Any]] | None:
    """The server's hits (dicts, as `/api/search` gives them) for one text query, or None
    when there is no usable server (the caller then searches in-process). `absolute`: each
    hit's `path` is the full path and `relpath` the one inside its folder (sends the local
    key; None when the server has none, i.e. predates it)."""
    info = find_server(folder)
    if info is None:
        return None
    params: dict[str, Any] = {"q": text, "mode": mode, "k": k}
    headers = {"Accept": "application/json"}
    if info.get("token"):
        headers["Authorization"] = f"Bearer {info['token']}"
    if absolute:
        if not isinstance(info.get("local_key"), str):
            return None
        params["absolute"] = "true"
        headers[LOCAL_KEY_HEADER] = info["local_key"]
    page = _get_json(info["url"], f"/api/search?{urllib.parse.urlencode(params)}", headers)
    results = page.get("results") if isinstance(page, dict) else None
    return results if isinstance(results, list) else None


def _get_json(url: str, target: str, headers: dict[str, str]) -> Any:
    """GET from the server, its JSON answer or None (any status but 200, any doubt).

    One HTTP/1.0 request on a plain socket: `http.client` (with `email` and `ssl`) and
    `urllib.request` take 40-130 ms to import on 2 cores, more than the search itself, and a
    local address is never meant for a proxy. The server (uvicorn) answers an HTTP/1.0
    request with a Content-Length body and closes."""
    address = urllib.parse.urlsplit(url)
    if address.scheme != "http" or not address.hostname:
        return None
    lines = [f"GET {target} HTTP/1.0", f"Host: {address.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        with socket.create_connection((address.hostname, address.port or 80), TIMEOUT_S) as conn:
            conn.settimeout(ANSWER_TIMEOUT_S)
            conn.sendall(request)
            answer = b"".join(iter(lambda: conn.recv(65536), b""))
    except (OSError, UnicodeError):
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    parts = status.split()
    if len(parts) < 2 or parts[1] != "200":
        return None
    named = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (f.partition(":") for f in fields)
    )
    chunked = "chunked" in named.get("transfer-encoding", "").lower()
    if chunked or named.get("content-length", str(len(body))) != str(len(body)):
        return None  # not what the server sends: rather search in-process than guess
    try:
        return json.loads(body)
    except ValueError:
        return None
