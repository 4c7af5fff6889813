"""What a report states besides its measurements: splits, the model card's hyper-parameters
and training recipe, hardware and versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossmodal.data import load_dataset
from crossmodal.eval import report_facts as rf
from tests.conftest import make_image

REPO = Path(__file__).resolve().parents[2]


def test_the_default_models_recipe_is_found_in_a_checkout():
    recipe = rf.training_recipe("default")
    if not (REPO / rf.BUILTIN_RECIPES["default"]).is_file():
        pytest.skip("not a checkout with recipes/")
    assert recipe is not None
    path, config = recipe
    assert path == rf.BUILTIN_RECIPES["default"]
    assert config["recipe"] == "finetune" and config["embed_dim"] == 512


def test_a_run_folders_config_toml_is_its_recipe(tmp_path: Path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "config.toml").write_text('lr = 0.001\nimage_tower = "lite0"\n')
    assert rf.training_recipe(str(run / "best")) == (
        str(run / "config.toml"),
        {"lr": 0.001, "image_tower": "lite0"},
    )
    assert rf.training_recipe(str(tmp_path / "nothing-here")) is None


def test_split_sizes_of_a_one_file_dataset(tmp_path: Path):
    make_image(tmp_path / "images" / "a.jpg", (200, 10, 10))
    records = [{"image": "a.jpg", "captions": ["red", "a red square"]}]
    (tmp_path / "captions.json").write_text(json.dumps(records))
    ds = load_dataset("captions-json", tmp_path, split="all")
    assert rf.split_sizes(ds) == {"all": {"images": 1, "captions": 2}}


def test_environment_and_hardware_are_described():
    env = rf.environment()
    assert env["python"].count(".") == 2 and env["torch"] != "not installed"
    hw = rf.hardware()
    assert hw["cpu"] and hw["logical_cores"] >= 1 and hw["device_used"] == "cpu"
