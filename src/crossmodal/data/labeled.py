"""The labelled image layouts `load_dataset` reads: a folder per class, and Stanford Dogs.

Neither ships split lists, so train/val/test are a fixed stratified 60/20/20 split of 'all'.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from crossmodal.data.datasets import LabeledImageDataset, split_stratified
from crossmodal.data.formats import (
    describe_dirs,
    display_name,
    existing_dirs,
    find_file,
    read_text,
)
from crossmodal.data.images import is_image_file
from crossmodal.errors import DatasetError

__all__ = ["load_folder", "load_stanford_dogs"]

_WNID_FOLDER = re.compile(r"^(?P<wnid>n\d{8})-(?P<breed>.+)$")


def _pick_split(ds: LabeledImageDataset, split: str) -> LabeledImageDataset:
    return ds if split == "all" else split_stratified(ds, seed=0)[split]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _from_class_folders(
    name: str, root: Path, folders: list[tuple[str, str, Path]]
) -> LabeledImageDataset:
    """(class id, class name, folder) triples -> dataset; classes without images are dropped."""
    image_paths: list[Path] = []
    labels: list[int] = []
    class_ids: list[str] = []
    class_names: list[str] = []
    for cid, cname, folder in sorted(folders, key=lambda t: t[0]):
        files = _image_files(folder)
        if not files:
            continue
        k = len(class_ids)
        class_ids.append(cid)
        class_names.append(cname)
        image_paths.extend(files)
        labels.extend([k] * len(files))
    if not image_paths:
        raise DatasetError(f"{name}: no images in the class folders of {root}")
    return LabeledImageDataset(
        name=name,
        root=root,
        split="all",
        image_paths=image_paths,
        labels=np.asarray(labels, dtype=np.int64),
        class_ids=class_ids,
        class_names=class_names,
    )


def load_folder(root: Path, split: str) -> LabeledImageDataset:
    if not root.is_dir():
        raise DatasetError(f"folder: root must be a folder, got the file {root}")
    dirs = _subdirs(root)
    if not dirs:
        raise DatasetError(f"folder: no class folders in {root} (expected <class name>/*.jpg)")
    ds = _from_class_folders("folder", root, [(d.name, d.name, d) for d in dirs])
    return _pick_split(ds, split)


def _split_tsv_row(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")]


def _read_dog_classes(path: Path, root: Path) -> dict[str, tuple[str, int]]:
    """wnid -> (breed, line) from classes.tsv (`wnid<TAB>breed<TAB>...`, header optional)."""
    where = display_name(path, root)
    out: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(read_text(path, where).splitlines(), start=1):
        if not line.strip():
            continue
        cols = _split_tsv_row(line)
        if n == 1 and cols[0].lower() == "wnid":
            continue
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise DatasetError(f"{where} line {n}: expected 'wnid<TAB>breed', got {line[:60]!r}")
        wnid, breed = cols[0], cols[1]
        if wnid in out:
            raise DatasetError(
                f"{where} line {n}: {wnid} is listed twice (first on line {out[wnid][1]})"
            )
        out[wnid] = (breed, n)
    if not out:
        raise DatasetError(f"{where}: no classes")
    return out


def _load_dogs_tsv(root: Path, labels_path: Path) -> LabeledImageDataset:
    classes_path = root / "classes.tsv"
    classes = _read_dog_classes(classes_path, root) if classes_path.is_file() else None
    where = display_name(labels_path, root)
    image_dirs = existing_dirs([root / "images", root])
    rows: list[tuple[Path, str]] = []
    breed_of: dict[str, tuple[str, int]] = {}
    seen: dict[str, int] = {}
    for n, line in enumerate(read_text(labels_path, where).splitlines(), start=1):
        if not line.strip():
            continue
        cols = _split_tsv_row(line)
        if n == 1 and cols[0].lower() == "image":
            continue
        if len(cols) < 2 or not cols[0] or not cols[1]:
            raise DatasetError(
                f"{where} line {n}: expected 'image<TAB>wnid<TAB>breed', got {line[:60]!r}"
            )
        image, wnid = cols[0], cols[1]
        breed = cols[2] if len(cols) > 2 and cols[2] else wnid
        if image in seen:
            raise DatasetError(
                f"{where} line {n}: {image} is listed twice (first on line {seen[image]})"
            )
        seen[image] = n
        if classes is not None and wnid not in classes:
            raise DatasetError(f"{where} line {n}: class {wnid} of {image} is not in classes.tsv")
        if classes is None:
            if wnid in breed_of and breed_of[wnid][0] != breed:
                raise DatasetError(
                    f"{where} line {n}: breed {breed!r} for {wnid} differs from "
                    f"{breed_of[wnid][0]!r} on line {breed_of[wnid][1]}"
                )
            breed_of.setdefault(wnid, (breed, n))
        path = find_file(image_dirs, image)
        if path is None:
            raise DatasetError(
                f"{where} line {n}: no image file for {image} "
                f"(looked in {describe_dirs(image_dirs, root)})"
            )
        rows.append((path, wnid))
    if not rows:
        raise DatasetError(f"stanford-dogs: {where} lists no images")
    names = {w: b for w, (b, _) in (classes or breed_of).items()}
    class_ids = sorted(names)
    index = {w: i for i, w in enumerate(class_ids)}
    return LabeledImageDataset(
        name="stanford-dogs",
        root=root,
        split="all",
        image_paths=[p for p, _ in rows],
        labels=np.asarray([index[w] for _, w in rows], dtype=np.int64),
        class_ids=class_ids,
        class_names=[names[w] for w in class_ids],
    )


def load_stanford_dogs(root: Path, split: str) -> LabeledImageDataset:
    if not root.is_dir():
        raise DatasetError(f"stanford-dogs: root must be a folder, got the file {root}")
    labels = root / "labels.tsv"
    if labels.is_file():
        return _pick_split(_load_dogs_tsv(root, labels), split)
    for folder in (root / "Images", root):
        if not folder.is_dir():
            continue
        dirs = _subdirs(folder)
        matches = [(d, _WNID_FOLDER.match(d.name)) for d in dirs]
        triples = [(m["wnid"], m["breed"], d) for d, m in matches if m]
        if not triples:
            continue
        if len(triples) != len(dirs):
            odd = next(d for d, m in matches if not m)
            raise DatasetError(
                f"stanford-dogs: folder {display_name(odd, root)}/ is not named <wnid>-<breed>"
            )
        return _pick_split(_from_class_folders("stanford-dogs", root, triples), split)
    raise DatasetError(
        f"stanford-dogs: nothing to load in {root}: looked for labels.tsv (+ images/) and "
        "Images/<wnid>-<breed>/*.jpg"
    )
