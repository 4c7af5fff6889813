"""Metrics pinned on hand-made score matrices with known ranks."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.eval.metrics import (
    best_relevant_ranks,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_ranks,
)


def test_best_relevant_rank_uses_best_of_several_relevant():
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.1],  # relevant {2}: rank 3
            [0.1, 0.2, 0.3, 0.4],  # relevant {0, 2}: best is 0.3 -> rank 2
            [0.5, 0.4, 0.3, 0.2],  # relevant {0}: rank 1
        ]
    )
    rel = np.zeros_like(scores, dtype=bool)
    rel[0, 2] = rel[1, 0] = rel[1, 2] = rel[2, 0] = True
    assert best_relevant_ranks(scores, rel).tolist() == [3, 2, 1]


def test_ties_are_pessimistic():
    scores = np.ones((1, 5))
    rel = np.zeros((1, 5), bool)
    rel[0, 0] = True
    assert best_relevant_ranks(scores, rel).tolist() == [5]


def test_metrics_from_ranks_known_values():
    m = metrics_from_ranks(np.array([1, 2, 6, 11]))
    assert m["R@1"] == pytest.approx(25.0)
    assert m["R@5"] == pytest.approx(50.0)
    assert m["R@10"] == pytest.approx(75.0)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 11) / 4)
    assert m["MedR"] == pytest.approx(4.0)  # median of 1, 2, 6, 11


def test_retrieval_both_directions_by_hand():
    # 3 images (unit axes), 5 captions: caption->image ground truth below
    image = np.eye(3, dtype=np.float32)
    caption_image = np.array([0, 0, 1, 2, 2])
    text = np.array(
        [
            [1.0, 0.0, 0.0],  # img0 ranks 1
            [0.0, 1.0, 0.0],  # img0 ranks pessimistically 3 (img0 ties img2 at 0; img1 first)
            [0.0, 0.8, 0.6],  # img1 ranks 1
            [0.0, 0.6, 0.8],  # img2 ranks 1
            [0.9, 0.0, 0.1],  # img2 ranks 2
        ],
        dtype=np.float32,
    )
    t2i, i2t = retrieval_ranks(image, text, caption_image)
    assert t2i.tolist() == [1, 3, 1, 1, 2]
    # image0: best caption is #0 (score 1.0, top) -> 1
    # image1: captions {2}: scores per caption [0,1,.8,.6,0] -> caption 1 (irrelevant) beats -> 2
    # image2: captions {3,4}: scores [0,0,.6,.8,.1] -> caption 3 top -> 1
    assert i2t.tolist() == [1, 2, 1]
    m = retrieval_metrics(image, text, caption_image)
    assert m["t2i"]["R@1"] == pytest.approx(60.0)
    assert m["i2t"]["R@1"] == pytest.approx(200 / 3)
    assert m["t2i"]["MedR"] == 1.0


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(50, 8)).astype(np.float32)
    text = rng.normal(size=(120, 8)).astype(np.float32)
    caption_image = rng.integers(0, 50, size=120)
    caption_image[:50] = np.arange(50)
    a = retrieval_ranks(image, text, caption_image, chunk=7)
    b = retrieval_ranks(image, text, caption_image, chunk=10_000)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))


def test_every_query_needs_a_relevant_item():
    with pytest.raises(ValueError):
        best_relevant_ranks(np.zeros((1, 2)), np.zeros((1, 2), bool))
