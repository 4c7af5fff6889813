"""Per-model work of `crossmodal report`: embed and score a split once, then every analysis
and figure of one model (prompt study, t-SNE, heatmap, top-K grids) from those same ranks.

`ModelRun` carries one model's measurements to the sections that write them up
(`crossmodal.eval.sections`, `crossmodal.eval.paper`) and to analysis.json.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmodal.data import ImageTextDataset, load_image
from crossmodal.errors import CrossmodalError, ImageLoadError
from crossmodal.eval import analysis as an
from crossmodal.eval import plots
from crossmodal.eval.evaluate import (
    EmbeddedSplit,
    SearchScoring,
    embed_split,
    evaluate,
    search_scoring,
    split_ranks,
)
from crossmodal.eval.metrics import metrics_from_ranks, scores_with_offsets
from crossmodal.models.base import Encoder
from crossmodal.models.features import embed_texts

if TYPE_CHECKING:  # the options live with build_report, which imports this module
    from crossmodal.eval.options import ReportOptions

#: Longest side of a photo thumbnail in the grids: below the 96 px the project allows at most.
THUMBNAIL_PX = 88
FAIL_AFTER = 10  # a text query "fails" when its true image is not in the top 10

#: Saves a figure under figures/ and returns its path relative to the report folder.
SaveFigure = Callable[..., Path]


@dataclass
class ModelRun:
    label: str
    slug: str
    colour: str
    result: dict[str, Any]
    split: EmbeddedSplit
    #: how the model's search scores this split; every ranking in the report goes through it
    scoring: SearchScoring
    t2i: np.ndarray
    i2t: np.ndarray
    model: Encoder | None = None
    figures: dict[str, Path] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: wall seconds of each stage of this model's part of the report run
    seconds: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- links and photos


def rel_link(path: Path, out_dir: Path) -> str:
    """A link to a photo relative to the report, so the report never carries the photo."""
    # abspath, not resolve: a dataset reached through a symlink keeps the path the user gave
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    except ValueError:  # another drive on Windows
        rel = Path(os.path.abspath(path)).as_uri()
    return Path(rel).as_posix()


def photo_link(path: Path, out_dir: Path) -> str:
    return f"[{Path(path).name}]({rel_link(path, out_dir)})"


def make_thumbnailer(photos: bool) -> plots.Thumbnail:
    @lru_cache(maxsize=512)
    def thumb(path: Path) -> np.ndarray | None:
        if not photos:
            return None
        try:
            image = load_image(path)
        except ImageLoadError:
            return None
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        return np.asarray(image)

    return thumb


# ----------------------------------------------------------------------------- embed and score


def embed_and_score(
    model: Encoder, dataset: ImageTextDataset, cache_dir: Path | None, show_progress: bool
) -> tuple[dict[str, Any], EmbeddedSplit, SearchScoring, np.ndarray, np.ndarray]:
    # `evaluate` gives metrics.json exactly as `crossmodal eval` writes it and fills the
    # cache; the second embed_split is then all cache hits (a second or two).
    result = evaluate(model, dataset, cache_dir=cache_dir, show_progress=show_progress)
    split = embed_split(model, dataset, cache_dir=cache_dir, show_progress=False)
    scoring = search_scoring(model, split)
    t2i, i2t = split_ranks(model, split, scoring=scoring)
    ks = tuple(int(k[2:]) for k in result["t2i"] if k.startswith("R@"))
    if metrics_from_ranks(t2i, ks) != result["t2i"] or metrics_from_ranks(i2t, ks) != result["i2t"]:
        # The second pass reads the first one's cache, so this only fires if the cache was
        # changed underneath us: refuse to publish a report that disagrees with metrics.json.
        raise CrossmodalError(
            f"{model.name}: embeddings changed between two passes; run with a cache"
        )
    return result, split, scoring, t2i, i2t


def prompt_sample(n_captions: int, limit: int, seed: int) -> np.ndarray:
    """Caption indices of the prompt study: all of them, or a seeded sample of `limit`."""
    if limit <= 0 or limit >= n_captions:
        return np.arange(n_captions)
    return np.sort(np.random.default_rng(seed).choice(n_captions, size=limit, replace=False))


def prompt_study(
    model: Encoder,
    run: ModelRun,
    cache_dir: Path | None,
    opt: ReportOptions,
    show_progress: bool,
) -> dict[str, dict[str, float]]:
    # Each variant is a fresh pass of every query through the text tower: the costliest step
    # of a first report, hence the optional sample (the cache makes later runs free).
    split = run.split
    idx = prompt_sample(len(split.captions), opt.prompt_captions, opt.seed + 2)
    out: dict[str, dict[str, float]] = {}
    for name, rewrite in an.PROMPT_VARIANTS.items():
        if name == "raw caption":
            ranks = run.t2i[idx]  # the very ranks of metrics.json
        else:
            texts = [rewrite(split.captions[i]) for i in idx]
            emb = embed_texts(model, texts, cache_dir=cache_dir, show_progress=show_progress)
            ranks = an.text_to_image_ranks(
                split.image_emb,
                emb,
                split.caption_image[idx],
                image_offsets=run.scoring.image_offsets,
            )
        m = metrics_from_ranks(ranks, opt.ks)
        out[name] = {f"R@{k}": m[f"R@{k}"] for k in opt.ks} | {"MRR": m["MRR"]}
    return out


# ----------------------------------------------------------------------------- figures


def tsne_figure(run: ModelRun, sample: np.ndarray, opt: ReportOptions, cache: Path | None) -> Any:
    split = run.split
    caps = np.flatnonzero(np.isin(split.caption_image, sample))
    row_of = {int(i): r for r, i in enumerate(sample.tolist())}
    text_image = np.array([row_of[int(split.caption_image[c])] for c in caps], np.int64)
    points = np.concatenate([split.image_emb[sample], split.text_emb[caps]])
    xy = an.tsne_2d(points, seed=opt.seed, cache_dir=cache)
    image_xy, text_xy = xy[: len(sample)], xy[len(sample) :]
    pairs: list[tuple[int, int]] = []
    for r in range(min(opt.tsne_pairs, len(sample))):
        first = np.flatnonzero(text_image == r)
        if first.size:
            pairs.append((r, int(first[0])))
    return plots.tsne_figure(image_xy, text_xy, pairs, run.label, run.colour)


def heatmap(run: ModelRun, images: np.ndarray, save: SaveFigure) -> tuple[Path, dict[str, Any]]:
    split = run.split
    first_caption: dict[int, int] = {}
    for c, i in enumerate(split.caption_image.tolist()):
        first_caption.setdefault(i, c)
    caps = [first_caption[int(i)] for i in images]
    sim = split.text_emb[caps] @ split.image_emb[images].T
    fig = plots.heatmap_figure(
        sim,
        [split.image_paths[i].stem for i in images],
        [split.captions[c] for c in caps],
        run.label,
    )
    path = save(fig, f"heatmap-{run.slug}.png")
    diag_hits = int((sim.argmax(axis=1) == np.arange(len(caps))).sum())
    return path, {"images": len(images), "diagonal_is_row_max": diag_hits}


def _t2i_rows(run: ModelRun, queries: list[int], k: int) -> list[plots.T2IRow]:
    split, scoring = run.split, run.scoring
    top = an.top_k(split.text_emb, split.image_emb, queries, k, scoring.image_offsets)
    rows = []
    for q, items, scores in zip(top.queries, top.items, top.scores, strict=True):
        true = int(split.caption_image[q])
        hits = [
            plots.GridHit(split.image_paths[i], float(s), r + 1, int(i) == true)
            for r, (i, s) in enumerate(zip(items.tolist(), scores.tolist(), strict=True))
        ]
        true_hit = None
        if not any(h.is_true for h in hits):
            score = float(split.text_emb[q] @ split.image_emb[true])
            if scoring.image_offsets is not None:
                score += float(scoring.image_offsets[true])
            true_hit = plots.GridHit(split.image_paths[true], score, int(run.t2i[q]), True)
        rows.append(plots.T2IRow(split.captions[q], int(run.t2i[q]), hits, true_hit))
    return rows


def _i2t_rows(run: ModelRun, queries: list[int], k: int) -> list[plots.I2TRow]:
    split, scoring = run.split, run.scoring
    per_image: list[list[int]] = [[] for _ in split.image_paths]
    for c, i in enumerate(split.caption_image.tolist()):
        per_image[i].append(c)
    top = an.top_k(scoring.image_queries, split.text_emb, queries, k, scoring.text_offsets)
    rows = []
    for q, items, scores in zip(top.queries, top.items, top.scores, strict=True):
        hits = [
            (split.captions[c], float(s), r + 1, int(split.caption_image[c]) == q)
            for r, (c, s) in enumerate(zip(items.tolist(), scores.tolist(), strict=True))
        ]
        # the true caption that ranks best (the one whose rank is the query's rank)
        mine = per_image[q]
        best = None
        if mine:
            own = scores_with_offsets(
                scoring.image_queries[q : q + 1],
                split.text_emb[mine],
                None if scoring.text_offsets is None else scoring.text_offsets[mine],
            )[0]
            best = mine[int(np.argmax(own))]
        truth = split.captions[best] if best is not None else ""
        rows.append(plots.I2TRow(split.image_paths[q], int(run.i2t[q]), hits, truth))
    return rows


def grids(
    run: ModelRun, opt: ReportOptions, thumb: plots.Thumbnail, save: SaveFigure
) -> dict[str, list[dict[str, Any]]]:
    """The four top-K grid figures of one model, and their rows for the tables."""
    t_hit, t_miss = an.pick_examples(run.t2i, opt.examples, opt.seed, FAIL_AFTER)
    i_hit, i_miss = an.pick_examples(run.i2t, opt.examples, opt.seed, FAIL_AFTER)
    examples: dict[str, list[dict[str, Any]]] = {}
    t2i_specs = (
        ("t2i_hits", "Text→image: true image ranked 1st", t_hit),
        ("t2i_misses", f"Text→image: true image ranked past {FAIL_AFTER}", t_miss),
    )
    for key, title, queries in t2i_specs:
        t_rows = _t2i_rows(run, queries, opt.top_k)
        fig = plots.t2i_grid_figure(t_rows, title, run.label, thumb)
        run.figures[key] = save(fig, f"{key.replace('_', '-')}-{run.slug}.png", opt.photos)
        examples[key] = [
            {
                "query": r.caption,
                "true_rank": r.true_rank,
                "true_image": (r.true_hit or next(h for h in r.hits if h.is_true)).path,
                "hits": [(h.path, h.score) for h in r.hits],
            }
            for r in t_rows
        ]
    i2t_specs = (
        ("i2t_hits", "Image→text: a true caption ranked 1st", i_hit),
        ("i2t_misses", f"Image→text: no true caption in the top {FAIL_AFTER}", i_miss),
    )
    for key, title, queries in i2t_specs:
        i_rows = _i2t_rows(run, queries, opt.top_k)
        fig = plots.i2t_grid_figure(i_rows, title, run.label, thumb)
        run.figures[key] = save(fig, f"{key.replace('_', '-')}-{run.slug}.png", opt.photos)
        examples[key] = [
            {
                "image": r.image,
                "true_rank": r.true_rank,
                "hits": [(cap, score, ok) for cap, score, _, ok in r.hits],
            }
            for r in i_rows
        ]
    return examples
