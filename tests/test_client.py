"""`server.json`: written and removed by a server, trusted only when alive and of this
collection; `server_text_search` asks it, and says None whenever the caller must search itself."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from crossmodal.client import (
    SERVER_FILE,
    find_server,
    remove_server_file,
    server_text_search,
    write_server_file,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "catalog.sqlite").write_bytes(b"")
    return tmp_path


class _Api(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, list[str]], str | None]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        _Api.seen.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
        body = json.dumps({"results": [{"id": 1, "score": 0.5}], "total": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_written_found_and_removed(folder: Path, api: str) -> None:
    path = write_server_file(folder, api, token="secret", token_reads=False)
    assert path == folder / SERVER_FILE and (path.stat().st_mode & 0o077) == 0
    info = find_server(folder)
    assert info is not None and info["url"] == api and info["token"] is None
    assert server_text_search(folder, "a dog", "t2i", 3) == [{"id": 1, "score": 0.5}]
    route, query, auth = _Api.seen[-1]
    assert route == "/api/search" and query == {"q": ["a dog"], "mode": ["t2i"], "k": ["3"]}
    assert auth is None
    remove_server_file(folder)
    assert not path.exists() and find_server(folder) is None


def test_token_sent_when_reads_need_it(folder: Path, api: str) -> None:
    write_server_file(folder, api, token="secret", token_reads=True)
    assert server_text_search(folder, "x", "t2t", 1) is not None
    assert _Api.seen[-1][2] == "Bearer secret"


def _stale(folder: Path, **change: object) -> None:
    info = json.loads((folder / SERVER_FILE).read_text())
    (folder / SERVER_FILE).write_text(json.dumps({**info, **change}))


def test_a_dead_server_is_ignored(folder: Path, api: str) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_server_file(folder, api, None, False)
    _stale(folder, pid=int(dead.stdout))
    assert find_server(folder) is None and server_text_search(folder, "a", "t2i", 1) is None
    assert not _Api.seen  # not even asked


def test_another_collection_is_ignored(folder: Path, api: str, tmp_path_factory) -> None:
    write_server_file(folder, api, None, False)
    _stale(folder, collection=str(tmp_path_factory.mktemp("other")))
    assert find_server(folder) is None
    _stale(folder, collection=str(folder), catalog="another-inode:0")
    assert find_server(folder) is None


def test_a_server_that_does_not_answer(folder: Path) -> None:
    write_server_file(folder, "http://127.0.0.1:9", None, False)  # nothing listens on 9
    assert find_server(folder) is not None
    assert server_text_search(folder, "a dog", "t2i", 3) is None


def test_garbage_files(folder: Path) -> None:
    (folder / SERVER_FILE).write_text("{not json")
    assert find_server(folder) is None
    (folder / SERVER_FILE).write_text("[1, 2]")
    assert find_server(folder) is None
    remove_server_file(folder)  # not ours: left alone
    assert (folder / SERVER_FILE).exists()
