"""`crossmodal caption`, `train-captioner`, `eval-captioner`: clear one-line errors, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.models.captioner import WEIGHTS_DIR

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_caption_a_missing_file(tmp_path: Path) -> None:
    line = one_line_error(run("caption", str(tmp_path / "nope.jpg")))
    assert "no such file" in line and "nope.jpg" in line


def test_caption_a_folder(tmp_path: Path) -> None:
    assert "not a file" in one_line_error(run("caption", str(tmp_path)))


def test_caption_needs_an_image() -> None:
    assert run("caption").exit_code == 2


def test_caption_a_corrupt_file(tmp_path: Path) -> None:
    if not (WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.fail("the shipped captioner is missing")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    line = one_line_error(run("caption", str(broken)))
    assert "cannot read image" in line and "broken.jpg" in line


def test_caption_prints_json_for_real_images(flickr8k_root: Path) -> None:
    names = (flickr8k_root / "test.txt").read_text().split()[:2]
    paths = [str(flickr8k_root / "images" / n) for n in names]
    result = run("caption", *paths, "--json", "--beam", "2")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["path"] for r in rows] == paths
    assert all(len(r["caption"].split()) >= 3 for r in rows)


def test_train_captioner_without_its_recipe(tmp_path: Path) -> None:
    line = one_line_error(run("train-captioner", "--config", str(tmp_path / "none.toml")))
    assert "no such recipe file" in line


def test_eval_captioner_with_an_unknown_data_folder(tmp_path: Path) -> None:
    line = one_line_error(run("eval-captioner", "--data", str(tmp_path / "nowhere")))
    assert "not found" in line
