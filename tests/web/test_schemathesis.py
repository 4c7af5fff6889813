"""The OpenAPI spec tells the truth (issue 19): schemathesis, with every check it has, against
a live server of its own (writes included: it deletes and annotates), a fixed seed and a
bounded number of examples per operation. Settings that the schema cannot carry (which
operation runs with which token, why an upload of random bytes is refused) are in
tests/web/schemathesis.toml, each with its reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import TOKEN, LiveServer, build_collection

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 7
EXAMPLES = 10  # per operation and phase: ~450 requests, ~40 s on 2 busy cores


def test_schemathesis_all_checks_pass(tmp_path: Path) -> None:
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(cli).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    from crossmodal.web import WebSettings, create_app

    assert TOKEN in CONFIG.read_text()  # the config authenticates as the server's token
    col = build_collection(tmp_path)
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    with LiveServer(app) as server:
        options = ["--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED)]
        options += ["--no-shrink", "--request-timeout", "60", "--workers", "1"]
        run = subprocess.run(
            [cli, "--config-file", str(CONFIG), "run", f"{server.url}/openapi.json", *options],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the repository
        )
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    assert " passed" in summary and "failure" not in summary.split("SUMMARY")[-1], summary
