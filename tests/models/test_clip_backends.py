"""Pretrained-CLIP backends: a tiny random HF CLIP saved to disk, loaded back offline."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossmodal.errors import ModelNotAvailable
from crossmodal.models import clip_backends
from crossmodal.models.base import Encoder
from crossmodal.models.clip_backends import (
    HFClipEncoder,
    OpenClipEncoder,
    load_hf_clip,
    load_open_clip,
)

from .clip_fixtures import TINY_PROJECTION_DIM, make_tiny_hf_clip

TEXTS = ["a photo of a dog", "a red car", "the cat"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_hf_clip(tmp_path_factory.mktemp("tiny_clip") / "model")


@pytest.fixture(scope="module")
def tiny(tiny_dir) -> HFClipEncoder:
    return load_hf_clip(str(tiny_dir))


@pytest.fixture
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)),
        Image.new("RGB", (32, 32), (200, 30, 30)),
        Image.fromarray(rng.integers(0, 256, (64, 48), dtype=np.uint8), mode="L"),  # grey
    ]


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to resolve a host or open a connection."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def _unit_rows(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


def _features(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


# ---------------------------------------------------------------- loading + encoding


def test_loads_as_encoder_with_name_and_dim(tiny, tiny_dir):
    assert isinstance(tiny, Encoder)
    assert tiny.name == "hf:" + str(tiny_dir)
    assert tiny.dim == TINY_PROJECTION_DIM
    assert tiny.device == torch.device("cpu")
    assert tiny.model.__class__.__name__ == "CLIPModel"
    assert tiny.max_length == 16
    # fresh CLIP: logit_scale parameter is log(1/0.07) -> multiplier 1/0.07
    assert tiny.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)


def test_encode_shapes_dtype_norms_determinism(tiny, images):
    img = tiny.encode_images(images)
    txt = tiny.encode_texts(TEXTS)
    for x in (img, txt):
        assert x.shape == (3, TINY_PROJECTION_DIM)
        assert x.dtype == np.float32
        assert _unit_rows(x)
    np.testing.assert_array_equal(img, tiny.encode_images(images))
    np.testing.assert_array_equal(txt, tiny.encode_texts(TEXTS))
    # different inputs -> different vectors (the model is not degenerate)
    assert not np.allclose(img[0], img[1])
    assert not np.allclose(txt[0], txt[1])


def test_image_and_text_embeddings_match_direct_clipmodel(tiny, tiny_dir, images):
    from transformers import AutoTokenizer, CLIPModel

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessor as Processor

    model = CLIPModel.from_pretrained(str(tiny_dir), local_files_only=True).eval()
    processor = Processor.from_pretrained(str(tiny_dir), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir), local_files_only=True)
    with torch.no_grad():
        pixels = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        ref_img = _features(model.get_image_features(pixel_values=pixels["pixel_values"]))
        tok = tokenizer(TEXTS, padding=True, return_tensors="pt")
        ref_txt = _features(
            model.get_text_features(
                input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
            )
        )
    ref_img = torch.nn.functional.normalize(ref_img, dim=-1).numpy()
    ref_txt = torch.nn.functional.normalize(ref_txt, dim=-1).numpy()
    np.testing.assert_allclose(tiny.encode_images(images), ref_img, atol=1e-5)
    np.testing.assert_allclose(tiny.encode_texts(TEXTS), ref_txt, atol=1e-5)


def test_batch_size_does_not_change_results(tiny, images):
    np.testing.assert_allclose(
        tiny.encode_images(images, batch_size=1),
        tiny.encode_images(images, batch_size=8),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        tiny.encode_texts(TEXTS, batch_size=1), tiny.encode_texts(TEXTS, batch_size=2), atol=1e-5
    )


def test_long_texts_are_truncated_to_context_length(tiny):
    # both exceed the 16-token context; after truncation they are the same token sequence
    long_a = "dog " * 40
    long_b = "dog " * 80 + "cat cat cat"
    out = tiny.encode_texts([long_a, long_b, "dog"])
    assert out.shape == (3, TINY_PROJECTION_DIM) and _unit_rows(out)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    assert not np.allclose(out[0], out[2])
    assert tiny.tokenize([long_b])["input_ids"].shape[1] == 16


def test_empty_input_and_progress_bar(tiny, images):
    assert tiny.encode_images([]).shape == (0, TINY_PROJECTION_DIM)
    assert tiny.encode_texts([]).shape == (0, TINY_PROJECTION_DIM)
    out = tiny.encode_images(images, batch_size=2, show_progress=True)
    assert out.shape == (3, TINY_PROJECTION_DIM)


def test_encoding_restores_train_mode(tiny, images):
    tiny.model.train()
    try:
        tiny.encode_images(images[:1])
        assert tiny.model.training
    finally:
        tiny.model.eval()


def test_fingerprint_stable_and_weight_sensitive(tiny, tiny_dir, tmp_path):
    fp = tiny.fingerprint
    assert fp.startswith("hf:") and len(fp) == 3 + 16
    assert load_hf_clip(str(tiny_dir)).fingerprint == fp
    other = load_hf_clip(str(make_tiny_hf_clip(tmp_path / "other", seed=1)))
    assert other.fingerprint != fp
    # the same folder copied elsewhere (small weights: hashed by content) keeps its fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    assert load_hf_clip(str(copy)).fingerprint == fp


# ---------------------------------------------------------------- not available -> one clear error


@pytest.fixture
def online_env(monkeypatch):
    """HF_HUB_OFFLINE unset everywhere: the loader's own local_files_only logic must hold."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return hf_constants


def test_uncached_hub_id_raises_without_network(online_env, no_network):
    t0 = time.monotonic()
    with pytest.raises(ModelNotAvailable) as err:
        load_hf_clip("no-such-org/no-such-model")
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "no-such-org/no-such-model" in msg
    assert "Hugging Face cache" in msg
    assert "huggingface-cli download no-such-org/no-such-model" in msg
    assert no_network == []
    # the temporary offline switch is undone
    assert "HF_HUB_OFFLINE" not in os.environ
    assert online_env.HF_HUB_OFFLINE is False


def test_hub_id_found_in_local_hf_cache(tiny_dir, tmp_path, online_env, no_network, monkeypatch):
    monkeypatch.setattr(online_env, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--tiny-org--tiny-clip"
    shutil.copytree(tiny_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    enc = load_hf_clip("tiny-org/tiny-clip")
    assert enc.name == "hf:tiny-org/tiny-clip"
    assert enc.source_dir == repo / "snapshots" / "0123abcd"
    assert enc.encode_texts(TEXTS).shape == (3, TINY_PROJECTION_DIM)
    assert no_network == []


def test_folder_without_weights_names_the_missing_file(tiny_dir, tmp_path, online_env, no_network):
    bare = tmp_path / "bare-clip"
    bare.mkdir()
    shutil.copy(tiny_dir / "config.json", bare / "config.json")
    with pytest.raises(ModelNotAvailable) as err:
        load_hf_clip(str(bare))
    msg = str(err.value)
    assert str(bare) in msg
    assert "model.safetensors" in msg
    assert no_network == []


def test_missing_folder_and_bad_config(tmp_path, tiny_dir, no_network):
    with pytest.raises(ModelNotAvailable, match="no folder"):
        load_hf_clip(str(tmp_path / "does" / "not" / "exist"))
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(ModelNotAvailable, match=r"config\.json"):
        load_hf_clip(str(not_a_model))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelNotAvailable, match=r"config\.json"):
        load_hf_clip(str(broken))
    other_type = tmp_path / "bert"
    shutil.copytree(tiny_dir, other_type)
    cfg = json.loads((tiny_dir / "config.json").read_text())
    (other_type / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    with pytest.raises(ModelNotAvailable, match="bert"):
        load_hf_clip(str(other_type))
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ModelNotAvailable, match="tokenizer"):
        load_hf_clip(str(no_tok))
    assert no_network == []


def test_corrupt_weights_raise_model_not_available(tiny_dir, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelNotAvailable, match="could not load"):
        load_hf_clip(str(corrupt))


# ---------------------------------------------------------------- open_clip


def test_open_clip_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` fail
    with pytest.raises(ModelNotAvailable) as err:
        load_open_clip("ViT-B-32/laion2b_s34b_b79k")
    assert "crossmodal[openclip]" in str(err.value)
    assert "torchvision" in str(err.value)


class _TinyOpenClip(torch.nn.Module):
    """Just enough of open_clip's CLIP interface: encode_image / encode_text / logit_scale."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = torch.nn.Linear(3 * 8 * 8, 8)
        self.visual.preprocess_cfg = {"size": 8, "mean": (0.5,) * 3}
        self.embed = torch.nn.Embedding(256, 8)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, x, normalize=False):
        return self.visual(x.flatten(1))

    def encode_text(self, tokens, normalize=False):
        return self.embed(tokens).mean(1)


def _fake_open_clip(calls: list) -> types.ModuleType:
    mod = types.ModuleType("open_clip")
    tags = {"tiny_tag": {"hf_hub": "fake-org/fake-tiny-openclip/", "mean": (0.1, 0.2, 0.3)}}

    def create_model_and_transforms(arch, pretrained=None, device="cpu", **kwargs):
        calls.append((arch, pretrained, kwargs))
        if not (pretrained and os.path.isfile(pretrained)):
            raise RuntimeError(f"would download {pretrained}")
        from safetensors.torch import load_file

        model = _TinyOpenClip()
        model.load_state_dict(load_file(pretrained))

        def preprocess(im):
            arr = np.asarray(im.resize((8, 8)), dtype=np.float32) / 255.0
            return torch.from_numpy(arr).permute(2, 0, 1)

        return model.to(device), preprocess, preprocess

    def get_tokenizer(arch):
        def tokenize(texts):
            ids = [list(t.encode())[:6] for t in texts]
            return torch.tensor([[1, *i] + [0] * (6 - len(i)) + [2] for i in ids])

        return tokenize

    mod.create_model_and_transforms = create_model_and_transforms
    mod.get_tokenizer = get_tokenizer
    mod.list_models = lambda: ["Tiny-ViT"]
    mod.get_pretrained_cfg = lambda arch, tag: dict(tags.get(tag, {})) if arch == "Tiny-ViT" else {}
    mod.list_pretrained_tags_by_model = lambda arch: list(tags) if arch == "Tiny-ViT" else []
    mod.get_model_config = lambda arch: {"embed_dim": 8} if arch == "Tiny-ViT" else None
    return mod


@pytest.fixture
def fake_open_clip(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants
    from safetensors.torch import save_file

    calls: list = []
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip(calls))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    torch.manual_seed(0)
    weights = tmp_path / "tiny_open_clip.safetensors"
    save_file(_TinyOpenClip().state_dict(), str(weights))
    return types.SimpleNamespace(calls=calls, weights=weights, cache=tmp_path / "hf-cache")


def test_open_clip_from_weights_file(fake_open_clip, images, no_network):
    spec = f"Tiny-ViT/{fake_open_clip.weights}"
    enc = load_open_clip(spec)
    assert isinstance(enc, OpenClipEncoder)
    assert enc.name == "openclip:" + spec and enc.dim == 8
    assert fake_open_clip.calls == [("Tiny-ViT", str(fake_open_clip.weights), {})]
    img, txt = enc.encode_images(images, batch_size=2), enc.encode_texts(TEXTS)
    assert img.shape == txt.shape == (3, 8)
    assert img.dtype == txt.dtype == np.float32
    assert _unit_rows(img) and _unit_rows(txt)
    with torch.no_grad():
        pixels = torch.stack([enc.preprocess(im.convert("RGB")) for im in images])
        ref = torch.nn.functional.normalize(enc.model.encode_image(pixels), dim=-1).numpy()
    np.testing.assert_allclose(img, ref, atol=1e-6)
    assert enc.fingerprint.startswith("openclip:")
    assert enc.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert no_network == []


def test_open_clip_tag_not_cached_fails_fast(fake_open_clip, no_network):
    with pytest.raises(ModelNotAvailable) as err:
        load_open_clip("Tiny-ViT/tiny_tag")
    msg = str(err.value)
    assert "Tiny-ViT/tiny_tag" in msg
    assert "huggingface-cli download fake-org/fake-tiny-openclip" in msg
    assert fake_open_clip.calls == []  # never handed to open_clip's downloader
    assert no_network == []


def test_open_clip_tag_found_in_hf_cache(fake_open_clip, no_network):
    snap = fake_open_clip.cache / "models--fake-org--fake-tiny-openclip" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    shutil.copy(fake_open_clip.weights, snap / "open_clip_model.safetensors")
    refs = snap.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")
    enc = load_open_clip("Tiny-ViT/tiny_tag")
    arch, pretrained, kwargs = fake_open_clip.calls[-1]
    assert arch == "Tiny-ViT"
    assert Path(pretrained) == snap / "open_clip_model.safetensors"
    assert kwargs == {"image_mean": (0.1, 0.2, 0.3)}  # the tag's preprocessing is kept
    assert enc.encode_texts(["x"]).shape == (1, 8)
    assert no_network == []


def test_open_clip_bad_specs(fake_open_clip):
    with pytest.raises(ModelNotAvailable, match="tiny_tag"):
        load_open_clip("Tiny-ViT/no_such_tag")
    with pytest.raises(ModelNotAvailable, match="no architecture"):
        load_open_clip("Huge-ViT/tiny_tag")
    with pytest.raises(ModelNotAvailable, match="<arch>/<pretrained>"):
        load_open_clip("Tiny-ViT")
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        load_open_clip("Tiny-ViT//nowhere/weights.safetensors")
    assert fake_open_clip.calls == []


def test_module_exports():
    assert set(clip_backends.__all__) >= {"HFClipEncoder", "OpenClipEncoder", "load_hf_clip"}
