"""The report's analyses as pure functions, pinned on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.errors import CrossmodalError
from crossmodal.eval import analysis as an
from crossmodal.eval.metrics import metrics_from_ranks, retrieval_metrics, retrieval_ranks


@pytest.mark.parametrize(
    ("caption", "category"),
    [
        ("A group of people stand in line .", "people"),
        ("Two dogs play in the snow", "dogs"),  # dogs comes before snow
        ("A brown horse grazes in a field", "other animals"),
        ("A red bus drives down the street", "vehicles"),
        ("Snow covered mountains at sunset", "scenery"),
        ("A blurry photograph of something", "other"),
        ("", "other"),
    ],
)
def test_caption_category(caption: str, category: str):
    assert an.caption_category(caption) == category


def unit_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_length_bins_count_words_not_punctuation():
    assert an.words("A dog , running .") == ["a", "dog", "running"]
    assert an.length_bin("A dog runs .") == "≤7"
    assert an.length_bin(" ".join(["word"] * 10) + " .") == "10–11"
    assert an.length_bin(" ".join(["word"] * 40)) == "≥17"
    assert an.length_bin_labels()[0] == "≤7"


def test_recall_by_group_drops_empty_groups():
    ranks = np.array([1, 3, 20, 1])
    gr = an.recall_by_group(ranks, ["a", "a", "b", "b"], ["a", "b", "c"])
    assert gr.groups == ["a", "b"]
    assert gr.counts == {"a": 2, "b": 2}
    assert gr.recall["a"]["R@1"] == 50.0 and gr.recall["a"]["R@5"] == 100.0
    assert gr.recall["b"]["R@10"] == 50.0


def test_gallery_size_full_split_equals_plain_metrics():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(12, 6)).astype(np.float32)
    txt = img[np.repeat(np.arange(12), 2)] + 0.8 * rng.normal(size=(24, 6)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    cap = np.repeat(np.arange(12), 2)
    curve = an.recall_vs_gallery_size(img, txt, cap, [3, 12], trials=4, seed=1)
    full = retrieval_metrics(img, txt, cap)
    assert curve.t2i_mean["R@1"][-1] == full["t2i"]["R@1"]
    assert curve.t2i_std["R@1"][-1] == 0.0
    # smaller galleries are easier
    assert curve.t2i_mean["R@1"][0] >= curve.t2i_mean["R@1"][-1]
    # seeded: the same curve twice
    again = an.recall_vs_gallery_size(img, txt, cap, [3, 12], trials=4, seed=1)
    assert again.t2i_mean == curve.t2i_mean
    with pytest.raises(CrossmodalError, match="larger than the split"):
        an.recall_vs_gallery_size(img, txt, cap, [13])


def test_gallery_size_scores_sub_galleries_as_search_does():
    """With per-item offsets and separate image query vectors (a model with the hubness
    correction and mirrored image queries), every sub-gallery is scored with its own items'
    offsets: the full-size point is the eval's, a drawn sub-gallery is the brute-force one."""
    from crossmodal.eval.evaluate import SearchScoring

    rng = np.random.default_rng(5)
    img = unit_rows(rng.normal(size=(10, 6)))
    txt = unit_rows(img[np.repeat(np.arange(10), 2)] + 0.9 * rng.normal(size=(20, 6)))
    cap = np.repeat(np.arange(10), 2)
    scoring = SearchScoring(
        image_offsets=rng.normal(scale=0.5, size=10).astype(np.float32),
        text_offsets=rng.normal(scale=0.5, size=20).astype(np.float32),
        image_queries=unit_rows(img + 0.5 * rng.normal(size=img.shape)),
    )
    t2i, i2t = retrieval_ranks(
        img, txt, cap, image_offsets=scoring.image_offsets, text_offsets=scoring.text_offsets,
        image_queries=scoring.image_queries,
    )  # fmt: skip
    raw_t2i, raw_i2t = retrieval_ranks(img, txt, cap)
    assert (t2i != raw_t2i).any() and (i2t != raw_i2t).any()  # the scoring matters here
    curve = an.recall_vs_gallery_size(img, txt, cap, [4, 10], trials=1, seed=2, scoring=scoring)
    assert curve.t2i_mean["R@1"][-1] == metrics_from_ranks(t2i)["R@1"]
    assert curve.i2t_mean["R@1"][-1] == metrics_from_ranks(i2t)["R@1"]
    # the one drawn 4-image gallery, brute force
    pick = np.sort(np.random.default_rng(2).choice(10, size=4, replace=False))
    keep = np.flatnonzero(np.isin(cap, pick))
    local = np.searchsorted(pick, cap[keep])
    s = txt[keep] @ img[pick].T + scoring.image_offsets[pick][None, :]
    ranks = 1 + (s > s[np.arange(len(keep)), local][:, None]).sum(1)
    assert curve.t2i_mean["R@1"][0] == pytest.approx(100 * np.mean(ranks == 1))


def test_text_to_image_ranks_and_top_k_add_the_offsets():
    rng = np.random.default_rng(4)
    img = unit_rows(rng.normal(size=(6, 5)))
    txt = unit_rows(rng.normal(size=(12, 5)))
    cap = np.repeat(np.arange(6), 2)
    offsets = rng.normal(scale=0.6, size=6).astype(np.float32)
    t2i, _ = retrieval_ranks(img, txt, cap, image_offsets=offsets)
    got = an.text_to_image_ranks(img, txt, cap, image_offsets=offsets, chunk=5)
    assert got.tolist() == t2i.tolist()
    assert got.tolist() != an.text_to_image_ranks(img, txt, cap).tolist()
    top = an.top_k(txt, img, [0, 3], 3, offsets=offsets)
    brute = txt[[0, 3]] @ img.T + offsets[None, :]
    assert top.items.tolist() == np.argsort(-brute, axis=1)[:, :3].tolist()
    np.testing.assert_allclose(top.scores, np.sort(brute, axis=1)[:, ::-1][:, :3], rtol=1e-6)


def test_text_to_image_ranks_match_retrieval_ranks_on_any_subset():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(6, 5)).astype(np.float32)
    txt = rng.normal(size=(12, 5)).astype(np.float32)
    cap = np.repeat(np.arange(6), 2)
    t2i, _ = retrieval_ranks(img, txt, cap)
    assert an.text_to_image_ranks(img, txt, cap, chunk=5).tolist() == t2i.tolist()
    sub = np.array([1, 4, 7])  # captions of images 0, 2, 3 only: fine for text->image
    assert an.text_to_image_ranks(img, txt[sub], cap[sub]).tolist() == t2i[sub].tolist()


def test_prompt_variants():
    v = an.PROMPT_VARIANTS
    assert v["raw caption"]("A Dog .") == "A Dog ."
    assert v["a photo of {caption}"]("a dog") == "a photo of a dog"
    assert v["lower-cased"]("A Dog") == "a dog"
    assert v["punctuation stripped"]("A dog , running .") == "A dog running"


def test_top_k_and_examples():
    q = np.eye(3, dtype=np.float32)
    g = np.array([[0, 1, 0], [1, 0, 0], [0.9, 0.1, 0]], np.float32)
    top = an.top_k(q, g, [0, 1], 2)
    assert top.items.tolist() == [[1, 2], [0, 2]]
    hits, misses = an.pick_examples(np.array([1, 1, 12, 3, 40]), 5, seed=0)
    assert hits == [0, 1] and misses == [2, 4]


def test_confused_pairs_and_near_duplicates():
    img = np.array([[1, 0, 0], [0.99, 0.141, 0], [0, 0, 1]], np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt = np.array([[0.9, 0.43, 0], [1, 0, 0], [0, 0, 1]], np.float32)  # caption 0 -> image 1
    confused, near = an.confused_pairs(img, txt, np.array([0, 1, 2]), top=2)
    assert (confused[0].a, confused[0].b, confused[0].confusions) == (0, 1, 2)
    assert (near[0].a, near[0].b) == (0, 1) and near[0].cosine > 0.98
    # an offset that lifts image 1 (as the hubness correction would) sends caption 1 to its
    # own image: one confusion left
    offsets = np.array([0, 0.5, 0], np.float32)
    lifted, _ = an.confused_pairs(img, txt, np.array([0, 1, 2]), image_offsets=offsets)
    assert [(p.a, p.b, p.confusions) for p in lifted] == [(0, 1, 1)]


def test_word_contrast_counts_each_word_once_per_caption():
    caps = ["a red kite kite"] * 6 + ["a blue sky"] * 6 + ["a dog"]
    ranks = np.array([20] * 6 + [1] * 6 + [5])
    wc = an.word_contrast(caps, ranks, min_count=5)
    assert (wc.n_failed, wc.n_succeeded) == (6, 6)
    top = {s.word: s for s in wc.over_in_failed}
    assert top["kite"].failed == 6 and top["kite"].succeeded == 0
    assert "a" not in top  # a stopword
    assert {s.word for s in wc.over_in_succeeded} == {"blue", "sky"}


def test_tsne_perplexity_fits_tiny_samples():
    assert an.tsne_perplexity(10) < 10
    assert an.tsne_perplexity(1000) == 30.0
    with pytest.raises(CrossmodalError):
        an.tsne_2d(np.zeros((3, 4), np.float32))


def test_space_stats_on_hand_made_vectors():
    # two images on the axes; caption 0 on image 0, caption 1 halfway between both
    images = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    half = np.sqrt(0.5)
    texts = np.array([[1.0, 0.0], [half, half]], np.float32)
    s = an.space_stats(images, texts, np.array([0, 1]))
    assert s.image_norm_mean == pytest.approx(1.0) and s.norm_max_deviation < 1e-6
    assert s.matched_cosine == pytest.approx((1.0 + half) / 2)  # caption 1 with image 1
    assert s.unmatched_cosine == pytest.approx((0.0 + half) / 2)  # the other two pairs
    assert s.image_image_cosine == pytest.approx(0.0)
    assert s.centroid_distance == pytest.approx(
        np.linalg.norm([0.5 - (1 + half) / 2, 0.5 - half / 2])
    )
