"""The README's quick-start `crossmodal index` / `search` commands run as written, from the
repository root, against a tiny collection (only the photo folder, the collection folder and
the model are swapped for test ones; `examples/beach.jpg` is the one the README names)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


def quick_start_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c[:2] in (["crossmodal", "index"], ["crossmodal", "search"])]


def test_readme_names_the_shipped_example_image() -> None:
    searches = [c for c in quick_start_commands() if c[1] == "search"]
    assert any("examples/beach.jpg" in c for c in searches)
    assert (REPO / "examples" / "beach.jpg").stat().st_size < 20_000  # a few KB, not a photo


def test_readme_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "Pictures"
    make_photos(photos, 4)
    collection = tmp_path / "pictures-index"
    monkeypatch.chdir(REPO)
    swap = {"~/Pictures": str(photos), "~/pictures-index": str(collection)}
    commands = quick_start_commands()
    assert [c[1] for c in commands][:1] == ["index"] and len(commands) >= 3
    for command in commands:
        args = [swap.get(a, a) for a in command[1:]]
        if args[0] == "index":
            args += ["--model", str(tiny_model_dir(0)), "-q"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.output)
        assert result.stdout.strip(), command
        if "--json" in args:
            hits = json.loads(result.stdout)
            assert hits and all(Path(h["path"]).parent.parent == photos for h in hits)
    # the same words as text, by --text or by quoting them twice: searched, not refused
    for words in (["--text", "AC/DC live.jpg"], ['"AC/DC live.jpg"']):
        result = runner.invoke(app, ["search", *words, "--collection", str(collection)])
        assert result.exit_code == 0, result.output
