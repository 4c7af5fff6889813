"""`crossmodal --help` and each command's help: the order a newcomer needs, readable metavars,
search examples, every dataset format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.cli.common import DATASET_FORMATS
from crossmodal.data import DATASET_NAMES

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"


def help_of(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_top_level_help_lists_collections_then_dogs_then_training() -> None:
    text = help_of()
    order = ["index", "search", "serve", "dogs", "eval", "report", "train"]
    where = [re.search(rf"^  {name}\s", text, re.M) for name in order]
    assert all(where), text
    positions = [m.start() for m in where if m]
    assert positions == sorted(positions), text
    assert text.index("Collections:") < text.index("Dog edition:") < text.index("Evaluation")


def _all_commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, cmd in group.commands.items():
            found.append((*prefix, name))
            if hasattr(cmd, "commands"):  # a group (Typer's own vendored Click class)
                walk(cmd, (*prefix, name))

    walk(root, ())
    return found


def test_no_type_placeholders_beside_flags() -> None:
    commands = _all_commands()
    assert ("search",) in commands and ("dogs", "identify") in commands
    for command in commands:
        text = help_of(*command)
        assert "<bool>" not in text, (command, text)


def test_search_help_shows_weights_arithmetic_and_text() -> None:
    text = help_of("search")
    assert '2:"golden retriever"' in text
    assert '"a dog" + examples/beach.jpg - snow' in text
    assert "--text" in text and "quote it twice" in text
    assert "-c, --collection FOLDER" in text and "-k, --top N" in text


def test_eval_dataset_help_lists_every_format() -> None:
    text = " ".join(help_of("eval").split())
    for name in DATASET_NAMES:
        assert name in DATASET_FORMATS and name in text, name
    # and every format the README's Datasets section names
    section = README.read_text().split("## Datasets", 1)[1].split("\n## ", 1)[0]
    for fmt in re.findall(r"`([a-z0-9-]+)`", section):
        if fmt in DATASET_NAMES:
            assert fmt in text
    for layout in ("captions.tsv", "Flickr8k.token.txt", "captions.txt", "Karpathy"):
        assert layout in text
