"""Automatic tags: ImageNet class names (en + zh), the dog and breed tags, the thresholds, the
refusal of models without a classifier, and each tag's text vector computed once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossmodal.dogs.imagenet import IMAGENET_INDEX
from crossmodal.errors import ModelNotAvailable
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from crossmodal.models.features import embed_image_files
from crossmodal.models.tagger import (
    CLASS_NAMES_PATH,
    AutoDescriber,
    TagSettings,
    breed_guesses,
    class_names,
    imagenet_tags,
    supports_tags,
)
from tests.conftest import STANFORD_DOGS, sample_photo
from tests.index.helpers import one_torch_thread, tiny_model_dir

GOLDEN = "n02099601"


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    """lite0 with its ImageNet weights (the classifier is the real one) and random heads."""
    return load_model(str(tiny_model_dir(0)))


def dog_photo(name: str) -> Path:
    path = STANFORD_DOGS / "images" / name
    if not path.is_file():
        pytest.skip(f"../shared/data not found: no Stanford Dogs photo {path}")
    return path


def features(model: Encoder, paths: list[Path]) -> np.ndarray:
    result = embed_image_files(model, paths, None, show_progress=False, features_only=True)
    assert result.ok.all()
    return result.vectors


def test_class_names_are_complete_sourced_and_bilingual():
    en, zh = class_names()
    assert len(en) == len(zh) == 1000
    assert (en[0], zh[0]) == ("tench", "丁鲷")
    assert (en[207], zh[207]) == ("Golden Retriever", "金毛猎犬")
    assert (en[999], zh[999]) == ("toilet paper", "卫生纸")
    data = json.loads(CLASS_NAMES_PATH.read_text(encoding="utf-8"))
    assert "Chinese-CLIP" in data["source"] and "MIT" in data["licence"]
    assert "Permission is hereby granted" in data["licence_text"]


def test_imagenet_tags_keep_likely_classes_and_leave_breeds_to_the_breed_tagger():
    probs = np.zeros((3, 1000))
    probs[0, [417, 409, 530]] = [0.5, 0.3, 0.2]  # balloon, analog clock, digital clock
    probs[1, IMAGENET_INDEX[GOLDEN]] = 0.9  # a breed class: not an ImageNet tag
    probs[1, 417] = 0.1
    probs[2, :] = 0.001  # nothing likely
    settings = TagSettings(tag_threshold=0.3, max_tags=3)
    tags = imagenet_tags(probs, settings)
    assert [j for j, _ in tags[0]] == [417, 409]
    assert tags[1] == [] and tags[2] == []
    assert [j for j, _ in imagenet_tags(probs, TagSettings(tag_threshold=0.1, max_tags=1))[0]] == [
        417
    ]


def test_breed_guesses_need_a_dog_and_a_likely_breed():
    logits = np.full((3, 1000), -10.0)
    logits[0, IMAGENET_INDEX[GOLDEN]] = 10.0  # a clear golden retriever
    logits[1, 417] = 10.0  # a balloon: no dog mass at all
    golden, labrador = IMAGENET_INDEX[GOLDEN], IMAGENET_INDEX["n02099712"]
    logits[2, [golden, labrador]] = 10.0  # two breeds, even
    found = breed_guesses(logits, TagSettings(dog_threshold=0.3, breed_threshold=0.3))
    assert found[0][0] > 0.99 and [w for w, _ in found[0][1]] == [GOLDEN]
    assert found[1][0] < 0.01 and found[1][1] == []
    assert sorted(w for w, _ in found[2][1]) == sorted([GOLDEN, "n02099712"])
    strict = breed_guesses(logits, TagSettings(breed_threshold=0.6))
    assert strict[2][1] == []  # 0.5 each: neither is likely enough


def test_models_without_a_classifier_are_refused_with_a_reason():
    class NoTower:
        image_tower = None

    assert not supports_tags(NoTower())
    with pytest.raises(ModelNotAvailable, match="ImageNet classifier"):
        AutoDescriber(NoTower())


def test_real_photos_get_tags_in_both_languages(tiny: Encoder):
    paths = [sample_photo("grace_hopper"), dog_photo("n02099601_10.jpg")]
    hopper, dog = AutoDescriber(tiny).describe(features(tiny, paths))
    texts = {(d.text, d.lang) for d in hopper}
    assert ("military uniform", "en") in texts and ("军装", "zh") in texts
    assert not any(d.source == "breed" or d.text == "dog" for d in hopper)
    by_source = {(d.source, d.lang): d.text for d in dog}
    assert by_source[("breed", "en")] == "Golden Retriever"
    assert by_source[("breed", "zh")] == "金毛寻回犬"  # the dog edition's name, not ImageNet's
    assert ("dog", "en") in {(d.text, d.lang) for d in dog}
    for d in hopper + dog:
        assert d.kind == "tag" and d.by_person is False and 0.0 <= d.confidence <= 1.0


def test_each_tag_text_is_embedded_once(
    tiny: Encoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("CROSSMODAL_CACHE", str(tmp_path / "cache"))
    seen: list[str] = []

    class Counting:
        """The model, counting the texts it embeds."""

        image_tower = tiny.image_tower  # type: ignore[attr-defined]
        fingerprint = tiny.fingerprint
        dim = tiny.dim

        def encode_texts(self, texts: list[str]) -> np.ndarray:
            seen.extend(texts)
            return tiny.encode_texts(texts)

    describer = AutoDescriber(Counting())
    first = describer.encode_texts(["dog", "狗", "dog"])
    again = describer.encode_texts(["狗", "dog"])
    assert seen == ["dog", "狗"]
    np.testing.assert_allclose(first[1], again[0])
    np.testing.assert_allclose(first[0], tiny.encode_texts(["dog"])[0], atol=1e-5)
    later = AutoDescriber(Counting()).encode_texts(["狗"])  # another run: from the disk cache
    assert seen == ["dog", "狗"]
    np.testing.assert_allclose(later[0], first[1])
