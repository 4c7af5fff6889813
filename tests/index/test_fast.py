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
    describe_paths,
    fast_features,
    fast_mode,
    fast_text_net,
    image_backend,
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


@pytest.mark.parametrize("mode", ["fp32", "fp32-torch", "bf16"])
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
    floor = 0.99 if mode == "bf16" else 0.9999
    assert F.cosine_similarity(ref, fast).min() >= floor
    assert F.cosine_similarity(ref_emb, fast_emb).min() >= floor


def test_fp32_image_runtime_is_openvino_where_installed(
    tiny: DualEncoder, monkeypatch: pytest.MonkeyPatch
):
    """CROSSMODAL_FAST=fp32 (what CPUs without bf16 run) puts the image tower on OpenVINO,
    fp32-torch on the folded torch module; pixels of another size than the tower's input fall
    back to torch (the OpenVINO graph is compiled for one size). Same features either way."""
    from crossmodal.models.openvino_net import OpenVINONet, openvino_available

    tower = tiny.image_tower
    assert tower is not None
    size = tower.image_size
    pixels = torch.rand(2, 3, size, size) * 2 - 1
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32-torch")
    assert image_backend() == "torch"
    with torch.inference_mode():
        by_torch = fast_features(tower, pixels)
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32")
    if not openvino_available():
        pytest.skip("openvino is not installed here: the fp32 path runs on torch")
    assert image_backend() == "openvino"
    assert describe_paths()["image"] == "OpenVINO fp32"
    with torch.inference_mode():
        by_openvino = fast_features(tower, pixels)
        odd = fast_features(tower, torch.rand(1, 3, size + 8, size + 8))
    assert isinstance(tower.__dict__["_fast_cache_openvino"][1], OpenVINONet)
    assert by_torch is not None and by_openvino is not None and odd is not None
    assert F.cosine_similarity(by_torch, by_openvino).min() >= 0.9999


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


@pytest.mark.parametrize("mode", ["fp32", "fp32-torch"])
def test_rebuilt_after_weights_change(
    tiny: DualEncoder, mode: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CROSSMODAL_FAST", mode)
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


@pytest.mark.parametrize("mode", ["auto", "fp32", "fp32-torch", "bf16"])
def test_text_tower_fast_copy_matches(
    tiny: DualEncoder, mode: str, monkeypatch: pytest.MonkeyPatch
):
    texts = ["a dog runs on the beach", "two children playing football in a park", "snow"]
    monkeypatch.setenv("CROSSMODAL_FAST", "0")
    with torch.inference_mode():
        ref = tiny.text_features(texts)
    monkeypatch.setenv("CROSSMODAL_FAST", mode)
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


@pytest.mark.parametrize("mode", ["fp32-torch", "bf16"])
def test_packed_text_net_matches_and_ignores_batch_companions(
    tiny: DualEncoder, mode: str, monkeypatch: pytest.MonkeyPatch
):
    """MiniLM's inference copy, on each path (bf16 forced runs everywhere, emulated where the
    CPU has no bf16): within cosine 0.9999 of fp32, and a text's vector is the same alone as
    in any batch (what batching queries in a server relies on; bit for bit in bf16)."""
    monkeypatch.setenv("CROSSMODAL_FAST", mode)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
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
        net = fast_text_net(tower)
        assert isinstance(net, PackedBert) and net.layers[0].dtype == dtype
        tokens = tower.tokenize(texts)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        fast = PackedBert(tower.net, dtype)(ids, mask).last_hidden_state
        ref = tower.net(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].float()
        pooled = (fast * m).sum(1) / m.sum(1)
        pooled_ref = (ref * m).sum(1) / m.sum(1)
        assert F.cosine_similarity(pooled, pooled_ref).min() >= 0.9999
        assert (fast[mask == 0] == 0).all()  # padding positions hold zeros
        for i, text in enumerate(texts):
            one = tower.tokenize([text])
            alone = PackedBert(tower.net, dtype)(one["input_ids"], one["attention_mask"])
            n = int(mask[i].sum())
            if mode == "bf16":
                assert torch.equal(alone.last_hidden_state[0, :n], fast[i, :n])
            else:
                # fp32 matrix kernels may block a product of 3 rows and one of 20 rows
                # differently (AVX2 oneDNN does): the same up to the last bits, not bit for bit
                diff = (alone.last_hidden_state[0, :n] - fast[i, :n]).abs().max()
                assert float(diff) <= 1e-5


def test_fp32_text_net_is_openvino_and_its_graph_is_cached(
    tiny: DualEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """On the fp32 path MiniLM runs on OpenVINO: the same hidden states as the module (within
    1e-4), for a batch with padding too; the converted graph is saved under the cache folder
    and a second process (here: a second build) reads it instead of converting again."""
    from crossmodal.models.openvino_net import OpenVINOBert, openvino_available

    if not openvino_available():
        pytest.skip("openvino is not installed here: the fp32 path runs MiniLM on torch")
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32")
    monkeypatch.setenv("CROSSMODAL_CACHE", str(tmp_path))
    tower = copy.deepcopy(tiny.text_tower)
    assert tower is not None
    texts = ["a dog runs on the beach", "snow", "two children playing football in a park"]
    with torch.inference_mode():
        net = fast_text_net(tower)
        assert isinstance(net, OpenVINOBert)
        tokens = tower.tokenize(texts)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        ref = tower.net(input_ids=ids, attention_mask=mask).last_hidden_state
        out = net(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (out[real] - ref[real]).abs().max() <= 1e-4
    saved = list((tmp_path / "openvino").glob("bert-*.xml"))
    assert len(saved) == 1 and saved[0].with_suffix(".bin").is_file()

    def no_conversion(net: torch.nn.Module) -> None:
        raise AssertionError("converted again although the graph was saved")

    monkeypatch.setattr(OpenVINOBert, "_convert", staticmethod(no_conversion))
    again = OpenVINOBert(tower.net, cache_dir=tmp_path)
    with torch.inference_mode():
        second = again(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(second, out)


@pytest.mark.parametrize("mode", ["fp32", "bf16"])
def test_text_net_of_an_adapted_tower_is_a_plain_copy(
    tiny: DualEncoder, mode: str, monkeypatch: pytest.MonkeyPatch
):
    """A tower whose layers were replaced (LoRA) keeps a generic bf16 copy on the bf16 path
    and its own module (None: no copy) on the fp32 path."""
    monkeypatch.setenv("CROSSMODAL_FAST", mode)
    tower = copy.deepcopy(tiny.text_tower)
    assert tower is not None
    layer = tower.net.encoder.layer[0].attention.self
    layer.query = torch.nn.Sequential(layer.query)  # no longer a plain Linear
    with torch.inference_mode():
        net = fast_text_net(tower)
    if mode == "bf16":
        assert net is not None and not isinstance(net, PackedBert)
        assert next(net.parameters()).dtype == torch.bfloat16
    else:
        assert net is None


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
