"""Breed recognition: packaged probe, real dog photos, not-a-dog, JSON shape, fitting helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.dogs.fit import (
    choose_threshold,
    fit_mixing_weights,
    mentions_dog,
    topk_accuracy,
)
from crossmodal.dogs.recognize import (
    ProbeParams,
    combine,
    identify,
    identify_many,
    log_softmax,
)
from crossmodal.errors import ImageLoadError
from tests.conftest import sample_photo


def test_packaged_probe_loads() -> None:
    params = ProbeParams.load()
    assert len(params.wnids) == 120 and params.wnids == sorted(params.wnids)
    for v in params.variants:
        assert params.coef[v].shape == (120, 1280)
        assert params.intercept[v].shape == (120,)
    assert all(w >= 0 for w in params.weights.values())
    assert 0.0 < params.dog_threshold < 1.0
    assert "train" in params.meta["fitted_on"]["probe"]


def test_probe_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = ProbeParams(
        wnids=["n1", "n2"],
        variants=["lite0"],
        coef={"lite0": rng.normal(size=(2, 4)).astype(np.float32)},
        intercept={"lite0": np.zeros(2, np.float32)},
        feature_norm={"lite0": False},
        weights={"imagenet:lite0": 0.5, "probe:lite0": 0.25},
        dog_threshold=0.4,
        meta={"note": "test"},
    )
    back = ProbeParams.load(params.save(tmp_path / "p.npz"))
    assert back.weights == params.weights and back.dog_threshold == 0.4
    np.testing.assert_allclose(back.coef["lite0"], params.coef["lite0"], atol=1e-2)


def test_missing_probe_file_is_a_clear_error(tmp_path: Path) -> None:
    from crossmodal.errors import ModelNotAvailable

    with pytest.raises(ModelNotAvailable, match="crossmodal dogs fit"):
        ProbeParams.load(tmp_path / "nope.npz")


def test_combine_is_a_weighted_log_linear_mixture() -> None:
    a = log_softmax(np.array([[2.0, 0.0, 0.0]]))
    b = log_softmax(np.array([[0.0, 3.0, 0.0]]))
    p = combine({"a": a, "b": b}, {"a": 1.0, "b": 0.0})
    np.testing.assert_allclose(p, np.exp(a))
    mixed = combine({"a": a, "b": b}, {"a": 1.0, "b": 1.0})
    assert mixed.argmax() == 1 and abs(mixed.sum() - 1) < 1e-9


def test_fit_mixing_weights_prefers_the_informative_signal() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=200)
    good = log_softmax(np.eye(5)[labels] * 4 + rng.normal(size=(200, 5)))
    noise = log_softmax(rng.normal(size=(200, 5)) * 3)
    w = fit_mixing_weights({"good": good, "noise": noise}, labels)
    assert w["good"] > 0.5 and w["noise"] < 0.1 * w["good"]
    assert topk_accuracy(good, labels) > 0.8


def test_choose_threshold_separates() -> None:
    t, tpr, fpr = choose_threshold(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.05]))
    assert 0.2 < t <= 0.7 and tpr == 1.0 and fpr == 0.0


def test_caption_dog_words() -> None:
    assert mentions_dog(["A brown dog runs on the grass ."])
    assert mentions_dog(["Two puppies play ."])
    assert not mentions_dog(["A man eats a hot dog ."])
    assert not mentions_dog(["A dogged cyclist climbs a hill ."])


def test_json_shape_and_not_a_dog_on_non_dog_photos() -> None:
    results, failures = identify_many([sample_photo("china"), sample_photo("flower")])
    assert failures == []
    for r in results:
        d = r.to_dict()
        assert set(d) == {"image", "is_dog", "breeds"}
        assert d["is_dog"] is False and d["breeds"] == []
    json.dumps([r.to_dict() for r in results])


def test_pil_input_and_unreadable_file(tmp_path: Path) -> None:
    r = identify(Image.open(sample_photo("china")))
    assert r.image == "<image>" and not r.is_dog
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageLoadError):
        identify(bad)


def test_identify_test_split_dogs(dogs_root: Path) -> None:
    """One held-out (test split) photo per breed: the recogniser gets most of them (the full
    test split is scored by benchmarks/dogs.py)."""
    from crossmodal.data import load_dataset

    test = load_dataset("stanford-dogs", dogs_root, split="test")
    picked = [int(i) for c in range(120) for i in np.flatnonzero(test.labels == c)[:1]]
    results, failures = identify_many([test.image_paths[i] for i in picked], top=5)
    assert not failures and len(results) == len(picked)
    truth = [test.class_ids[test.labels[i]] for i in picked]
    assert np.mean([r.is_dog for r in results]) >= 0.97
    top1 = np.mean(
        [bool(r.breeds) and r.breeds[0].wnid == w for r, w in zip(results, truth, strict=True)]
    )
    top5 = np.mean([w in [b.wnid for b in r.breeds] for r, w in zip(results, truth, strict=True)])
    assert top1 >= 0.8, f"top-1 {top1:.3f}"
    assert top5 >= 0.95, f"top-5 {top5:.3f}"
    # breed names exactly as in classes.tsv ("Maltese_dog"), best first
    rows = (dogs_root / "classes.tsv").read_text(encoding="utf-8").splitlines()[1:]
    names = dict(line.split("\t")[:2] for line in rows)
    for r in results:
        d = r.to_dict()
        assert all(b["breed"] == names[b["wnid"]] for b in d["breeds"])
        assert all(re.fullmatch(r"n\d{8}", b["wnid"]) for b in d["breeds"])
        scores = [b["score"] for b in d["breeds"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)
        assert len(scores) == (5 if d["is_dog"] else 0)


def test_flickr_photo_without_dogs_is_not_a_dog(flickr8k_root: Path) -> None:
    from crossmodal.data import load_dataset
    from crossmodal.dogs.fit import caption_dog_labels

    test = load_dataset("flickr8k", flickr8k_root, split="test")
    has_dog = caption_dog_labels(test)
    no_dog = [p for p, d in zip(test.image_paths, has_dog, strict=True) if not d][:5]
    results, _ = identify_many(no_dog)
    assert [r.is_dog for r in results] == [False] * 5
    assert all(r.breeds == [] for r in results)
