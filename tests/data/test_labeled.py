"""'folder' and 'stanford-dogs' layouts -> LabeledImageDataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import LabeledImageDataset, load_dataset
from crossmodal.errors import DatasetError

from .corpus import write_jpeg, write_text

# wnid -> (breed, number of images); deliberately not in sorted order
DOGS = {
    "n02099601": ("golden_retriever", 5),
    "n02085620": ("Chihuahua", 10),
    "n02110958": ("pug", 5),
}


def _dogs_tsv_root(tmp_path: Path, with_classes: bool = True) -> Path:
    root = tmp_path / "dogs"
    rows = ["image\twnid\tbreed"]
    for wnid, (breed, n) in DOGS.items():
        for i in range(n):
            name = f"{wnid}_{100 + i}.jpg"
            write_jpeg(root / "images" / name)
            rows.append(f"{name}\t{wnid}\t{breed}")
    write_text(root / "labels.tsv", "\n".join(rows) + "\n")
    if with_classes:
        lines = ["wnid\tbreed\tsource_folder\timages_here\timages_in_source"]
        lines += [f"{w}\t{b}\t{w}-x\t{n}\t{n * 7}" for w, (b, n) in sorted(DOGS.items())]
        write_text(root / "classes.tsv", "\n".join(lines) + "\n")
    return root


def _dogs_folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "StanfordDogs"
    for wnid, (breed, n) in DOGS.items():
        for i in range(n):
            write_jpeg(root / "Images" / f"{wnid}-{breed}" / f"{wnid}_{100 + i}.jpg")
    return root


def _check_dogs_all(ds: LabeledImageDataset, root: Path) -> None:
    assert isinstance(ds, LabeledImageDataset)
    assert ds.name == "stanford-dogs" and ds.split == "all" and ds.root == root
    assert ds.class_ids == ["n02085620", "n02099601", "n02110958"]
    assert ds.class_names == ["Chihuahua", "golden_retriever", "pug"]
    assert len(ds) == 20
    assert ds.labels.dtype == np.int64
    for path, label in zip(ds.image_paths, ds.labels.tolist(), strict=True):
        assert path.is_file()
        assert path.name.startswith(ds.class_ids[label])
    assert np.bincount(ds.labels).tolist() == [10, 5, 5]


@pytest.mark.parametrize("with_classes", [True, False])
def test_stanford_dogs_tsv(tmp_path: Path, with_classes: bool) -> None:
    root = _dogs_tsv_root(tmp_path, with_classes)
    ds = load_dataset("stanford-dogs", root, "all")
    _check_dogs_all(ds, root)
    # labels.tsv order is kept
    assert ds.image_paths[0].name == "n02099601_100.jpg"


def test_stanford_dogs_own_layout(tmp_path: Path) -> None:
    root = _dogs_folder_root(tmp_path)
    _check_dogs_all(load_dataset("stanford_dogs", root, "all"), root)
    # pointing at Images/ itself works too
    ds = load_dataset("stanford-dogs", root / "Images", "all")
    assert ds.class_names == ["Chihuahua", "golden_retriever", "pug"]


def test_stanford_dogs_splits(tmp_path: Path) -> None:
    root = _dogs_tsv_root(tmp_path)
    parts = {s: load_dataset("stanford-dogs", root, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 12, "val": 4, "test": 4}
    assert [d.split for d in parts.values()] == ["train", "val", "test"]
    names = [set(d.image_paths) for d in parts.values()]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert np.bincount(parts["train"].labels).tolist() == [6, 3, 3]
    again = load_dataset("stanford-dogs", root, "test")
    assert again.image_paths == parts["test"].image_paths


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda root: (root / "images" / "n02110958_101.jpg").unlink(),
            "labels.tsv line 18: no image file for n02110958_101.jpg",
        ),
        (
            lambda root: _append(root / "labels.tsv", "n02085620_100.jpg\n"),
            "labels.tsv line 22: expected 'image<TAB>wnid<TAB>breed'",
        ),
        (
            lambda root: _append(root / "labels.tsv", "n02085620_100.jpg\tn02085620\tChihuahua\n"),
            "labels.tsv line 22: n02085620_100.jpg is listed twice (first on line 7)",
        ),
        (
            lambda root: _append(root / "labels.tsv", "n0_1.jpg\tn09999999\tWolf\n"),
            "labels.tsv line 22: class n09999999 of n0_1.jpg is not in classes.tsv",
        ),
        (
            lambda root: _append(root / "classes.tsv", "n02085620\tChihuahua again\n"),
            "classes.tsv line 5: n02085620 is listed twice (first on line 2)",
        ),
    ],
)
def test_stanford_dogs_errors(tmp_path: Path, edit, message: str) -> None:
    root = _dogs_tsv_root(tmp_path)
    edit(root)
    with pytest.raises(DatasetError) as e:
        load_dataset("stanford-dogs", root, "all")
    assert str(e.value).startswith(message)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def test_stanford_dogs_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset("stanford-dogs", tmp_path, "all")
    assert "labels.tsv" in str(e.value) and "Images/<wnid>-<breed>" in str(e.value)


def test_folder_layout(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for cls, n in {"dog": 5, "cat": 5, "bird": 10}.items():
        for i in range(n):
            write_jpeg(root / cls / f"{cls}{i:02d}.jpg")
    write_text(root / "cat" / "notes.txt", "not an image\n")
    (root / "empty").mkdir()
    ds = load_dataset("folder", root, "all")
    assert isinstance(ds, LabeledImageDataset)
    assert ds.class_ids == ds.class_names == ["bird", "cat", "dog"]  # "empty" has no images
    assert len(ds) == 20
    assert [ds.class_names[k] for k in ds.labels.tolist()] == [
        p.parent.name for p in ds.image_paths
    ]
    test = load_dataset("folder", root, "test")
    assert len(test) == 4 and np.bincount(test.labels).tolist() == [2, 1, 1]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("folder", tmp_path, "all")
    (tmp_path / "a").mkdir()
    write_text(tmp_path / "a" / "x.txt", "hi")
    with pytest.raises(DatasetError, match="no images"):
        load_dataset("folder", tmp_path, "all")
