"""`crossmodal search` without torch: the first search exports the model's query bundle, later
ones embed through it (torch never imported), and one with a running `crossmodal serve` asks
it; every path prints what the in-process torch search prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.client import SERVER_FILE, find_server
from tests.index.helpers import make_photos, tiny_model_dir
from tests.web.conftest import free_port

pytest.importorskip("openvino")

# the CLI in a fresh process, saying at exit which heavy modules it imported
_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('IMPORTED ' + ' '.join(m for m in "
    "('torch', 'transformers', 'openvino', 'numpy', 'PIL', 'faiss', 'typer') "
    "if m in sys.modules) + '\\n'))\n"
    "from crossmodal.cli import main\n"
    "sys.argv = ['crossmodal', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(collection, photos, environment with a fresh feature cache)."""
    base = tmp_path_factory.mktemp("quick")
    photos = base / "photos"
    make_photos(photos, 6)
    (base / "captions.tsv").write_text("image\tcaption\np000.jpg\ta red card\n")
    col = base / "col"
    args = ["index", str(photos), "--collection", str(col), "--model", str(tiny_model_dir(0))]
    result = CliRunner().invoke(app, [*args, "--captions", str(base / "captions.tsv"), "-q"])
    assert result.exit_code == 0, result.output
    env = {**os.environ, "CROSSMODAL_CACHE": str(base / "cache"), "CROSSMODAL_FAST": "fp32"}
    return col, photos, env


def _search(env: dict[str, str], col: Path, *args: str) -> tuple[list[str], str]:
    cmd = [sys.executable, "-c", _PROBE, "search", *args, "--collection", str(col)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def _in_process(col: Path, *query: str, mode: str = "auto") -> list[str]:
    """What the search printed before the quick path: the collection's torch model."""
    from crossmodal import Collection
    from crossmodal.cli.collection import hit_line
    from crossmodal.search_options import parse_query

    with Collection.open(col, model=str(tiny_model_dir(0))) as collection:
        hits = collection.search(query=parse_query(list(query)), k=4, mode=mode)
    # a hit that descriptions lifted prints its `matched:` lines under it
    return "\n".join(hit_line(h) for h in hits).splitlines()


def _in_process_json(col: Path, query: str) -> list[dict]:
    from crossmodal import Collection
    from crossmodal.search_options import parse_query

    with Collection.open(col, model=str(tiny_model_dir(0))) as collection:
        return [h.to_dict() for h in collection.search(query=parse_query([query]), k=4)]


def test_first_search_exports_then_no_torch(setup) -> None:
    col, photos, env = setup
    first, said = _search(env, col, "a red card", "-k", "4")
    assert "preparing the quick query path" in said
    again, said = _search(env, col, "a red card", "-k", "4")
    assert "preparing" not in said
    imported = said.split("IMPORTED", 1)[1].split()
    assert "torch" not in imported and "transformers" not in imported, said
    assert first == again == _in_process(col, "a red card")
    image = str(next(photos.rglob("p001.jpg")))  # a real photo, not words that look like one
    lines, said = _search(env, col, image, "-k", "4")
    assert "torch" not in said.split("IMPORTED", 1)[1].split()
    assert lines == _in_process(col, image)
    lines, _ = _search(env, col, "a red card", "--mode", "t2t", "-k", "4")
    assert lines == _in_process(col, "a red card", mode="t2t")


def test_search_asks_a_running_server(setup) -> None:
    col, _, env = setup
    _search(env, col, "a card", "-k", "1")  # the bundle exists (the server uses it too)
    port = free_port()
    cli = [sys.executable, "-m", "crossmodal", "serve", "--collection", str(col)]
    server = subprocess.Popen(
        [*cli, "--port", str(port), "--no-access-log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        started = time.monotonic()
        while find_server(col) is None:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() - started < 300, "no server.json"
            time.sleep(0.1)
        lines, said = _search(env, col, "a red card", "-k", "4")
        imported = said.split("IMPORTED", 1)[1].split()
        assert imported == [], said  # answered by the server: not even numpy or typer here
        assert lines == _in_process(col, "a red card")
        as_json, _ = _search(env, col, "a red card", "-k", "4", "--json")
        served, local = json.loads("\n".join(as_json)), _in_process_json(col, "a red card")
        # (the server embeds with its own fast path: scores agree to rounding)
        assert [h.pop("score") for h in served] == pytest.approx(
            [h.pop("score") for h in local], abs=1e-5
        )
        assert served == local
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert "loading model…" in output and f"ready on http://127.0.0.1:{port}" in output
    assert "Loading weights" not in output
    assert not (col / SERVER_FILE).exists()  # removed on exit
    lines, said = _search(env, col, "a red card", "-k", "4")  # none running: in-process
    assert "openvino" in said.split("IMPORTED", 1)[1].split()
    assert lines == _in_process(col, "a red card")
