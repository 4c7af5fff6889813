"""Tiny hand-written copies of every dataset layout crossmodal.data reads.

One small Flickr8k-like corpus (5 images, 2 captions each, plus one captioned image that has no
file) is written out in each caption format, so every format is checked against the same
expected images, captions and splits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# image -> captions; the captions exercise commas, quotes and unicode
CAPTIONS: dict[str, list[str]] = {
    "1001_aa.jpg": ["A dog runs on grass .", "A brown dog, running fast, jumps ."],
    "1002_bb.jpg": ['A man says "hi" to a child .', "Two people wave, smiling ."],
    "1003_cc.jpg": ["A red car .", "Café by the road ."],
    "1004_dd.jpg": ["A boat on a lake .", "Blue water , one boat ."],
    "1005_ee.jpg": ["A girl climbs stairs .", 'A sign says "welcome" .'],
}
IMAGES = list(CAPTIONS)
# in the token/Kaggle files only: captioned, in no split, and no image file (like Flickr8k's
# 2258277193_586949ec62.jpg)
ORPHAN = "9999_zz.jpg"
ORPHAN_CAPTIONS = ["people waiting for the subway", "A station ."]
SPLITS = {
    "train": ["1002_bb.jpg", "1001_aa.jpg", "1003_cc.jpg"],
    "val": ["1004_dd.jpg"],
    "test": ["1005_ee.jpg"],
}
COLORS = {
    "1001_aa.jpg": (200, 30, 30),
    "1002_bb.jpg": (30, 200, 30),
    "1003_cc.jpg": (30, 30, 200),
    "1004_dd.jpg": (200, 200, 30),
    "1005_ee.jpg": (30, 200, 200),
}
STANDARD_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def write_jpeg(path: Path, size: tuple[int, int] = (16, 12), color=(128, 64, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG", quality=90)
    return path


def write_images(folder: Path, names: list[str] | None = None) -> None:
    for name in names or IMAGES:
        write_jpeg(folder / name, color=COLORS.get(name, (1, 2, 3)))


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tsv_text(include_orphan: bool = False) -> str:
    lines = ["image\tcaption"]
    for img, caps in CAPTIONS.items():
        lines += [f"{img}\t{c}" for c in caps]
    if include_orphan:
        lines += [f"{ORPHAN}\t{c}" for c in ORPHAN_CAPTIONS]
    return "\n".join(lines) + "\n"


def token_text() -> str:
    """Flickr8k.token.txt, with the real file's `.jpg.1#0` typo on the first 1003 caption."""
    lines = []
    for img, caps in CAPTIONS.items():
        for n, c in enumerate(caps):
            cid = f"{img}.1#{n}" if (img == "1003_cc.jpg" and n == 0) else f"{img}#{n}"
            lines.append(f"{cid}\t{c}")
    lines += [f"{ORPHAN}#{n}\t{c}" for n, c in enumerate(ORPHAN_CAPTIONS)]
    return "\n".join(lines) + "\n"


# Kaggle's captions.txt, written by hand: quoted fields where the caption has commas, doubled
# quotes inside quoted fields, and bare quotes inside an unquoted field (csv keeps those).
KAGGLE_TEXT = """image,caption
1001_aa.jpg,A dog runs on grass .
1001_aa.jpg,"A brown dog, running fast, jumps ."
1002_bb.jpg,A man says "hi" to a child .
1002_bb.jpg,"Two people wave, smiling ."
1003_cc.jpg,A red car .
1003_cc.jpg,Café by the road .
1004_dd.jpg,A boat on a lake .
1004_dd.jpg,"Blue water , one boat ."
1005_ee.jpg,A girl climbs stairs .
1005_ee.jpg,"A sign says ""welcome"" ."
9999_zz.jpg,people waiting for the subway
9999_zz.jpg,A station .
"""


def karpathy_json() -> str:
    split_of = {img: s for s, imgs in SPLITS.items() for img in imgs}
    split_of["1003_cc.jpg"] = "restval"  # Karpathy's extra training images
    images = [
        {
            "filename": img,
            "imgid": i,
            "split": split_of[img],
            "sentences": [{"raw": c, "tokens": c.lower().split()} for c in caps],
        }
        for i, (img, caps) in enumerate(CAPTIONS.items())
    ]
    return json.dumps({"images": images, "dataset": "flickr8k"}, indent=1, ensure_ascii=False)


def split_text(split: str) -> str:
    return "\n".join(SPLITS[split]) + "\n"


def write_generic_splits(folder: Path) -> None:
    for split in SPLITS:
        write_text(folder / f"{split}.txt", split_text(split))


def write_standard_splits(folder: Path) -> None:
    for split, fname in STANDARD_SPLIT_FILES.items():
        write_text(folder / fname, split_text(split))


def _tsv_layout(root: Path) -> None:
    write_text(root / "captions.tsv", tsv_text())
    write_generic_splits(root)


def _token_layout(text_dir: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        write_text(root / text_dir / "Flickr8k.token.txt", token_text())
        write_standard_splits(root / text_dir)

    return make


def _kaggle_layout(root: Path) -> None:
    write_text(root / "captions.txt", KAGGLE_TEXT)
    write_standard_splits(root / "Flickr8k_text")


def _karpathy_layout(root: Path) -> None:
    write_text(root / "dataset_flickr8k.json", karpathy_json())


FLICKR_LAYOUTS: dict[str, Callable[[Path], None]] = {
    "tsv": _tsv_layout,
    "token-root": _token_layout("."),
    "token-Flickr8k_text": _token_layout("Flickr8k_text"),
    "token-original": _token_layout("original"),
    "kaggle": _kaggle_layout,
    "karpathy": _karpathy_layout,
}


def shared_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data not found: {path}")
    return path
