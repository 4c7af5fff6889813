"""`crossmodal search` with filters: the options, `--in .`, and one-line refusals (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from tests.index.exif_helpers import write_library
from tests.index.helpers import one_torch_thread, tiny_model_dir

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli-filters")
    write_library(base / "photos")
    col = base / "col"
    args = ["index", str(base / "photos"), "--collection", str(col), "-q"]
    result = runner.invoke(app, [*args, "--model", str(tiny_model_dir(0))])
    assert result.exit_code == 0, result.output
    return col, base / "photos"


def found(col: Path, *args: str) -> set[str]:
    result = runner.invoke(app, ["search", "a photo", "--collection", str(col), "--json", *args])
    assert result.exit_code == 0, result.output
    return {hit["relpath"] for hit in json.loads(result.stdout)}


def test_filters_on_the_command_line(indexed: tuple[Path, Path]):
    col, photos = indexed
    assert found(col, "--camera", "Pixel") == {"a/paris.jpg", "b/nyc.png"}
    assert found(col, "--after", "2024-06", "--gps") == {"b/c/tokyo.webp", "a/fiji.jpg"}
    old_jpegs = found(col, "--no-gps", "--type", "jpeg", "--before", "2023")
    assert old_jpegs == {"b/scan.jpg", "b/big.jpg"}
    assert found(col, "--within", "30,130,40,150") == {"b/c/tokyo.webp"}
    assert found(col, "--in", str(photos / "b" / "c")) == {"b/c/tokyo.webp"}
    assert len(found(col, "--min-size", "1", "--max-size", "1GB")) == 8
    # image -> images, filtered too
    i2i = found(
        col, "--mode", "i2i", str(photos / "a" / "paris.jpg"), "--folder", str(photos / "b")
    )
    assert i2i and all(r.startswith("b/") for r in i2i)


def test_in_dot_is_the_current_folder(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    col, photos = indexed
    monkeypatch.chdir(photos / "a")
    assert found(col, "--in", ".") == {"a/paris.jpg", "a/office.jpg", "a/fiji.jpg",
                                       "a/renamed.png"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--after", "last week"], "--after 'last week': not a date"),
        (["--min-size", "huge"], "--min-size 'huge': not a size"),
        (["--within", "1,2"], "--within '1,2': give four numbers"),
        (["--type", "jpg;png"], "--type 'jpg;png': give file types"),
        (["--within", "1,2,3,4", "--no-gps"], "cannot go with --no-gps"),
    ],
)
def test_bad_filter_values_are_one_line_exit_2(indexed: tuple[Path, Path], args, words):
    col, _ = indexed
    result = runner.invoke(app, ["search", "a photo", "--collection", str(col), *args])
    assert result.exit_code == 2 and words in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_nothing_matching_says_so(indexed: tuple[Path, Path]):
    col, _ = indexed
    result = runner.invoke(
        app, ["search", "a photo", "--collection", str(col), "--camera", "Leica"]
    )
    assert result.exit_code == 2 and "no photo in" in result.stderr
    assert "matches the filters" in result.stderr
