"""The fast image-tower path (models/fast.py) and reduced-scale JPEG decoding must not change
embeddings materially: cosine >= 0.99 to the reference path on real photographs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from crossmodal.data import load_image
from crossmodal.models import load_model
from crossmodal.models.dual import DualEncoder
from crossmodal.models.fast import (
    FastEfficientNet,
    PackedBert,
    fast_features,
    fast_mode,
    fast_text_net,
)
from tests.conftest import FLICKR8K, sample_photo
from tests.index.helpers import one_torch_thread, tiny_model_dir


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> DualEncoder:
    model = load_model(str(tiny_model_dir(0)))
    assert isinstance(model, DualEncoder)
    return model


@pytest.fixture(scope="module")
def reference_run(tiny: DualEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels, reference features) of a few real photographs."""
    paths = [sample_photo(n) for n in ("grace_hopper", "china", "flower")]
    if (FLICKR8K / "images").is_dir():
        paths += sorted((FLICKR8K / "images").glob("*.jpg"))[:3]
    pixels = torch.stack([tiny.image_preprocess(load_image(p)) for p in paths])
    return pixels, reference(tiny, pixels)


def reference(model: DualEncoder, pixels: torch.Tensor) -> torch.Tensor:
    tower = model.image_tower
    assert tower is not None
    with torch.inference_mode():
        return tower.feature_map(pixels).mean(dim=(2, 3))  # the unmodified module


@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_fast_features_match_reference(
    tiny: DualEncoder,
    reference_run: tuple[torch.Tensor, torch.Tensor],
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("CROSSMODAL_FAST", mode)
    pixels, ref = reference_run
    with torch.inference_mode():
        fast = tiny.image_features(pixels)
        ref_emb = tiny.project_images(ref)
        fast_emb = tiny.project_images(fast)
    floor = 0.9999 if mode == "fp32" else 0.99
    assert F.cosine_similarity(ref, fast).min() >= floor
    assert F.cosine_similarity(ref_emb, fast_emb).min() >= floor


def test_fast_path_only_for_inference(tiny: DualEncoder, monkeypatch: pytest.MonkeyPatch):
    tower = tiny.image_tower
    assert tower is not None
    pixels = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert fast_features(tower, pixels) is not None
    assert fast_features(tower, pixels) is None  # grad enabled: training code
    monkeypatch.setenv("CROSSMODAL_FAST", "0")
    assert fast_mode() == "off"
    with torch.no_grad():
        assert fast_features(tower, pixels) is None


def test_rebuilt_after_weights_change(tiny: DualEncoder, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32")
    tower = copy.deepcopy(tiny.image_tower)  # a private copy: its weights are changed
    assert tower is not None
    pixels = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        before = tower(pixels)
        tower.net._conv_head.weight.mul_(0.5)  # as an optimiser step would, in place
        after = tower(pixels)
        expected = tower.feature_map(pixels).mean(dim=(2, 3))
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, atol=1e-4)


def test_text_tower_bf16_copy_matches(tiny: DualEncoder, monkeypatch: pytest.MonkeyPatch):
    texts = ["a dog runs on the beach", "two children playing football in a park", "snow"]
    monkeypatch.setenv("CROSSMODAL_FAST", "0")
    with torch.inference_mode():
        ref = tiny.text_features(texts)
    monkeypatch.setenv("CROSSMODAL_FAST", "auto")
    with torch.inference_mode():
        fast = tiny.text_features(texts)
    assert F.cosine_similarity(ref, fast).min() >= 0.999


def test_fused_convolutions_and_passes_keep_the_features(
    tiny: DualEncoder, reference_run: tuple[torch.Tensor, torch.Tensor]
):
    """oneDNN's fused conv + ReLU6 / conv + residual ops, and the batch run a few images per
    pass, give what the plain ops over the whole batch give."""
    tower = tiny.image_tower
    assert tower is not None
    pixels, ref = reference_run
    with torch.inference_mode():
        for dtype, floor in ((torch.float32, 0.99999), (torch.bfloat16, 0.99)):
            plain = FastEfficientNet(tower.net, dtype, fused=False, images_per_pass=64)(pixels)
            fast = FastEfficientNet(tower.net, dtype, images_per_pass=4)(pixels)
            single = torch.cat([FastEfficientNet(tower.net, dtype)(p[None]) for p in pixels])
            assert F.cosine_similarity(plain, fast).min() >= floor
            assert F.cosine_similarity(ref, fast).min() >= floor
            assert F.cosine_similarity(single, fast).min() >= 0.9999


def test_packed_text_net_matches_and_ignores_batch_companions(tiny: DualEncoder):
    """MiniLM's inference copy: within cosine 0.9999 of fp32, and a text's vector is the same
    alone as in any batch (what batching queries in a server relies on)."""
    tower = tiny.text_tower
    assert tower is not None
    texts = [
        "a dog runs on the beach",
        "snow",
        "two children in red jackets playing football in a park near a lake",
        "a dog runs on the beach",
        "",
    ]
    with torch.inference_mode():
        assert isinstance(fast_text_net(tower), PackedBert)
        tokens = tower.tokenize(texts)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        fast = PackedBert(tower.net)(ids, mask).last_hidden_state
        ref = tower.net(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].float()
        pooled = (fast * m).sum(1) / m.sum(1)
        pooled_ref = (ref * m).sum(1) / m.sum(1)
        assert F.cosine_similarity(pooled, pooled_ref).min() >= 0.9999
        assert (fast[mask == 0] == 0).all()  # padding positions hold zeros
        for i, text in enumerate(texts):
            one = tower.tokenize([text])
            alone = PackedBert(tower.net)(one["input_ids"], one["attention_mask"])
            n = int(mask[i].sum())
            assert torch.equal(alone.last_hidden_state[0, :n], fast[i, :n])


def test_text_net_of_an_adapted_tower_is_a_plain_copy(tiny: DualEncoder):
    """A tower whose layers were replaced (LoRA) keeps the generic bf16 copy."""
    tower = copy.deepcopy(tiny.text_tower)
    assert tower is not None
    layer = tower.net.encoder.layer[0].attention.self
    layer.query = torch.nn.Sequential(layer.query)  # no longer a plain Linear
    with torch.inference_mode():
        net = fast_text_net(tower)
    if fast_mode() == "bf16":
        assert net is not None and not isinstance(net, PackedBert)


def test_fast_module_is_plain_inference_copy(tiny: DualEncoder):
    tower = tiny.image_tower
    assert tower is not None
    fast = FastEfficientNet(tower.net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert fast.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["grace_hopper", "china"])
def test_draft_decoding_keeps_embeddings(tiny: DualEncoder, tmp_path: Path, name: str):
    """Large JPEGs decode at reduced scale in the indexing pipeline (down to twice the model's
    input size): the embedding stays within 0.99 of a full decode."""
    from PIL import Image

    from crossmodal.index.pipeline import _model_input

    _, draft = _model_input(tiny)
    assert draft == 448
    big = tmp_path / "big.jpg"
    with Image.open(sample_photo(name)) as im:
        im.resize((im.width * 3, im.height * 3), Image.Resampling.BICUBIC).save(big, quality=95)
    full = load_image(big)
    drafted = load_image(big, draft_size=draft)
    assert drafted.size[0] < full.size[0] and min(drafted.size) >= draft
    a, b = tiny.encode_images([full, drafted])
    assert float(a @ b) >= 0.99
