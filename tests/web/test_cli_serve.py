"""`crossmodal serve`: one clear line and exit 2 for what stops it from starting; a real run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal import Collection
from crossmodal.cli import app
from tests.index.helpers import tiny_model_dir
from tests.web.conftest import free_port

runner = CliRunner()


def test_missing_collection_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["serve", "--collection", str(tmp_path / "nothing"), "--port", str(free_port())]
    )
    assert result.exit_code == 2
    assert "no collection at" in result.output and "Traceback" not in result.output


def test_model_mismatch_exits_2(api_collection: Collection) -> None:
    other = str(tiny_model_dir(1))
    result = runner.invoke(
        app,
        ["serve", "--collection", str(api_collection.path), "--model", other, "--port", "1"],
    )
    assert result.exit_code == 2, result.output
    assert "cannot be used with model" in result.output


def test_busy_port_exits_2(api_collection: Collection) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            app, ["serve", "--collection", str(api_collection.path), "--port", str(port)]
        )
    assert result.exit_code == 2 and "cannot listen" in result.output


def test_bad_limits_exit_2(api_collection: Collection) -> None:
    result = runner.invoke(
        app, ["serve", "--collection", str(api_collection.path), "--max-upload-mb", "0"]
    )
    assert result.exit_code == 2 and "--max-upload-mb" in result.output


def test_serve_runs_and_answers(api_collection: Collection) -> None:
    port = free_port()
    cli = Path(sys.executable).parent / "crossmodal"
    if not cli.is_file():
        pytest.skip(f"{cli} is not installed (pip install -e .)")
    env = {**os.environ, "CROSSMODAL_TOKEN": "from-env"}
    proc = subprocess.Popen(
        [str(cli), "serve", "--collection", str(api_collection.path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180  # model load + warm-up: ~60 s on 2 busy cores
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health") as r:
                    assert r.read() == b'{"status":"ok"}'
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()  # reading the output of a live server would wait forever
                    out = proc.communicate(timeout=20)[0].decode()
                    pytest.fail(f"serve did not come up:\n{out}")
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/capabilities") as r:
            assert b'"write":true' in r.read()  # the token came from CROSSMODAL_TOKEN
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert b"crossmodal" in r.read()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert f"http://127.0.0.1:{port}" in out and "12 images" in out
