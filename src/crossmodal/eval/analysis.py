"""Analyses behind `crossmodal report`: pure functions over embeddings and per-query ranks.

Everything here works on the arrays `embed_split` returns and the ranks `retrieval_ranks`
computes, so every number a report shows is derived from exactly what `crossmodal eval` scores
(no second embedding pass, no second definition of a rank). Plotting lives in `plots.py`.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossmodal.errors import CrossmodalError
from crossmodal.eval.evaluate import SearchScoring
from crossmodal.eval.metrics import (
    DEFAULT_KS,
    best_relevant_ranks,
    metrics_from_ranks,
    scores_with_offsets,
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

# ----------------------------------------------------------------------------- caption groups


def _w(text: str) -> tuple[str, ...]:
    """Word lists written as one string (readable in a diff) split into a tuple."""
    return tuple(text.split())


#: Caption length bins in words (alphabetic tokens, so Flickr8k's trailing " ." is not counted).
#: Chosen so each bin of the Flickr8k test split holds several hundred captions.
LENGTH_BINS: tuple[tuple[int, int], ...] = ((1, 7), (8, 9), (10, 11), (12, 13), (14, 16), (17, 99))

#: The keyword map of caption categories. A caption's category is that of its first word found
#: in this map: a stand-in for "the first noun" without a part-of-speech tagger. Words such as
#: "group" or "couple" are not in the map, so "a group of people" counts as people.
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "people": _w(
        "man men woman women person people boy boys girl girls child children kid kids baby "
        "babies toddler toddlers lady ladies guy guys gentleman adult adults teenager teenagers "
        "teen teens player players crowd family biker bikers cyclist cyclists rider riders skier "
        "skiers snowboarder snowboarders skateboarder skateboarders surfer surfers swimmer "
        "swimmers climber climbers runner runners hiker hikers dancer dancers worker workers "
        "athlete athletes team someone student students mother father son "
        "daughter brother sister friends wrestler wrestlers performer performers "
        "musician musicians singer band audience policeman officer cowboy bride groom"
    ),
    "dogs": _w(
        "dog dogs puppy puppies pup pups poodle terrier terriers retriever retrievers collie "
        "dachshund greyhound greyhounds labrador lab beagle shepherd husky pitbull chihuahua "
        "spaniel hound hounds bulldog boxer pug dalmatian rottweiler schnauzer corgi doberman"
    ),
    "other animals": _w(
        "cat cats kitten horse horses pony bird birds cow cows cattle sheep goat goats bull "
        "bulls calf camel camels duck ducks goose geese animal animals elephant elephants "
        "monkey deer pig pigs chicken chickens fish seagull seagulls pigeon pigeons swan "
        "swans bear lion tiger giraffe zebra squirrel rabbit mule donkey ox oxen"
    ),
    "vehicles": _w(
        "car cars bus buses truck trucks bike bikes bicycle bicycles motorcycle motorcycles "
        "motorbike motorbikes boat boats train trains plane planes airplane jeep van tractor "
        "kayak kayaks canoe canoes raft taxi vehicle vehicles atv scooter sailboat ship "
        "helicopter jetski"
    ),
    "scenery": _w(
        "beach mountain mountains snow water ocean sea lake river field fields grass street "
        "streets city road sky sunset forest woods trees tree desert hill hills waves wave "
        "shore landscape building buildings waterfall lawn park meadow cliff valley bridge "
        "rocks sand"
    ),
}
CATEGORY_ORDER: tuple[str, ...] = (*CATEGORY_KEYWORDS, "other")
_CATEGORY_OF: dict[str, str] = {w: cat for cat, words in CATEGORY_KEYWORDS.items() for w in words}

#: Words left out of the "over-represented in failures" table: they say nothing about content.
STOPWORDS: frozenset[str] = frozenset(
    _w(
        "a an the and or of in on at to with while is are was were be being been his her their its "
        "he she they it them this that these those there some one two three four five several "
        "another other into onto from by for as up down out over near next through around front "
        "behind under has have having who which what each both very"
    )
)


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (apostrophes kept inside words)."""
    return _WORD.findall(text.lower())


def length_label(lo: int, hi: int) -> str:
    return f"≥{lo}" if hi >= 99 else (f"≤{hi}" if lo <= 1 else f"{lo}–{hi}")


def length_bin(caption: str, bins: Sequence[tuple[int, int]] = LENGTH_BINS) -> str:
    n = len(words(caption))
    for lo, hi in bins:
        if lo <= n <= hi:
            return length_label(lo, hi)
    # shorter than the first bin (an empty caption) or longer than the last
    return length_label(*bins[0]) if n < bins[0][0] else length_label(*bins[-1])


def length_bin_labels(bins: Sequence[tuple[int, int]] = LENGTH_BINS) -> list[str]:
    return [length_label(lo, hi) for lo, hi in bins]


def caption_category(caption: str) -> str:
    """The category of the caption's first word found in `CATEGORY_KEYWORDS`, else "other"."""
    for w in words(caption):
        cat = _CATEGORY_OF.get(w)
        if cat is not None:
            return cat
    return "other"


@dataclass
class GroupRecall:
    """Recall@K of the text->image queries in each group (order kept for plotting)."""

    groups: list[str]
    counts: dict[str, int]
    recall: dict[str, dict[str, float]]  # group -> {"R@1": ..., ...}


def recall_by_group(
    ranks: np.ndarray,
    labels: Sequence[str],
    order: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
) -> GroupRecall:
    """R@K per group of queries; empty groups are dropped (a 0/0 recall would read as 0 %)."""
    ranks = np.asarray(ranks)
    lab = np.asarray(labels, dtype=object)
    groups, counts, recall = [], {}, {}
    for g in order:
        mask = lab == g
        if not mask.any():
            continue
        groups.append(g)
        counts[g] = int(mask.sum())
        m = metrics_from_ranks(ranks[mask], ks)
        recall[g] = {f"R@{k}": m[f"R@{k}"] for k in ks}
    return GroupRecall(groups=groups, counts=counts, recall=recall)


# ----------------------------------------------------------------------------- gallery size


@dataclass
class GallerySizeCurve:
    """Mean and standard deviation of R@K over random galleries of each size."""

    sizes: list[int]
    trials: int
    seed: int
    t2i_mean: dict[str, list[float]]
    t2i_std: dict[str, list[float]]
    i2t_mean: dict[str, list[float]]
    i2t_std: dict[str, list[float]]


def recall_vs_gallery_size(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    sizes: Sequence[int],
    trials: int = 5,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    progress: Callable[[int], None] | None = None,
    scoring: SearchScoring | None = None,
) -> GallerySizeCurve:
    """Score random sub-galleries: `size` images drawn without replacement and all their
    captions. A size equal to the whole split is scored once, since every draw is the same.
    `scoring`: the model's search scoring of the whole split (raw similarities without)."""
    n = len(image_emb)
    too_big = [s for s in sizes if s > n]
    if too_big:
        raise CrossmodalError(
            f"gallery size {max(too_big)} is larger than the split ({n} images); "
            "choose --gallery-sizes no larger than that"
        )
    if any(s < 1 for s in sizes):
        raise CrossmodalError("gallery sizes must be positive numbers of images")
    caption_image = np.asarray(caption_image, np.int64)
    if scoring is None:  # plain similarities, every image querying with its own vector
        scoring = SearchScoring(None, None, np.asarray(image_emb, np.float32))
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {
        key: {f"R@{k}": [] for k in ks} for key in ("t2i_mean", "t2i_std", "i2t_mean", "i2t_std")
    }
    for size in sizes:
        runs = 1 if size == n else trials
        per: dict[str, list[dict[str, float]]] = {"t2i": [], "i2t": []}
        for _ in range(runs):
            pick = np.sort(rng.choice(n, size=size, replace=False))
            new_of_old = np.full(n, -1, np.int64)
            new_of_old[pick] = np.arange(size)
            keep = np.flatnonzero(new_of_old[caption_image] >= 0)
            t2i, i2t = scoring.subset(pick, keep).ranks(
                image_emb[pick], text_emb[keep], new_of_old[caption_image[keep]]
            )
            per["t2i"].append(metrics_from_ranks(t2i, ks))
            per["i2t"].append(metrics_from_ranks(i2t, ks))
            if progress is not None:
                progress(1)
        for d in ("t2i", "i2t"):
            for k in ks:
                vals = np.array([m[f"R@{k}"] for m in per[d]])
                out[f"{d}_mean"][f"R@{k}"].append(float(vals.mean()))
                out[f"{d}_std"][f"R@{k}"].append(float(vals.std()))
    return GallerySizeCurve(sizes=list(sizes), trials=trials, seed=seed, **out)


# ----------------------------------------------------------------------------- prompt study

#: Text variants of the prompt study: name -> how a raw caption is rewritten.
_PUNCT = str.maketrans("", "", string.punctuation)
PROMPT_VARIANTS: dict[str, Callable[[str], str]] = {
    "raw caption": lambda c: c,
    "a photo of {caption}": lambda c: f"a photo of {c}",
    "lower-cased": lambda c: c.lower(),
    "punctuation stripped": lambda c: " ".join(c.translate(_PUNCT).split()),
}


def text_to_image_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    chunk: int = 4096,
    image_offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Text->image ranks alone, as `retrieval_ranks` computes them, for any subset of the
    captions (`retrieval_ranks` also scores image->text, which needs every image captioned)."""
    image_emb = np.asarray(image_emb, np.float32)
    caption_image = np.asarray(caption_image, np.int64)
    out = np.empty(len(text_emb), np.int64)
    for s in range(0, len(text_emb), chunk):
        scores = scores_with_offsets(text_emb[s : s + chunk], image_emb, image_offsets)
        rel = np.zeros_like(scores, dtype=bool)
        rel[np.arange(len(scores)), caption_image[s : s + chunk]] = True
        out[s : s + chunk] = best_relevant_ranks(scores, rel)
    return out


# ----------------------------------------------------------------------------- examples


@dataclass
class TopK:
    """Top-K hits of some queries: `items[q]` are gallery indices, best first."""

    queries: list[int]
    items: np.ndarray  # (n_queries, k) int
    scores: np.ndarray  # (n_queries, k) float


def top_k(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    queries: Sequence[int],
    k: int,
    offsets: np.ndarray | None = None,
) -> TopK:
    """Highest-scoring gallery items; ties keep gallery order (stable sort). `offsets`: added
    to every score of a gallery item (the hubness correction), as search does."""
    q = list(queries)
    if not q:
        return TopK([], np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
    scores = scores_with_offsets(query_emb[q], gallery_emb, offsets)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return TopK(q, order, np.take_along_axis(scores, order, axis=1))


def pick_examples(
    ranks: np.ndarray, n: int, seed: int, fail_after: int = 10
) -> tuple[list[int], list[int]]:
    """Seeded sample of successes (rank 1) and failures (rank > fail_after), query indices."""
    rng = np.random.default_rng(seed)
    ranks = np.asarray(ranks)
    hits = np.flatnonzero(ranks == 1)
    misses = np.flatnonzero(ranks > fail_after)
    pick_h: np.ndarray | list[int] = (
        np.sort(rng.choice(hits, size=min(n, hits.size), replace=False)) if hits.size else []
    )
    pick_m: np.ndarray | list[int] = (
        np.sort(rng.choice(misses, size=min(n, misses.size), replace=False)) if misses.size else []
    )
    return [int(i) for i in pick_h], [int(i) for i in pick_m]


# ----------------------------------------------------------------------------- what went wrong


@dataclass
class ImagePair:
    a: int
    b: int
    cosine: float
    confusions: int  # captions of a whose top-1 image is b, plus the other way round


def confused_pairs(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_image: np.ndarray,
    top: int = 8,
    chunk: int = 1024,
    image_offsets: np.ndarray | None = None,
) -> tuple[list[ImagePair], list[ImagePair]]:
    """(most confused pairs, nearest near-duplicates).

    Confused: pairs (true image, wrongly retrieved top-1 image) counted over text->image
    queries (scored with `image_offsets` added, as search does), most frequent first, ties
    broken by image-image cosine. Near-duplicates: the image pairs of highest image-image
    cosine in the gallery, with their confusion counts.
    """
    img = np.asarray(image_emb, np.float32)
    caption_image = np.asarray(caption_image, np.int64)
    top1 = np.empty(len(text_emb), np.int64)
    for s in range(0, len(text_emb), chunk):
        scores = scores_with_offsets(text_emb[s : s + chunk], img, image_offsets)
        top1[s : s + chunk] = np.argmax(scores, axis=1)
    counts: Counter[tuple[int, int]] = Counter()
    for true, got in zip(caption_image.tolist(), top1.tolist(), strict=True):
        if true != got:
            counts[(min(true, got), max(true, got))] += 1

    def pair(a: int, b: int) -> ImagePair:
        return ImagePair(a, b, float(img[a] @ img[b]), counts.get((a, b), 0))

    confused = [pair(a, b) for a, b in counts]
    confused.sort(key=lambda p: (-p.confusions, -p.cosine, p.a, p.b))
    # Near-duplicates row block by row block: each row keeps its best `top` partners above
    # the diagonal, so memory stays O(chunk x n) even for a gallery of tens of thousands.
    candidates: list[tuple[float, int, int]] = []
    n = len(img)
    for s in range(0, n, chunk):
        sim = img[s : s + chunk] @ img.T
        rows = np.arange(s, min(s + chunk, n))
        sim[np.arange(len(rows))[:, None] >= (np.arange(n)[None, :] - s)] = -np.inf
        keep = min(top, n)
        best = np.argpartition(-sim, keep - 1, axis=1)[:, :keep]
        for r, cols in zip(rows.tolist(), best.tolist(), strict=True):
            candidates += [(float(sim[r - s, c]), r, c) for c in cols if sim[r - s, c] > -np.inf]
    candidates.sort(key=lambda t: (-t[0], t[1], t[2]))
    near = [pair(a, b) for _, a, b in candidates[:top]]
    return confused[:top], near


@dataclass
class WordStat:
    word: str
    failed: int  # failed queries containing the word
    succeeded: int
    ratio: float  # smoothed rate in failures / rate in successes


@dataclass
class WordContrast:
    n_failed: int
    n_succeeded: int
    over_in_failed: list[WordStat] = field(default_factory=list)
    over_in_succeeded: list[WordStat] = field(default_factory=list)


def word_contrast(
    captions: Sequence[str],
    ranks: np.ndarray,
    fail_after: int = 10,
    min_count: int = 5,
    top: int = 12,
) -> WordContrast:
    """Words over-represented in failed text->image queries (true image past `fail_after`)
    against successful ones (true image first), counting each word once per caption.

    The ratio uses add-one smoothing so a word absent from one side does not divide by zero.
    """
    ranks = np.asarray(ranks)
    failed = ranks > fail_after
    succeeded = ranks == 1
    cf: Counter[str] = Counter()
    cs: Counter[str] = Counter()
    for cap, f, s in zip(captions, failed.tolist(), succeeded.tolist(), strict=True):
        if not (f or s):
            continue
        uniq = {w for w in words(cap) if w not in STOPWORDS and len(w) > 1}
        (cf if f else cs).update(uniq)
    nf, ns = int(failed.sum()), int(succeeded.sum())
    out = WordContrast(n_failed=nf, n_succeeded=ns)
    if nf == 0 or ns == 0:
        return out
    stats = [
        WordStat(w, cf[w], cs[w], ((cf[w] + 1) / (nf + 2)) / ((cs[w] + 1) / (ns + 2)))
        for w in set(cf) | set(cs)
        if cf[w] + cs[w] >= min_count
    ]
    out.over_in_failed = sorted(
        (s for s in stats if s.ratio > 1 and s.failed >= min_count // 2 + 1),
        key=lambda s: (-s.ratio, -s.failed, s.word),
    )[:top]
    out.over_in_succeeded = sorted(
        (s for s in stats if s.ratio < 1 and s.succeeded >= min_count // 2 + 1),
        key=lambda s: (s.ratio, -s.succeeded, s.word),
    )[:top]
    return out


# ----------------------------------------------------------------------------- t-SNE


def tsne_perplexity(n_points: int) -> float:
    """scikit-learn needs perplexity < n_samples; ~n/3 keeps tiny samples meaningful."""
    return float(max(1.0, min(30.0, (n_points - 1) / 3)))


def tsne_2d(points: np.ndarray, seed: int = 0, cache_dir: str | Path | None = None) -> np.ndarray:
    """2-D t-SNE of unit vectors with cosine distance (the metric retrieval uses).

    t-SNE is the slowest step of a report that reads its embeddings from the cache, so its
    result is cached too, keyed by the exact input points and every parameter.
    """
    import sklearn
    from sklearn.manifold import TSNE

    x = np.ascontiguousarray(points, np.float32)
    if len(x) < 4:
        raise CrossmodalError(f"t-SNE needs at least 4 points (got {len(x)})")
    params = {
        "n_components": 2,
        "perplexity": tsne_perplexity(len(x)),
        "metric": "cosine",
        "init": "pca",
        "random_state": seed,
        "max_iter": 500,
    }
    cached: Path | None = None
    if cache_dir is not None:
        digest = hashlib.sha1(x.tobytes())
        digest.update(repr((x.shape, sorted(params.items()), sklearn.__version__)).encode())
        cached = Path(cache_dir) / "tsne" / f"{digest.hexdigest()[:24]}.npy"
        try:
            return np.load(cached)
        except (OSError, ValueError):
            pass  # not cached yet, or a damaged file: recompute
    xy = TSNE(**params).fit_transform(x).astype(np.float32)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, xy)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return xy


# ----------------------------------------------------------------------------- seed 003's protocol

#: The recall cut-offs seed 003 reports (with the mean rank), over its 1k test images.
SEED003_KS: tuple[int, ...] = (1, 5, 20)


def seed003_protocol(t2i_ranks: np.ndarray, i2t_ranks: np.ndarray) -> dict[str, dict[str, float]]:
    """R@1/5/20 and mean rank of both directions, from the very per-query ranks the eval
    computed (so R@1 and R@5 equal metrics.json's), laid out as seed 003 reports them."""
    out: dict[str, dict[str, float]] = {}
    for direction, ranks in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        m = metrics_from_ranks(np.asarray(ranks), SEED003_KS)
        out[direction] = {f"R@{k}": m[f"R@{k}"] for k in SEED003_KS} | {"MeanR": m["MeanR"]}
    return out


# ----------------------------------------------------------------------------- the shared space


@dataclass
class SpaceStats:
    """Numbers of the embedding space itself: how unit-length the vectors are (they should be:
    similarity is a dot product), how far matched pairs score above unmatched ones, and the
    distance between the two modalities' centroids (the "modality gap")."""

    image_norm_mean: float
    text_norm_mean: float
    norm_max_deviation: float  # largest | ||v|| - 1 | over every vector
    matched_cosine: float  # mean cosine of each caption with its own image
    unmatched_cosine: float  # mean cosine of each caption with every other image
    centroid_distance: float  # || mean image vector - mean caption vector ||
    image_image_cosine: float  # mean cosine of two different images of the gallery


def space_stats(
    image_emb: np.ndarray, text_emb: np.ndarray, caption_image: np.ndarray
) -> SpaceStats:
    images = np.asarray(image_emb, np.float64)
    texts = np.asarray(text_emb, np.float64)
    caption_image = np.asarray(caption_image, np.int64)
    image_norms, text_norms = np.linalg.norm(images, axis=1), np.linalg.norm(texts, axis=1)
    matched = np.einsum("ij,ij->i", texts, images[caption_image])
    # the sum of every caption-image cosine without forming the matrix: (sum t) . (sum i)
    everything = float(texts.sum(axis=0) @ images.sum(axis=0))
    n_unmatched = len(texts) * len(images) - len(texts)
    image_sum = images.sum(axis=0)
    n = len(images)
    image_pairs = (float(image_sum @ image_sum) - float((image_norms**2).sum())) / max(
        1, n * (n - 1)
    )
    deviation = np.abs(np.concatenate([image_norms, text_norms]) - 1.0).max()
    return SpaceStats(
        image_norm_mean=float(image_norms.mean()),
        text_norm_mean=float(text_norms.mean()),
        norm_max_deviation=float(deviation),
        matched_cosine=float(matched.mean()),
        unmatched_cosine=(everything - float(matched.sum())) / max(1, n_unmatched),
        centroid_distance=float(np.linalg.norm(images.mean(axis=0) - texts.mean(axis=0))),
        image_image_cosine=image_pairs,
    )


__all__ = [
    "CATEGORY_KEYWORDS",
    "CATEGORY_ORDER",
    "LENGTH_BINS",
    "PROMPT_VARIANTS",
    "SEED003_KS",
    "GallerySizeCurve",
    "GroupRecall",
    "ImagePair",
    "SpaceStats",
    "TopK",
    "WordContrast",
    "WordStat",
    "caption_category",
    "confused_pairs",
    "length_bin",
    "length_bin_labels",
    "pick_examples",
    "recall_by_group",
    "recall_vs_gallery_size",
    "seed003_protocol",
    "space_stats",
    "text_to_image_ranks",
    "top_k",
    "tsne_2d",
    "tsne_perplexity",
    "word_contrast",
    "words",
]
