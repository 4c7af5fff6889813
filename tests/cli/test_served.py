"""`crossmodal search` answered by a running server before the CLI loads: the command line is
read as the Typer command reads it, the server is asked with the local key, its hits print in
the very lines of the full command, and anything it cannot reproduce exactly falls through
(None) to the full command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from crossmodal.cli.served import hit_line, parse_search_args, search_through_server
from crossmodal.client import LOCAL_KEY_HEADER, write_server_file
from crossmodal.index.results import SearchHit

KEY = "local-secret"


def _hit(rank: int, path: str, **extra: Any) -> dict[str, Any]:
    hit = {
        "rank": rank,
        "score": 0.5 - rank / 100,
        "id": rank,
        "path": path,
        "text": None,
        "caption": f"caption {rank}",
        "kind": "image",
        "text_id": None,
        "relpath": Path(path).name,
        "thumbnail": f"/api/thumbnail/{rank}",
    }
    return {**hit, **extra}


class _Api(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[dict[str, list[str]], str | None]]] = []
    results: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        _Api.seen.append((query, self.headers.get(LOCAL_KEY_HEADER)))
        body = json.dumps({"results": _Api.results}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A collection folder announcing a (fake) server that holds the local key."""
    (tmp_path / "catalog.sqlite").write_bytes(b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Api.seen.clear()
    _Api.results = [_hit(1, "/photos/a.jpg"), _hit(2, "/photos/b c.jpg", caption=None)]
    url = f"http://127.0.0.1:{server.server_address[1]}"
    write_server_file(tmp_path, url, None, False, KEY)
    yield tmp_path
    server.shutdown()


def test_options_are_read_as_the_typer_command_reads_them() -> None:
    parsed = parse_search_args(["a", "dog", "-k5", "--collection=/c", "--mode", "t2t", "--json"])
    assert parsed == {
        "words": ["a", "dog"],
        "k": 5,
        "collection": "/c",
        "mode": "t2t",
        "as_json": True,
    }
    assert parse_search_args(["--", "-x", "--json"]) == {"words": ["-x", "--json"]}
    assert parse_search_args(["x", "-c", "/c", "-0", "--text"]) == {
        "words": ["x"],
        "collection": "/c",
        "print0": True,
        "text_only": True,
    }


@pytest.mark.parametrize(
    "args",
    [["x", "--help"], ["x", "--model", "m"], ["x", "-k"], ["x", "-k", "two"], ["x", "--json=1"]],
)
def test_what_it_does_not_know_goes_to_the_full_command(args: list[str]) -> None:
    assert parse_search_args(args) is None
    assert search_through_server(["search", *args]) is None


def test_prints_the_full_commands_lines(served: Path, capsys: pytest.CaptureFixture) -> None:
    code = search_through_server(["search", "a dog", "-c", str(served), "-k", "2"])
    assert code == 0
    query, key = _Api.seen[-1]
    assert key == KEY and query["absolute"] == ["true"] and query["q"] == ["a dog"]
    expected = [
        hit_line(SearchHit(**{k: v for k, v in h.items() if k != "thumbnail"}))
        for h in _Api.results
    ]
    assert capsys.readouterr().out.splitlines() == expected
    assert expected[0] == "0.4900\t/photos/a.jpg\tcaption 1"
    assert expected[1] == "0.4800\t/photos/b c.jpg"


def test_json_and_paths(served: Path, capsys: pytest.CaptureFixture) -> None:
    assert search_through_server(["search", "dog", "-c", str(served), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    as_hits = [
        SearchHit(**{k: v for k, v in h.items() if k != "thumbnail"}).to_dict()
        for h in _Api.results
    ]
    assert printed == as_hits and list(printed[0]) == list(as_hits[0])
    assert search_through_server(["search", "dog", "-c", str(served), "--paths-only"]) == 0
    assert capsys.readouterr().out == "/photos/a.jpg\n/photos/b c.jpg\n"


def test_t2t_hits_name_their_image(served: Path, capsys: pytest.CaptureFixture) -> None:
    _Api.results = [_hit(1, "/p/a.jpg", kind="text", text="two\tdogs", text_id=7)]
    assert search_through_server(["search", "dogs", "--mode", "t2t", "-c", str(served)]) == 0
    assert _Api.seen[-1][0]["mode"] == ["t2t"]
    assert capsys.readouterr().out == "0.4900\ttwo dogs\t/p/a.jpg\n"


@pytest.mark.parametrize(
    "results",
    [
        [],  # the full command says the collection is empty
        [{"id": 1, "score": 0.5, "path": "a.jpg"}],  # no full path (an older server)
        [_hit(1, "/p/a.jpg", caption="\x1b[31mred")],  # click would strip the colour
    ],
)
def test_answers_it_cannot_print_exactly_fall_through(served: Path, results: list) -> None:
    _Api.results = results
    assert search_through_server(["search", "dog", "-c", str(served)]) is None


def test_raw_names_need_unescaped_paths(served: Path, capsys: pytest.CaptureFixture) -> None:
    _Api.results = [_hit(1, "/p/caf\\xe9.jpg")]  # the server escaped a byte: unknown here
    assert search_through_server(["search", "dog", "-c", str(served), "-0"]) is None
    _Api.results = [_hit(1, "/p/a.jpg")]
    assert search_through_server(["search", "dog", "-c", str(served), "-0"]) == 0
    assert capsys.readouterr().out == "/p/a.jpg\0"


def test_queries_only_the_server_answers_as_in_process_do_not_ask(served: Path) -> None:
    for words in (["a", "+", "b"], ['2:"dog"'], ["dog", "--mode", "i2i"], ["x", "-k", "0"]):
        assert search_through_server(["search", *words, "-c", str(served)]) is None
    assert search_through_server(["index", "x"]) is None
    assert not _Api.seen


def test_no_server_or_no_key(served: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "catalog.sqlite").write_bytes(b"")
    assert search_through_server(["search", "dog", "-c", str(other)]) is None
    url = json.loads((served / "server.json").read_text())["url"]
    write_server_file(served, url, None, False)  # a server from before the local key
    assert search_through_server(["search", "dog", "-c", str(served)]) is None
    assert not _Api.seen
