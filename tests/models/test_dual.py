"""Dual encoder: encode contract, save/load round trip, registry and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossmodal.errors import ModelNotAvailable
from crossmodal.models import load_model
from crossmodal.models.dual import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX, DualEncoder
from tests.conftest import TINY_MODEL_CONFIG

TINY = {**TINY_MODEL_CONFIG, "image_head": {"hidden": 32, "dropout": 0.0}}


@pytest.fixture(scope="module")
def tiny() -> DualEncoder:
    torch.manual_seed(0)
    return DualEncoder(TINY)


def test_encode_contract(tiny: DualEncoder):
    images = [Image.new("RGB", (100, 80), c) for c in [(255, 0, 0), (0, 0, 255), (0, 200, 0)]]
    img = tiny.encode_images(images, batch_size=2)
    txt = tiny.encode_texts(["a red square", "a blue square", "green", "x"], batch_size=3)
    for arr, n in ((img, 3), (txt, 4)):
        assert arr.dtype == np.float32 and arr.shape == (n, 16)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)
    assert tiny.encode_texts([]).shape == (0, 16)
    assert tiny.encode_images([]).shape == (0, 16)


def test_temperature_init_and_cap(tiny: DualEncoder):
    assert float(tiny.logit_scale.detach()) == pytest.approx(LOGIT_SCALE_INIT)
    with torch.no_grad():
        tiny.logit_scale.fill_(10.0)
    tiny.clamp_logit_scale()
    assert float(tiny.logit_scale.detach()) == pytest.approx(LOGIT_SCALE_MAX)
    with torch.no_grad():
        tiny.logit_scale.fill_(LOGIT_SCALE_INIT)


def test_save_load_round_trip(tiny: DualEncoder, tmp_path: Path):
    with torch.no_grad():
        for p in tiny.image_head.parameters():
            p.add_(0.01)
    texts = ["a dog on a beach", "a red car"]
    before = tiny.encode_texts(texts)
    saved = tiny.save(tmp_path / "m")
    assert (saved / "config.json").is_file() and (saved / "model.safetensors").is_file()
    # frozen towers are not saved: the file holds heads and temperature only
    assert (saved / "model.safetensors").stat().st_size < 1_000_000
    loaded = load_model(str(saved), cache=False)
    np.testing.assert_allclose(loaded.encode_texts(texts), before, atol=1e-6)
    assert loaded.fingerprint == tiny.fingerprint
    # a run folder (holding best/) loads too
    (tmp_path / "run").mkdir()
    tiny.save(tmp_path / "run" / "best")
    assert load_model(str(tmp_path / "run"), cache=False).dim == 16


def test_fingerprint_changes_with_heads(tiny: DualEncoder):
    before = tiny.fingerprint
    with torch.no_grad():
        tiny.text_head.linear.bias.add_(1.0)
    assert tiny.fingerprint != before
    with torch.no_grad():
        tiny.text_head.linear.bias.sub_(1.0)


def test_multilingual_routing(tmp_path: Path):
    config = dict(
        TINY,
        multilingual_tower={"type": "use", "feature_dim": 512},
        multilingual_head={"hidden": 0},
    )
    model = DualEncoder(config)
    assert model.route_texts(["a dog", "一只狗", "dog 狗"]) == [False, True, True]
    out = model.encode_texts(["a dog", "一只狗"])
    assert out.shape == (2, 16)
    model.save(tmp_path / "ml")
    again = DualEncoder.load(tmp_path / "ml")
    np.testing.assert_allclose(again.encode_texts(["一只狗"]), out[1:], atol=1e-6)


def test_unknown_model_name():
    with pytest.raises(ModelNotAvailable, match="unknown model 'nope'"):
        load_model("nope", cache=False)


def test_missing_weights_file(tiny: DualEncoder, tmp_path: Path):
    tiny.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelNotAvailable, match=r"no model\.safetensors"):
        load_model(str(tmp_path / "m"), cache=False)


def test_unreadable_weights_file(tiny: DualEncoder, tmp_path: Path):
    tiny.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotAvailable, match="cannot read"):
        load_model(str(tmp_path / "m"), cache=False)


def test_bad_config(tiny: DualEncoder, tmp_path: Path):
    tiny.save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{broken")
    with pytest.raises(ModelNotAvailable, match="cannot read"):
        load_model(str(tmp_path / "m"), cache=False)
    (tmp_path / "m" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelNotAvailable, match="not a crossmodal"):
        load_model(str(tmp_path / "m"), cache=False)


def test_default_model_is_shipped_and_small(default_model):
    from crossmodal.models.registry import builtin_model_path

    weights = builtin_model_path("default") / "model.safetensors"
    # fine-tuned towers ship only what training changed (Lite1 in float16 + LoRA factors)
    assert weights.stat().st_size < 24 * 1024 * 1024
    assert default_model.name == "default"
    a, b, c = default_model.encode_texts(
        ["a dog runs on the beach", "a puppy running on sand", "a city skyline at night"]
    )
    assert a @ b > a @ c
