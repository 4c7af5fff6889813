"""`load_dataset`: one entry point that finds out which layout a dataset folder is in.

Flickr8k alone circulates in four layouts (TSV, the original token file, Kaggle's CSV, Karpathy's
JSON) and Stanford Dogs in two, so loaders probe for the known file names in a fixed order of
preference and, when nothing matches, say exactly which files they looked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from crossmodal.data.datasets import ImageTextDataset, LabeledImageDataset
from crossmodal.data.formats import (
    CaptionRecord,
    describe_dirs,
    display_name,
    existing_dirs,
    find_file,
    parse_captions_json,
    parse_captions_tsv,
    parse_kaggle_csv,
    parse_karpathy_json,
    parse_token_file,
    read_split_list,
)
from crossmodal.data.labeled import load_folder, load_stanford_dogs
from crossmodal.errors import DatasetError

__all__ = ["DATASET_NAMES", "SPLITS", "load_dataset", "normalize_split"]

SPLITS = ("train", "val", "test", "all")
_SPLIT_ALIASES = {"dev": "val", "valid": "val", "validation": "val"}

FLICKR8K_IMAGE_DIRS = ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset")
FLICKR8K_TEXT_DIRS = (".", "Flickr8k_text", "original")
#: the standard Flickr_8k.*Images.txt lists, shipped for copies that lack them (Kaggle's)
PACKAGED_FLICKR8K_SPLITS = Path(__file__).with_name("flickr8k_splits")
FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def normalize_split(split: str) -> str:
    """Canonical split name ('dev' -> 'val'); unknown names fail before any file is read."""
    s = str(split).strip().lower()
    s = _SPLIT_ALIASES.get(s, s)
    if s not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} (or 'dev')")
    return s


def load_dataset(
    name: str, root: str | Path, split: str = "test"
) -> ImageTextDataset | LabeledImageDataset:
    """A dataset by layout name, so the CLI and evaluators need not know any file format.

    Caption datasets give `ImageTextDataset`; labelled ones give `LabeledImageDataset`, whose
    train/val/test are a fixed stratified 60/20/20 split since they ship without split lists.
    """
    key = str(name).strip().lower().replace("_", "-")
    loader = _LOADERS.get(key)
    if loader is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    split = normalize_split(split)
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{key}: dataset root not found: {path}")
    return loader(path, split)


# --------------------------------------------------------------------------- caption datasets


@dataclass
class _SplitLists:
    """Where each named split's image list is, and what to tell the user when one is missing."""

    files: dict[str, Path]
    wanted: Callable[[str], str]  # split -> "which files were looked for"
    #: splits whose list is the standard one packaged with crossmodal (the folder has none)
    packaged: frozenset[str] = frozenset()


class _CommonArgs(TypedDict):
    """The arguments of `_build_caption_dataset` that every Flickr8k caption format shares."""

    name: str
    root: Path
    split: str
    image_dirs: Sequence[Path]


@dataclass
class _CaptionsByImage:
    """Caption records grouped by image, in the order images are first mentioned."""

    captions: dict[str, list[str]]
    first_seen: dict[str, str]  # image -> "captions.tsv line 5"
    split: dict[str, str | None]  # image -> the split its captions carry (Karpathy), if any


def _group_captions(
    records: list[CaptionRecord], name: str, caption_where: str
) -> _CaptionsByImage:
    grouped = _CaptionsByImage(captions={}, first_seen={}, split={})
    for rec in records:
        grouped.captions.setdefault(rec.image, []).append(rec.caption)
        if rec.image not in grouped.first_seen:
            grouped.first_seen[rec.image] = rec.location(caption_where)
        grouped.split.setdefault(rec.image, rec.split)
    if not grouped.captions:
        raise DatasetError(f"{name}: {caption_where} holds no captions")
    return grouped


def _select_by_split_list(
    grouped: _CaptionsByImage,
    *,
    name: str,
    root: Path,
    split: str,
    caption_where: str,
    split_lists: _SplitLists,
) -> list[tuple[str, str]]:
    """(image key, "list line N" to blame) for each image the split's list names, in list order."""
    by_image = grouped.captions
    list_path = split_lists.files.get(split)
    if list_path is None:
        raise DatasetError(
            f"{name}: no list of the '{split}' images in {root}: looked for "
            f"{split_lists.wanted(split)} (split='all' needs no list)"
        )
    from_package = split in split_lists.packaged
    list_where = f"the packaged {list_path.name}" if from_package else display_name(list_path, root)
    by_base: dict[str, str | None] = {}
    for img in by_image:
        base = img.replace("\\", "/").rsplit("/", 1)[-1]
        by_base[base] = None if base in by_base else img  # None: ambiguous
    selected: list[tuple[str, str]] = []
    taken: dict[str, int] = {}
    for entry, line in read_split_list(list_path, list_where):
        key = entry if entry in by_image else by_base.get(entry)
        if key is None and from_package:
            # not the standard Flickr8k images: the standard list does not apply here
            raise DatasetError(
                f"{name}: no list of the '{split}' images in {root}: looked for "
                f"{split_lists.wanted(split)} (split='all' needs no list)"
            )
        if key is None:
            raise DatasetError(
                f"{list_where} line {line}: {entry} has no captions in {caption_where}"
            )
        if key in taken:
            raise DatasetError(
                f"{list_where} line {line}: {entry} is listed twice (first on line {taken[key]})"
            )
        taken[key] = line
        selected.append((key, f"{list_where} line {line}"))
    if not selected:
        raise DatasetError(f"{name}: {list_where} lists no images")
    return selected


def _select_images(
    grouped: _CaptionsByImage,
    *,
    name: str,
    root: Path,
    split: str,
    caption_where: str,
    split_lists: _SplitLists | None,
) -> list[tuple[str, str]]:
    """(image key, "file line N" to blame) for each selected image, in dataset order."""
    first_seen = grouped.first_seen
    if split == "all":
        return [(img, first_seen[img]) for img in grouped.captions]
    if split_lists is None:
        # Captions carry their own split (Karpathy); 'restval' is conventionally training data.
        wanted = {"train", "restval"} if split == "train" else {split}
        selected = [
            (img, first_seen[img]) for img in grouped.captions if grouped.split[img] in wanted
        ]
        if not selected:
            raise DatasetError(f"{name}: {caption_where} has no images with split '{split}'")
        return selected
    return _select_by_split_list(
        grouped,
        name=name,
        root=root,
        split=split,
        caption_where=caption_where,
        split_lists=split_lists,
    )


def _build_caption_dataset(
    *,
    name: str,
    root: Path,
    split: str,
    records: list[CaptionRecord],
    caption_where: str,
    image_dirs: Sequence[Path],
    split_lists: _SplitLists | None,
    drop_missing_in_all: bool,
) -> ImageTextDataset:
    """Group records by image, choose the split's images, and resolve every image file.

    `drop_missing_in_all`: the original Flickr8k text files mention images that no release
    ships (one id is even misspelled), so for those formats split 'all' quietly means "every
    captioned image that exists". Images a split list names must exist in any format.
    """
    grouped = _group_captions(records, name, caption_where)
    selected = _select_images(
        grouped,
        name=name,
        root=root,
        split=split,
        caption_where=caption_where,
        split_lists=split_lists,
    )
    if not image_dirs:
        raise DatasetError(f"{name}: no image folder in {root}")
    image_paths: list[Path] = []
    captions: list[str] = []
    caption_image: list[int] = []
    for img, where in selected:
        path = find_file(image_dirs, img)
        if path is None:
            if split == "all" and drop_missing_in_all:
                continue
            raise DatasetError(
                f"{where}: no image file for {img} (looked in {describe_dirs(image_dirs, root)})"
            )
        idx = len(image_paths)
        image_paths.append(path)
        caps = grouped.captions[img]
        captions.extend(caps)
        caption_image.extend([idx] * len(caps))
    if not image_paths:
        raise DatasetError(
            f"{name}: none of the images captioned in {caption_where} exist in "
            f"{describe_dirs(image_dirs, root)}"
        )
    notice = None
    if split_lists is not None and split in split_lists.packaged and split != "all":
        notice = (
            f"{name}: {root} has no {split_lists.files[split].name}: using the standard "
            f"Flickr8k {split} list packaged with crossmodal ({len(image_paths)} images)"
        )
    return ImageTextDataset(
        name=name,
        root=root,
        split=split,
        image_paths=image_paths,
        captions=captions,
        caption_image=np.asarray(caption_image, dtype=np.int64),
        notice=notice,
    )


def _generic_split_lists(base: Path, fallback: _SplitLists | None = None) -> _SplitLists:
    """train.txt / val.txt / test.txt beside the caption file (val also as dev.txt)."""
    names = {"train": ("train.txt",), "val": ("val.txt", "dev.txt"), "test": ("test.txt",)}
    files: dict[str, Path] = {}
    for split, candidates in names.items():
        found = next((base / c for c in candidates if (base / c).is_file()), None)
        if found is None and fallback is not None:
            found = fallback.files.get(split)
        if found is not None:
            files[split] = found

    def wanted(split: str) -> str:
        desc = " or ".join(names[split])
        return desc if fallback is None else f"{desc}, or {fallback.wanted(split)}"

    packaged = frozenset(
        s for s in files if fallback is not None and files[s] == fallback.files.get(s)
    ) & (fallback.packaged if fallback is not None else frozenset())
    return _SplitLists(files=files, wanted=wanted, packaged=packaged)


def _flickr8k_split_lists(root: Path, prefer: Path | None = None) -> _SplitLists:
    """The standard Flickr_8k.*Images.txt files, wherever the text files were unpacked."""
    dirs = existing_dirs([root / d for d in FLICKR8K_TEXT_DIRS])
    if prefer is not None and prefer in dirs:
        dirs.remove(prefer)
        dirs.insert(0, prefer)
    files = {
        split: p
        for split, fname in FLICKR8K_SPLIT_FILES.items()
        if (p := find_file(dirs, fname)) is not None
    }

    def wanted(split: str) -> str:
        return f"{FLICKR8K_SPLIT_FILES[split]} in the root folder, Flickr8k_text/ or original/"

    packaged = frozenset(s for s in FLICKR8K_SPLIT_FILES if s not in files)
    for split in packaged:
        files[split] = PACKAGED_FLICKR8K_SPLITS / FLICKR8K_SPLIT_FILES[split]
    return _SplitLists(files=files, wanted=wanted, packaged=packaged)


def _load_flickr8k(root: Path, split: str) -> ImageTextDataset:
    if not root.is_dir():
        raise DatasetError(f"flickr8k: root must be a folder, got the file {root}")
    name = "flickr8k"
    image_dirs = existing_dirs([root / d for d in FLICKR8K_IMAGE_DIRS])
    text_dirs = existing_dirs([root / d for d in FLICKR8K_TEXT_DIRS])
    common = _CommonArgs(name=name, root=root, split=split, image_dirs=image_dirs)

    tsv = root / "captions.tsv"
    token = find_file(text_dirs, "Flickr8k.token.txt")
    karpathy = find_file(text_dirs, "dataset_flickr8k.json")
    kaggle = root / "captions.txt"
    if not (tsv.is_file() or token or karpathy or kaggle.is_file()):
        raise DatasetError(
            f"flickr8k: no caption file in {root}: looked for captions.tsv, "
            "Flickr8k.token.txt and dataset_flickr8k.json (in the root folder, Flickr8k_text/ "
            "or original/), and captions.txt (Kaggle CSV)"
        )
    if not image_dirs:
        raise DatasetError(
            f"flickr8k: no image folder in {root}: looked for "
            + ", ".join(f"{d}/" for d in FLICKR8K_IMAGE_DIRS)
        )

    # the first caption file found (in this order) decides the parser, the split lists and
    # drop_missing_in_all; one call then builds the dataset for all four formats
    path: Path
    parse: Callable[[Path, str], list[CaptionRecord]]
    split_lists: _SplitLists | None
    if tsv.is_file():
        path, parse, drop_missing = tsv, parse_captions_tsv, False
        split_lists = _generic_split_lists(root, _flickr8k_split_lists(root))
    elif token is not None:
        path, parse, drop_missing = token, parse_token_file, True
        split_lists = _flickr8k_split_lists(root, prefer=token.parent)
    elif karpathy is not None:
        path, parse, drop_missing = karpathy, parse_karpathy_json, True
        split_lists = None
    else:
        path, parse, drop_missing = kaggle, parse_kaggle_csv, True
        split_lists = _kaggle_split_lists(root)
    where = display_name(path, root)
    return _build_caption_dataset(
        records=parse(path, where),
        caption_where=where,
        split_lists=split_lists,
        drop_missing_in_all=drop_missing,
        **common,
    )


def _kaggle_split_lists(root: Path) -> _SplitLists:
    standard = _flickr8k_split_lists(root)
    generic = _generic_split_lists(root)
    # a list in the folder (generic or standard name) wins over the packaged standard one
    found = {s: p for s, p in standard.files.items() if s not in standard.packaged}
    files = {**standard.files, **generic.files, **found}

    def wanted(split: str) -> str:
        return f"{standard.wanted(split)} (Kaggle's captions.txt has no split lists of its own)"

    packaged = frozenset(s for s in standard.packaged if files[s] == standard.files[s])
    return _SplitLists(files=files, wanted=wanted, packaged=packaged)


def _load_caption_file(
    root: Path,
    split: str,
    kind: str,
    parse: Callable[[Path, str], list[CaptionRecord]],
    images_first: bool,
) -> ImageTextDataset:
    """A captions.json / captions.tsv collection: `root` is the file or the folder holding
    it; `images_first` says whether images/ is searched before the folder itself."""
    default_name = "captions." + kind.removeprefix("captions-")
    if root.is_file():
        path, base = root, root.parent
    else:
        path, base = root / default_name, root
        if not path.is_file():
            raise DatasetError(f"{kind}: no {default_name} in {root}")
    where = display_name(path, base)
    dirs = [base / "images", base] if images_first else [base, base / "images"]
    return _build_caption_dataset(
        name=kind,
        root=base,
        split=split,
        records=parse(path, where),
        caption_where=where,
        image_dirs=existing_dirs(dirs),
        split_lists=_generic_split_lists(base),
        drop_missing_in_all=False,
    )


def _load_captions_json(root: Path, split: str) -> ImageTextDataset:
    return _load_caption_file(root, split, "captions-json", parse_captions_json, False)


def _load_captions_tsv(root: Path, split: str) -> ImageTextDataset:
    return _load_caption_file(root, split, "captions-tsv", parse_captions_tsv, True)


_LOADERS: dict[str, Callable[[Path, str], ImageTextDataset | LabeledImageDataset]] = {
    "flickr8k": _load_flickr8k,
    "captions-json": _load_captions_json,
    "captions-tsv": _load_captions_tsv,
    "folder": load_folder,
    "stanford-dogs": load_stanford_dogs,
}

#: Names `load_dataset` accepts ('_' and '-' are interchangeable, case is ignored).
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)
