"""Caption metrics: the COCO toolkit's scorers, with our tokenisation in front."""

from __future__ import annotations

import math

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from crossmodal.eval.caption_metrics import caption_scores, cider_per_image

REFS = {
    "a": ["A dog runs across the grass.", "A brown dog is running on a lawn", "The dog runs"],
    "b": ["Two kids play in the water .", "Children splash in a pool", "two children swim"],
    "c": ["A man rides a bike down a hill", "A cyclist on a mountain road", "a man on a bicycle"],
}
HYPS = {
    "a": "A dog runs on the grass!",
    "b": "two children play in a pool",
    "c": "A man rides a bike",
}


def test_scores_equal_the_toolkit_on_tokenised_text() -> None:
    ours = caption_scores(REFS, HYPS)
    gts = {
        "a": ["a dog runs across the grass", "a brown dog is running on a lawn", "the dog runs"],
        "b": ["two kids play in the water", "children splash in a pool", "two children swim"],
        "c": [
            "a man rides a bike down a hill",
            "a cyclist on a mountain road",
            "a man on a bicycle",
        ],
    }
    res = {
        "a": ["a dog runs on the grass"],
        "b": ["two children play in a pool"],
        "c": ["a man rides a bike"],
    }
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    for n in range(4):
        assert ours[f"BLEU-{n + 1}"] == pytest.approx(bleu[n], abs=1e-12)
    assert ours["CIDEr"] == pytest.approx(cider, abs=1e-12)
    assert 0 < ours["BLEU-4"] < ours["BLEU-1"] < 1


def test_bleu_by_hand() -> None:
    # every word matches, but the hypothesis is 3 words against a closest reference of 4:
    # BLEU-1 = brevity penalty exp(1 - 4/3) (the toolkit adds a tiny smoothing epsilon)
    scores = caption_scores({"x": ["a dog runs fast"]}, {"x": "A dog runs."})
    assert scores["BLEU-1"] == pytest.approx(math.exp(1 - 4 / 3), rel=1e-6)
    same = caption_scores({"x": ["a dog runs fast"], "y": ["two cats"]}, {"x": "a dog runs fast"})
    assert same["BLEU-4"] == pytest.approx(1.0, rel=1e-6)


def test_per_image_cider_averages_to_the_corpus_score() -> None:
    per = cider_per_image(REFS, HYPS)
    assert sum(per.values()) / len(per) == pytest.approx(caption_scores(REFS, HYPS)["CIDEr"])
    assert per["a"] > per["c"] or per["a"] > per["b"]


def test_missing_references_are_refused() -> None:
    with pytest.raises(ValueError, match="no references"):
        caption_scores({"a": ["x"]}, {"a": "x", "z": "y"})
    with pytest.raises(ValueError, match="no captions"):
        caption_scores(REFS, {})
