"""ImageTextDataset / LabeledImageDataset behaviour and split_stratified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import ImageTextDataset, LabeledImageDataset, split_stratified
from crossmodal.errors import CrossmodalError, DatasetError


def _text_ds() -> ImageTextDataset:
    return ImageTextDataset(
        name="t",
        root=Path("/r"),
        split="all",
        image_paths=[Path(f"/r/{i}.jpg") for i in range(4)],
        captions=["a0", "b0", "a1", "a2", "b2", "c2", "a3"],
        caption_image=np.array([0, 0, 1, 2, 2, 2, 3]),
    )


def _labeled_ds(sizes: list[int]) -> LabeledImageDataset:
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    # interleave classes so that order-preservation is visible
    order = np.argsort(np.arange(labels.size) % 7, kind="stable")
    labels = labels[order]
    return LabeledImageDataset(
        name="l",
        root=Path("/r"),
        split="all",
        image_paths=[Path(f"/r/{i}.jpg") for i in range(labels.size)],
        labels=labels,
        class_ids=[f"c{k}" for k in range(len(sizes))],
        class_names=[f"class {k}" for k in range(len(sizes))],
    )


def test_image_captions_and_len() -> None:
    ds = _text_ds()
    assert len(ds) == 4
    assert ds.image_captions == [[0, 1], [2], [3, 4, 5], [6]]
    assert ds.caption_image.dtype == np.int64


def test_text_subset_reindexes() -> None:
    sub = _text_ds().subset([3, 0])
    assert [p.name for p in sub.image_paths] == ["3.jpg", "0.jpg"]
    assert sub.captions == ["a3", "a0", "b0"]
    assert sub.caption_image.tolist() == [0, 1, 1]
    assert sub.image_captions == [[0], [1, 2]]


@pytest.mark.parametrize("bad", [[4], [-1], [1, 1]])
def test_text_subset_rejects_bad_indices(bad: list[int]) -> None:
    with pytest.raises(DatasetError):
        _text_ds().subset(bad)


def test_text_dataset_validates() -> None:
    with pytest.raises(DatasetError, match="caption_image"):
        ImageTextDataset("t", Path("/r"), "all", [Path("a.jpg")], ["x", "y"], np.array([0]))
    with pytest.raises(DatasetError, match="outside"):
        ImageTextDataset("t", Path("/r"), "all", [Path("a.jpg")], ["x"], np.array([1]))


def test_labeled_subset_keeps_classes() -> None:
    ds = _labeled_ds([3, 2])
    sub = ds.subset([1, 0])
    assert sub.class_ids == ds.class_ids and sub.labels.tolist() == ds.labels[[1, 0]].tolist()
    with pytest.raises(DatasetError):
        ds.subset([99])


def test_split_stratified_counts_disjoint_order() -> None:
    ds = _labeled_ds([10, 5, 20, 1])
    parts = split_stratified(ds)
    assert list(parts) == ["train", "val", "test"]
    counts = {s: np.bincount(p.labels, minlength=4).tolist() for s, p in parts.items()}
    assert counts == {"train": [6, 3, 12, 1], "val": [2, 1, 4, 0], "test": [2, 1, 4, 0]}
    seen = [set(p.image_paths) for p in parts.values()]
    assert sum(len(s) for s in seen) == len(ds)
    assert set.union(*seen) == set(ds.image_paths)
    for p in parts.values():
        idx = [int(x.stem) for x in p.image_paths]
        assert idx == sorted(idx)  # original order kept within a split
        assert p.labels.tolist() == ds.labels[idx].tolist()  # labels still match their images


def test_split_stratified_deterministic_and_seeded() -> None:
    ds = _labeled_ds([10, 5, 20])
    a = split_stratified(ds, seed=0)
    b = split_stratified(ds, seed=0)
    c = split_stratified(ds, seed=1)
    assert all(a[s].image_paths == b[s].image_paths for s in a)
    assert any(a[s].image_paths != c[s].image_paths for s in a)
    assert a["test"].split == "test"


def test_split_stratified_custom_fractions() -> None:
    parts = split_stratified(_labeled_ds([10, 10]), {"fit": 0.5, "holdout": 0.5}, seed=3)
    assert {s: len(p) for s, p in parts.items()} == {"fit": 10, "holdout": 10}
    with pytest.raises(CrossmodalError, match="sum to 1"):
        split_stratified(_labeled_ds([4]), {"a": 0.5, "b": 0.6})
    with pytest.raises(CrossmodalError, match="non-negative"):
        split_stratified(_labeled_ds([4]), {"a": 1.5, "b": -0.5})
