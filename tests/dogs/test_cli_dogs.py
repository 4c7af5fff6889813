"""`crossmodal dogs …`: output shapes, and one clear line + exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crossmodal.cli import app
from tests.conftest import sample_photo
from tests.dogs.test_dataset import _fake_dogs

runner = CliRunner()


def test_identify_json_on_a_non_dog_photo() -> None:
    result = runner.invoke(app, ["dogs", "identify", str(sample_photo("china")), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == [{"image": str(sample_photo("china")), "is_dog": False, "breeds": []}]


def test_identify_plain_output_has_both_names(dogs_root: Path) -> None:
    photo = dogs_root / "images" / "n02085620_10074.jpg"
    result = runner.invoke(app, ["dogs", "identify", str(photo), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "Chihuahua" in result.stdout and "吉娃娃" in result.stdout
    assert result.stdout.count("\n") == 3  # the path, then two breeds


def test_identify_missing_file() -> None:
    result = runner.invoke(app, ["dogs", "identify", "/no/such/dog.jpg"])
    assert result.exit_code == 2
    assert "skipping /no/such/dog.jpg: file not found" in result.output
    assert "crossmodal: error:" in result.output


def test_identify_rejects_bad_top() -> None:
    result = runner.invoke(app, ["dogs", "identify", str(sample_photo("china")), "--top", "0"])
    assert result.exit_code == 2 and "--top" in result.output


def test_ask_text_and_json() -> None:
    result = runner.invoke(app, ["dogs", "ask", "柯基适合家养吗？", "--no-llm"])
    assert result.exit_code == 0, result.output
    assert "柯基" in result.stdout and "依据" in result.stdout
    result = runner.invoke(app, ["dogs", "ask", "How big is a pug?", "--json", "--no-llm"])
    data = json.loads(result.stdout)
    assert data["intent"] == "size" and data["breeds"] == ["pug"] and data["lang"] == "en"


def test_ask_empty_question_is_one_line_exit_2() -> None:
    result = runner.invoke(app, ["dogs", "ask", "   "])
    assert result.exit_code == 2
    assert result.output.strip().startswith("crossmodal: error: the question is empty")


def test_ask_with_a_missing_image() -> None:
    result = runner.invoke(app, ["dogs", "ask", "What breed is this?", "--image", "/no/dog.jpg"])
    assert result.exit_code == 2 and "crossmodal: error:" in result.output


def test_build_dataset_command(tmp_path: Path) -> None:
    images, labels = _fake_dogs(tmp_path)
    out = tmp_path / "out"
    args = ["dogs", "build-dataset", "--images", str(images), "--labels", str(labels)]
    result = runner.invoke(app, [*args, "--out", str(out), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "20 images" in result.stdout and (out / "test.txt").is_file()
    bad = runner.invoke(app, [*args, "--out", str(out), "--lang", "fr"])
    assert bad.exit_code == 2 and "unknown language" in bad.output


def test_build_dataset_from_the_tsinghua_layout(tmp_path: Path) -> None:
    from tests.dogs.test_dataset import _fake_tsinghua

    root = _fake_tsinghua(tmp_path / "thu", per_class=3)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["dogs", "build-dataset", "--tsinghua", str(root), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 3 images of 1 breeds" in result.stdout
    both = runner.invoke(
        app,
        [
            "dogs",
            "build-dataset",
            "--tsinghua",
            str(root),
            "--images",
            str(root),
            "--out",
            str(out),
        ],
    )
    assert both.exit_code == 2 and "not both" in both.output
