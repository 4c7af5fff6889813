"""`crossmodal eval`: one clear line and exit 2 on bad input; corrupt images skipped, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.models.dual import DualEncoder
from tests.conftest import TINY_MODEL_CONFIG, make_image

runner = CliRunner()

TINY = TINY_MODEL_CONFIG


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return DualEncoder(TINY).save(tmp_path_factory.mktemp("model") / "tiny")


def small_dataset(root: Path, corrupt: bool = False) -> Path:
    records = []
    for i, rgb in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]):
        make_image(root / "images" / f"{i}.jpg", rgb)
        records.append({"image": f"{i}.jpg", "captions": [f"caption {i}", f"another {i}"]})
    if corrupt:
        (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
        records.append({"image": "broken.jpg", "captions": ["a broken image"]})
    (root / "captions.json").write_text(json.dumps(records))
    return root


def run(*args: str):
    return runner.invoke(app, list(args))


def test_eval_writes_json_of_the_documented_shape(tmp_path: Path, tiny_model: Path):
    root = small_dataset(tmp_path / "d")
    out = tmp_path / "out.json"
    result = run(
        "eval",
        "--model",
        str(tiny_model),
        "--dataset",
        "captions-json",
        "--root",
        str(root),
        "--split",
        "all",
        "--json",
        str(out),
        "-q",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"model", "dataset", "split", "n_images", "n_texts", "t2i", "i2t", "seconds"} <= set(
        data
    )
    assert (data["n_images"], data["n_texts"]) == (4, 8)
    assert set(data["t2i"]) >= {"R@1", "R@5", "R@10", "MRR", "MedR"}
    assert data["t2i"]["R@5"] == 100.0  # only 4 images: every query hits within 5
    assert "text->image" in result.output


def test_corrupt_image_is_reported_and_skipped(tmp_path: Path, tiny_model: Path):
    root = small_dataset(tmp_path / "d", corrupt=True)
    out = tmp_path / "out.json"
    result = run(
        "eval",
        "--model",
        str(tiny_model),
        "--dataset",
        "captions-json",
        "--root",
        str(root),
        "--split",
        "all",
        "--json",
        str(out),
        "-q",
        "--no-cache",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["n_images"] == 4 and data["n_texts"] == 8  # its caption is dropped too
    assert len(data["skipped"]) == 1 and "broken.jpg" in data["skipped"][0]["path"]
    assert "skipped 1 unreadable image" in result.output and "broken.jpg" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "/nonexistent/flickr"], "dataset root not found"),
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--split", "bogus"], "unknown split"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str):
    root = small_dataset(tmp_path / "d")
    base = ["eval", "--dataset", "captions-json", "--root", str(root), "--split", "all"]
    result = run(*base, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unreadable_model_file_in_a_real_process(tmp_path: Path, tiny_model: Path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 20)
    root = small_dataset(tmp_path / "d")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossmodal",
            "eval",
            "--model",
            str(broken),
            "--dataset",
            "captions-json",
            "--root",
            str(root),
            "--split",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "cannot read" in lines[0] and "Traceback" not in proc.stderr
