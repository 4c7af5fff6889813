"""The two in-memory dataset shapes every loader produces, whatever the files looked like.

Retrieval evaluation needs many captions per image with an exact caption -> image map (recall
is counted per caption); zero-shot classification needs one label per image. Keeping these as
plain arrays and paths, with no decoding, lets the evaluators batch images however they like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossmodal.errors import ConfigError, DatasetError

__all__ = [
    "DEFAULT_FRACTIONS",
    "ImageTextDataset",
    "LabeledImageDataset",
    "split_stratified",
]

DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}


def _as_index_array(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{what} must be a 1-D array of integers, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64, copy=False)


def _check_subset_indices(indices: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Indices as int64, refusing what would silently duplicate or wrap around (negatives)."""
    idx = _as_index_array(indices, "subset indices")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise DatasetError(f"subset index {int(bad)} out of range for {n} images")
    if np.unique(idx).size != idx.size:
        raise DatasetError("subset indices contain duplicates; images must stay unique")
    return idx


@dataclass
class ImageTextDataset:
    """Images with one or more captions each, in a fixed order that retrieval metrics index."""

    name: str
    root: Path
    split: str
    image_paths: list[Path]
    captions: list[str]
    caption_image: np.ndarray = field(repr=False)
    #: one line the user should read about how the split was chosen (e.g. a packaged list)
    notice: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.image_paths = [p if isinstance(p, Path) else Path(p) for p in self.image_paths]
        self.captions = list(self.captions)
        self.caption_image = _as_index_array(self.caption_image, "caption_image")
        if len(self.caption_image) != len(self.captions):
            raise DatasetError(
                f"{self.name}: {len(self.captions)} captions but "
                f"{len(self.caption_image)} caption_image entries"
            )
        n = len(self.image_paths)
        if self.caption_image.size and (
            self.caption_image.min() < 0 or self.caption_image.max() >= n
        ):
            raise DatasetError(f"{self.name}: caption_image refers to images outside 0..{n - 1}")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __repr__(self) -> str:
        return (
            f"ImageTextDataset(name={self.name!r}, split={self.split!r}, "
            f"images={len(self.image_paths)}, captions={len(self.captions)}, root={self.root})"
        )

    @property
    def image_captions(self) -> list[list[int]]:
        """Caption indices per image: the ground truth of image -> text retrieval."""
        out: list[list[int]] = [[] for _ in self.image_paths]
        for ci, ii in enumerate(self.caption_image.tolist()):
            out[ii].append(ci)
        return out

    def subset(self, image_indices: Sequence[int] | np.ndarray) -> ImageTextDataset:
        """The given images, in the given order, with all their captions re-indexed to them."""
        idx = _check_subset_indices(image_indices, len(self.image_paths))
        new_of_old = np.full(len(self.image_paths), -1, dtype=np.int64)
        new_of_old[idx] = np.arange(idx.size, dtype=np.int64)
        per_image = self.image_captions
        captions: list[str] = []
        caption_image: list[int] = []
        for new, old in enumerate(idx.tolist()):
            for ci in per_image[old]:
                captions.append(self.captions[ci])
                caption_image.append(new)
        return ImageTextDataset(
            name=self.name,
            root=self.root,
            split=self.split,
            image_paths=[self.image_paths[i] for i in idx.tolist()],
            captions=captions,
            caption_image=np.asarray(caption_image, dtype=np.int64),
        )


@dataclass
class LabeledImageDataset:
    """Images with one class each; class names double as the text side for zero-shot tests."""

    name: str
    root: Path
    split: str
    image_paths: list[Path]
    labels: np.ndarray = field(repr=False)
    class_ids: list[str]
    class_names: list[str]

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.image_paths = [p if isinstance(p, Path) else Path(p) for p in self.image_paths]
        self.labels = _as_index_array(self.labels, "labels")
        if len(self.labels) != len(self.image_paths):
            raise DatasetError(
                f"{self.name}: {len(self.image_paths)} images but {len(self.labels)} labels"
            )
        if len(self.class_ids) != len(self.class_names):
            raise DatasetError(
                f"{self.name}: {len(self.class_ids)} class ids but "
                f"{len(self.class_names)} class names"
            )
        k = len(self.class_ids)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= k):
            raise DatasetError(f"{self.name}: labels outside 0..{k - 1}")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __repr__(self) -> str:
        return (
            f"LabeledImageDataset(name={self.name!r}, split={self.split!r}, "
            f"images={len(self.image_paths)}, classes={len(self.class_ids)}, root={self.root})"
        )

    def subset(
        self, indices: Sequence[int] | np.ndarray, split: str | None = None
    ) -> LabeledImageDataset:
        """The given images in the given order; the class list is kept whole so labels agree."""
        idx = _check_subset_indices(indices, len(self.image_paths))
        return LabeledImageDataset(
            name=self.name,
            root=self.root,
            split=self.split if split is None else split,
            image_paths=[self.image_paths[i] for i in idx.tolist()],
            labels=self.labels[idx].copy(),
            class_ids=list(self.class_ids),
            class_names=list(self.class_names),
        )


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding: counts sum to n exactly, earlier splits win ties."""
    exact = [f * n for f in fractions]
    counts = [int(np.floor(x)) for x in exact]
    rest = n - sum(counts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def split_stratified(
    ds: LabeledImageDataset,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, LabeledImageDataset]:
    """Disjoint splits holding each class in the same proportions, identical on every run.

    Labelled sets like Stanford Dogs ship without the split lists that caption sets have, so
    train/val/test must be derived; doing it per class keeps rare breeds in every split, and
    seeding each class by its index keeps a class's split stable when other classes change.
    Within a split, images keep their original order.
    """
    fr = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fr:
        raise ConfigError("split_stratified needs at least one split fraction")
    if any(not np.isfinite(v) or v < 0 for v in fr.values()):
        raise ConfigError(f"split fractions must be non-negative numbers, got {fr}")
    total = sum(fr.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {total:g} ({fr})")

    names = list(fr)
    chosen: dict[str, list[int]] = {s: [] for s in names}
    for c in range(len(ds.class_ids)):
        members = np.flatnonzero(ds.labels == c)
        if members.size == 0:
            continue
        rng = np.random.default_rng([seed, c])
        members = members[rng.permutation(members.size)]
        start = 0
        for s, k in zip(names, _allocate(members.size, list(fr.values())), strict=True):
            chosen[s].extend(members[start : start + k].tolist())
            start += k
    return {s: ds.subset(sorted(chosen[s]), split=s) for s in names}
