"""`evaluate(model, dataset)`: embed a split (through the cache) and score both directions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.data import ImageTextDataset
from crossmodal.errors import DatasetError
from crossmodal.eval.metrics import DEFAULT_KS, metrics_from_ranks, retrieval_ranks
from crossmodal.models.base import Encoder, l2_normalize
from crossmodal.models.features import embed_image_files, embed_texts


@dataclass
class EmbeddedSplit:
    """A split's embeddings with corrupt images (and their captions) dropped."""

    image_paths: list[Path]
    captions: list[str]
    caption_image: np.ndarray
    image_emb: np.ndarray
    text_emb: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: image->text query vectors when the model averages each query image with its mirror
    #: image (`query_image_flip`); None: the images' own vectors
    query_image_emb: np.ndarray | None = None


def embed_split(
    model: Encoder,
    dataset: ImageTextDataset,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    features_only: bool = False,
    multilingual: bool | None = None,
) -> EmbeddedSplit:
    """Embed a split's images and captions; `features_only` keeps the dual encoder's tower
    features (what head training needs), `multilingual` forces one text path as in
    `embed_texts`."""
    images = embed_image_files(
        model,
        dataset.image_paths,
        cache_dir=cache_dir,
        show_progress=show_progress,
        features_only=features_only,
    )
    keep = np.flatnonzero(images.ok)
    if len(keep) == 0:
        raise DatasetError(f"no image of {dataset.name} ({dataset.split}) could be decoded")
    new_index = np.full(len(dataset.image_paths), -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    caption_image = new_index[np.asarray(dataset.caption_image, np.int64)]
    kept_captions = np.flatnonzero(caption_image >= 0)
    captions = [dataset.captions[i] for i in kept_captions]
    text_emb = embed_texts(
        model,
        captions,
        cache_dir=cache_dir,
        show_progress=show_progress,
        features_only=features_only,
        multilingual=multilingual,
    )
    kept_paths = [dataset.image_paths[i] for i in keep]
    query_image_emb = None
    if model.query_image_flip and not features_only:
        mirrored = embed_image_files(
            model, kept_paths, cache_dir=cache_dir, show_progress=show_progress, flip=True
        )
        if not mirrored.ok.all():  # pragma: no cover - decoded once, decodes again
            raise DatasetError(f"images of {dataset.name} decoded once but not twice")
        query_image_emb = l2_normalize(images.vectors + mirrored.vectors)
    return EmbeddedSplit(
        image_paths=kept_paths,
        captions=captions,
        caption_image=caption_image[kept_captions],
        image_emb=images.vectors,
        text_emb=text_emb,
        skipped=images.failures,
        query_image_emb=query_image_emb,
    )


def evaluate(
    model: Encoder,
    dataset: ImageTextDataset,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, Any]:
    """Evaluation JSON: model, dataset, split, counts, t2i and i2t metrics, seconds, skipped."""
    start = time.perf_counter()
    split = embed_split(model, dataset, cache_dir=cache_dir, show_progress=show_progress)
    t2i, i2t = split_ranks(model, split)
    result = {
        "model": model.name,
        "dataset": dataset.name,
        "split": dataset.split,
        "n_images": len(split.image_paths),
        "n_texts": len(split.captions),
        "t2i": metrics_from_ranks(t2i, ks),
        "i2t": metrics_from_ranks(i2t, ks),
        "seconds": round(time.perf_counter() - start, 2),
        "skipped": [{"path": str(p), "reason": r} for p, r in split.skipped],
    }
    if split.query_image_emb is not None:
        result["query_image_flip"] = True
    if model.hubness is not None:
        result["hubness"] = {"k": model.hubness.k, "weight": model.hubness.weight}
    if model.hubness is not None or split.query_image_emb is not None:
        # what the model's plain cosine similarities give, for comparison
        raw_t2i, raw_i2t = split_ranks(model, split, raw=True)
        result["raw_similarities"] = {
            "t2i": metrics_from_ranks(raw_t2i, ks),
            "i2t": metrics_from_ranks(raw_i2t, ks),
        }
    return result


@dataclass
class SearchScoring:
    """How the model's search scores a split across modalities: a per-item offset added to
    every score of a gallery image / caption (the hubness correction; None without one), and
    the vectors an image queries with (its own, or averaged with its mirror image's).

    Every table that ranks a split (eval, and each of the report's analyses) scores through
    this, so none of them can disagree with what a collection returns."""

    image_offsets: np.ndarray | None
    text_offsets: np.ndarray | None
    image_queries: np.ndarray

    def subset(self, images: np.ndarray, texts: np.ndarray) -> SearchScoring:
        """The same scoring for a sub-gallery: the offsets are per item (they come from the
        model's training bank, not from the rest of the gallery), so they are just sliced."""

        def pick(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
            return None if a is None else a[idx]

        return SearchScoring(
            pick(self.image_offsets, images), pick(self.text_offsets, texts),
            self.image_queries[images],
        )  # fmt: skip

    def ranks(
        self, image_emb: np.ndarray, text_emb: np.ndarray, caption_image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both directions' ranks (`retrieval_ranks`) of the gallery this scoring is for."""
        return retrieval_ranks(
            image_emb,
            text_emb,
            caption_image,
            image_offsets=self.image_offsets,
            text_offsets=self.text_offsets,
            image_queries=self.image_queries,
        )


def search_scoring(model: Encoder, split: EmbeddedSplit, raw: bool = False) -> SearchScoring:
    """The split's scoring as the model's search does it (`raw`: the plain cosine
    similarities instead, no correction and every image querying with its own vector)."""
    correction = None if raw else model.hubness
    image_offsets = text_offsets = None
    if correction is not None:
        image_offsets = correction.offsets(split.image_emb, "images")
        text_offsets = correction.offsets(split.text_emb, "texts")
    flipped = split.query_image_emb
    queries = split.image_emb if raw or flipped is None else flipped
    return SearchScoring(image_offsets, text_offsets, queries)


def split_ranks(
    model: Encoder,
    split: EmbeddedSplit,
    raw: bool = False,
    scoring: SearchScoring | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both directions' ranks as the model's search scores them: the hubness correction when
    the model has one, as a collection indexed with it applies, and image queries with their
    mirror image when the model does that (`raw`: plain cosine similarities; `scoring`:
    already computed)."""
    if scoring is None:
        scoring = search_scoring(model, split, raw)
    return scoring.ranks(split.image_emb, split.text_emb, split.caption_image)


METRIC_COLUMNS = ("R@1", "R@5", "R@10", "MRR", "MedR")


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of one evaluation (also used in docs)."""
    lines = [
        f"{result['model']} on {result['dataset']} {result['split']}: "
        f"{result['n_images']} images, {result['n_texts']} texts",
        f"{'direction':<14}" + "".join(f"{c:>8}" for c in METRIC_COLUMNS),
    ]
    for key, label in (("t2i", "text->image"), ("i2t", "image->text")):
        row = result[key]
        cells = [
            f"{row[c]:8.2f}"
            if c.startswith("R@")
            else (f"{row[c]:8.3f}" if c == "MRR" else f"{row[c]:8.1f}")
            for c in METRIC_COLUMNS
        ]
        lines.append(f"{label:<14}" + "".join(cells))
    if result.get("query_image_flip"):
        lines.append("(image->text: each query image averaged with its mirror image)")
    if "hubness" in result:
        h = result["hubness"]
        lines.append(f"(hubness correction k={h['k']}, weight={h['weight']})")
    raw = result.get("raw_similarities")
    if raw:
        lines.append(
            f"(plain cosine similarities, no correction, images as they are: "
            f"R@1 {raw['t2i']['R@1']:.2f} / {raw['i2t']['R@1']:.2f})"
        )
    if result.get("skipped"):
        lines.append(f"skipped {len(result['skipped'])} unreadable image(s):")
        lines += [f"  {s['path']}: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines)


def markdown_table(results: list[dict[str, Any]]) -> str:
    head = "| model | T→I R@1 | R@5 | R@10 | MRR | MedR | I→T R@1 | R@5 | R@10 | MRR | MedR |"
    rows = [head, "|" + "---|" * 11]
    for r in results:
        cells = []
        for key in ("t2i", "i2t"):
            m = r[key]
            cells += [
                f"{m['R@1']:.2f}",
                f"{m['R@5']:.2f}",
                f"{m['R@10']:.2f}",
                f"{m['MRR']:.3f}",
                f"{m['MedR']:.0f}",
            ]
        rows.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
