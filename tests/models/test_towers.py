"""The pretrained towers load offline and give real, sensible outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crossmodal.models.towers import EfficientNetTower, MiniLMTower, USETower
from tests.conftest import sample_photo

# ImageNet-1k indices of the expected top class for photos shipped in matplotlib / sklearn.
MILITARY_UNIFORM, DAISY, PALACE = 652, 985, 698


@pytest.fixture(scope="module")
def lite0() -> EfficientNetTower:
    return EfficientNetTower("lite0")


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("grace_hopper", MILITARY_UNIFORM), ("flower", DAISY), ("china", PALACE)],
)
def test_efficientnet_imagenet_top_class(lite0: EfficientNetTower, photo: str, expected: int):
    pixels = lite0.preprocess(Image.open(sample_photo(photo)))[None]
    with torch.inference_mode():
        logits = lite0.classify(pixels)
    assert int(logits.argmax()) == expected


def test_efficientnet_features_shape_and_resolution(lite0: EfficientNetTower):
    image = Image.new("RGB", (320, 200), (120, 30, 200))
    pixels = lite0.preprocess(image)
    assert pixels.shape == (3, 224, 224)
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
    with torch.inference_mode():
        feats = lite0(pixels[None])
    assert feats.shape == (1, 1280)
    assert torch.isfinite(feats).all()


def test_lite2_runs_at_its_native_resolution():
    tower = EfficientNetTower("lite2")
    assert tower.preprocess(Image.new("RGB", (224, 224))).shape == (3, 260, 260)


def test_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from crossmodal.models.towers import minilm_path

    texts = ["A dog runs along the beach.", "Two children play football in a park."]
    tower = MiniLMTower()
    with torch.inference_mode():
        ours = tower(tower.tokenize(texts)).numpy()
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    assert ours.shape == (2, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_minilm_similarity_is_semantic():
    tower = MiniLMTower()
    with torch.inference_mode():
        a, b, c = tower(
            tower.tokenize(
                ["a puppy on the grass", "a small dog on a lawn", "a stock market chart"]
            )
        ).numpy()
    assert a @ b > a @ c + 0.2


def test_use_is_multilingual():
    tower = USETower()
    with torch.inference_mode():
        zh, en, other = tower(
            ["一只狗在草地上奔跑", "a dog runs on the grass", "a man rides a bicycle"]
        ).numpy()
    assert zh.shape == (512,)
    assert zh @ en > zh @ other + 0.2
