"""Retrieval metrics as pure functions over a score matrix, as in CLIP_benchmark.

Recall@K follows CLIP_benchmark's `zeroshot_retrieval`: a query is a hit when *any* relevant
item is within its top K. MRR and median rank use the rank of the best-ranked relevant item
(1-based). Ties are broken pessimistically (a relevant item tied with an irrelevant one ranks
after it), so a constant model cannot look good.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def best_relevant_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked relevant column for each row.

    scores: (n_queries, n_items); relevant: boolean mask of the same shape, >= 1 True per row.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevance {relevant.shape} differ in shape")
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one relevant item")
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)
    # items strictly better than the best relevant one, plus irrelevant ties (pessimistic)
    better = (scores > best).sum(axis=1) + ((scores == best) & ~relevant).sum(axis=1)
    return (better + 1).astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """R@K in percent, MRR in 0..1, MedR and MeanR as 1-based ranks."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in ks}
    out["MRR"] = float(np.mean(1.0 / ranks))
    out["MedR"] = float(np.median(ranks))
    out["MeanR"] = float(np.mean(ranks))
    return out


def scores_with_offsets(
    queries: np.ndarray, gallery: np.ndarray, offsets: np.ndarray | None = None
) -> np.ndarray:
    """(n_queries, n_gallery) dot products, plus each gallery item's offset where given (the
    hubness correction, as a collection's search adds it)."""
    scores = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    if offsets is not None:
        scores += np.asarray(offsets, np.float32)[None, :]
    return scores


def retrieval_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    chunk: int = 4096,
    image_offsets: np.ndarray | None = None,
    text_offsets: np.ndarray | None = None,
    image_queries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query best-relevant ranks: text->image (one per caption, its image relevant) and
    image->text (one per image, all of its captions relevant). Offsets, where given, are
    added to every score of a gallery image / caption (the hubness correction);
    `image_queries`, where given, are the vectors the images query with (image->text)."""
    image_emb = np.asarray(image_emb, np.float32)
    text_emb = np.asarray(text_emb, np.float32)
    queries = image_emb if image_queries is None else np.asarray(image_queries, np.float32)
    caption_image = np.asarray(caption_image, np.int64)
    t2i = np.empty(len(text_emb), np.int64)
    for s in range(0, len(text_emb), chunk):
        scores = scores_with_offsets(text_emb[s : s + chunk], image_emb, image_offsets)
        rel = np.zeros_like(scores, dtype=bool)
        rel[np.arange(len(scores)), caption_image[s : s + chunk]] = True
        t2i[s : s + chunk] = best_relevant_ranks(scores, rel)
    i2t = np.empty(len(queries), np.int64)
    for s in range(0, len(queries), chunk):
        scores = scores_with_offsets(queries[s : s + chunk], text_emb, text_offsets)
        rel = caption_image[None, :] == np.arange(s, s + len(scores))[:, None]
        i2t[s : s + chunk] = best_relevant_ranks(scores, rel)
    return t2i, i2t


def retrieval_metrics(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Both directions' R@K, MRR, MedR and MeanR from unit-vector embeddings."""
    t2i, i2t = retrieval_ranks(image_emb, text_emb, caption_image)
    return {"t2i": metrics_from_ranks(t2i, ks), "i2t": metrics_from_ranks(i2t, ks)}


def mean_recall(metrics: dict[str, dict[str, float]]) -> float:
    """Mean of R@1/5/10 in both directions: the one number training selects on."""
    return float(np.mean([metrics[d][f"R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10)]))
