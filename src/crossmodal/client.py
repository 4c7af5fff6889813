"""Asking a running `crossmodal serve` instead of embedding in-process.

`crossmodal serve` writes `server.json` into the collection folder while it listens (its
address, pid, the catalogue's identity and, when reads need it, the token; readable by the
owner only) and removes it on exit. `crossmodal search` with a query the API answers (one
text, t2i or t2t) reads it, checks that the process is alive and serves this very
collection, and asks over HTTP with the standard library: 40-60 ms instead of starting a
model. A stale or foreign file, a server that does not answer within a moment, or any error
means the search runs in-process as before: the file is a hint, never a requirement.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SERVER_FILE = "server.json"
#: how long a search waits for a server before embedding in-process instead
TIMEOUT_S = 2.0


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


def write_server_file(folder: Path, url: str, token: str | None, token_reads: bool) -> Path | None:
    """Announce a server of `folder` (None: the folder cannot be written, nothing announced)."""
    info = {
        "url": url,
        "pid": os.getpid(),
        "collection": str(folder.absolute()),
        "catalog": catalog_identity(folder),
        "token": token if token_reads else None,
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


def server_text_search(
    folder: Path, text: str, mode: str, k: int, descriptions: bool | None = None
) -> list[dict[str, Any]] | None:
    """The server's hits (dicts, as `/api/search` gives them) for one text query, or None
    when there is no usable server (the caller then searches in-process)."""
    info = find_server(folder)
    if info is None:
        return None
    params: dict[str, Any] = {"q": text, "mode": mode, "k": k}
    if descriptions is False:
        params["descriptions"] = "false"
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{info['url'].rstrip('/')}/api/search?{query}")
    if info.get("token"):
        request.add_header("Authorization", f"Bearer {info['token']}")
    # a local address: never through a proxy from the environment
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            page = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    results = page.get("results") if isinstance(page, dict) else None
    return results if isinstance(results, list) else None
