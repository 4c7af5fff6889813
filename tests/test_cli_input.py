"""Bad input to the CLI: one line, a fix, a non-zero exit, and no model loaded for it.

Missing image paths are errors (never silently searched as text), option errors are caught
before any model loads, empty folders / empty collections / a missing default --root say
what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crossmodal.models
from crossmodal.cli import app
from crossmodal.search_options import parse_query
from tests.index.helpers import make_photos, tiny_model_dir

runner = CliRunner()


def one_line_error(result, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crossmodal: error:"), result.stderr
    return lines[0]


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: these errors must come first."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(crossmodal.models, "load_model", refuse)


@pytest.mark.parametrize(
    "terms",
    [
        ["./photos/beach.jpg"],
        ["beach.jpg"],
        ["~/no-such-folder/cat.png"],
        ["photos/dog"],
        ["a dog", "+", "missing.jpg", "-", "snow"],
        ["2:missing.webp"],
    ],
)
def test_missing_image_term_is_an_error(
    terms: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_model: None
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search", *terms, "--collection", str(tmp_path / "col")])
    line = one_line_error(result)
    missing = next(t for t in terms if "." in t or "/" in t).split(":")[-1]
    assert f"no such image: {missing}" in line and "--text" in line


def test_text_flag_and_double_quotes_force_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert parse_query(["AC/DC", "live.jpg"], text_only=True) == [(1.0, "AC/DC live.jpg")]
    assert parse_query(['"AC/DC live"']) == [(1.0, "AC/DC live")]
    assert parse_query(['2:"beach.jpg"', "-", "snow"]) == [(2.0, "beach.jpg"), (-1.0, "snow")]
    (tmp_path / "beach.jpg").write_bytes(b"x")
    # an existing file is still an image, unless --text or quoted
    assert parse_query(["beach.jpg"]) == [(1.0, Path("beach.jpg"))]
    assert parse_query(["beach.jpg"], text_only=True) == [(1.0, "beach.jpg")]
    assert parse_query(['"beach.jpg"']) == [(1.0, "beach.jpg")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a dog", "--mode", "i2t"], "mode i2t searches from an image: the query has no image"),
        (["a dog", "--mode", "i2i"], "the query has no image"),
        (["a dog", "-k", "0"], "k must be a positive number of results (got 0)"),
        (["a dog", "--mode", "sideways"], "unknown mode 'sideways'"),
        (["", " "], "empty query"),
        (["EXAMPLE", "--mode", "t2t"], "mode t2t searches from text: the query has no text"),
    ],
)
def test_option_errors_before_any_model_loads(
    args: list[str], message: str, tmp_path: Path, no_model: None
) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "beach.jpg"
    args = [str(example) if a == "EXAMPLE" else a for a in args]
    start = time.process_time()
    # no collection there either: the option error must win over opening it
    result = runner.invoke(app, ["search", *args, "--collection", str(tmp_path / "none")])
    seconds = time.process_time() - start
    assert message in one_line_error(result)
    # CPU seconds, not wall: the test machine is shared (loading the towers costs several)
    assert seconds < 1.0, f"{seconds:.2f} CPU s before the error"


@pytest.mark.parametrize(
    "args",
    [
        ["search", "a dog", "--mode", "i2t"],
        ["search", "./missing.jpg"],
        ["search", "a dog", "-k", "0"],
    ],
)
def test_option_errors_import_no_torch(args: list[str], tmp_path: Path) -> None:
    """In a fresh interpreter: the error comes before torch (hence any model) is imported."""
    code = (
        "import sys\n"
        "from crossmodal.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "CROSSMODAL_COLLECTION": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout.split() == ["exit", "2", "False"], done.stdout + done.stderr


def test_report_option_errors_before_any_model_loads(tmp_path: Path, no_model: None) -> None:
    start = time.process_time()
    result = runner.invoke(app, ["report", "--trials", "0", "--root", str(tmp_path)])
    assert "--trials must be at least 1 (got 0)" in one_line_error(result)
    result = runner.invoke(app, ["report", "--gallery-sizes", "10,x", "--root", str(tmp_path)])
    assert "--gallery-sizes takes comma-separated numbers" in one_line_error(result)
    assert time.process_time() - start < 1.0  # CPU seconds (a shared machine)


def test_index_missing_folder(tmp_path: Path) -> None:
    col = tmp_path / "col"
    result = runner.invoke(app, ["index", str(tmp_path / "nope"), "--collection", str(col)])
    assert "nope" in one_line_error(result)


def test_index_empty_folder_says_no_photos(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    result = runner.invoke(
        app,
        ["index", str(tmp_path / "empty"), "--collection", str(tmp_path / "col"), "-q",
         "--model", str(tiny_model_dir(0))],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no photos found in" in result.stderr and ".jpg" in result.stderr


def test_search_in_an_empty_collection_fails_with_the_fix(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (only,) = make_photos(photos, 1)
    col = tmp_path / "col"
    index = ["index", str(photos), "--collection", str(col), "-q"]
    assert runner.invoke(app, [*index, "--model", str(tiny_model_dir(0))]).exit_code == 0
    only.unlink()
    again = runner.invoke(app, index)
    assert again.exit_code == 0 and "1 removed" in again.stdout, again.output
    line = one_line_error(runner.invoke(app, ["search", "a dog", "--collection", str(col)]))
    assert "holds no images" in line and f"crossmodal index DIR --collection {col}" in line


def test_eval_outside_a_checkout_names_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(runner.invoke(app, ["eval"]))
    assert "--root" in line and "../shared/data/flickr8k" in line


def test_kaggle_layout_uses_the_packaged_split_lists(tmp_path: Path) -> None:
    """Kaggle's Flickr8k (Images/ + captions.txt, no split lists): the standard test split."""
    from crossmodal.data import load_dataset
    from crossmodal.data.loaders import PACKAGED_FLICKR8K_SPLITS

    names = (PACKAGED_FLICKR8K_SPLITS / "Flickr_8k.testImages.txt").read_text().split()
    assert len(names) == 1000
    root = tmp_path / "kaggle"
    (root / "Images").mkdir(parents=True)
    rows = ["image,caption"]
    for name in names:
        (root / "Images" / name).write_bytes(b"")  # the loader resolves files, never decodes
        rows.append(f"{name},a photo called {name}")
    rows.append("extra_1.jpg,an image in no split")
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    ds = load_dataset("flickr8k", root, "test")
    assert [p.name for p in ds.image_paths] == names
    assert ds.notice and "Flickr_8k.testImages.txt" in ds.notice and "packaged" in ds.notice
    # the CLI says so in one line before anything else (here: before the model fails)
    result = runner.invoke(
        app, ["eval", "--root", str(root), "--model", str(tmp_path / "no-model"), "-q"]
    )
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert "using the standard Flickr8k test list packaged with crossmodal" in first
