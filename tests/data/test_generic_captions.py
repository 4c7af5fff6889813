"""The 'captions-json' and 'captions-tsv' layouts: a user's own captioned photo sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossmodal.data import load_dataset
from crossmodal.errors import DatasetError

from .corpus import CAPTIONS, SPLITS, tsv_text, write_generic_splits, write_images, write_text


def _json_root(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    # two images under root/, one in a subfolder, the rest under root/images/
    write_images(root, ["1001_aa.jpg"])
    write_images(root / "trip", ["1002_bb.jpg"])
    write_images(root / "images", ["1003_cc.jpg", "1004_dd.jpg", "1005_ee.jpg"])
    entries = [
        {"image": "1001_aa.jpg", "captions": CAPTIONS["1001_aa.jpg"]},
        {"image": "trip/1002_bb.jpg", "captions": CAPTIONS["1002_bb.jpg"]},
        *({"image": n, "captions": CAPTIONS[n]} for n in ("1003_cc.jpg", "1004_dd.jpg")),
        {"image": "1005_ee.jpg", "captions": CAPTIONS["1005_ee.jpg"]},
    ]
    write_text(root / "captions.json", json.dumps(entries))
    return root


def test_captions_json_all(tmp_path: Path) -> None:
    root = _json_root(tmp_path)
    ds = load_dataset("captions-json", root, "all")
    assert ds.split == "all" and ds.root == root
    assert ds.image_paths == [
        root / "1001_aa.jpg",
        root / "trip" / "1002_bb.jpg",
        root / "images" / "1003_cc.jpg",
        root / "images" / "1004_dd.jpg",
        root / "images" / "1005_ee.jpg",
    ]
    assert ds.captions == [c for caps in CAPTIONS.values() for c in caps]
    assert ds.caption_image.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_captions_json_given_as_file_path(tmp_path: Path) -> None:
    root = _json_root(tmp_path)
    ds = load_dataset("captions_json", root / "captions.json", "all")
    assert ds.root == root and len(ds) == 5


def test_captions_json_splits(tmp_path: Path) -> None:
    root = _json_root(tmp_path)
    with pytest.raises(DatasetError) as e:
        load_dataset("captions-json", root, "test")
    assert "test.txt" in str(e.value) and "split='all'" in str(e.value)
    # split files may name images by their path in captions.json or by base name
    write_text(root / "train.txt", "trip/1002_bb.jpg\n1001_aa.jpg\n1003_cc.jpg\n")
    write_text(root / "test.txt", "1005_ee.jpg\n")
    ds = load_dataset("captions-json", root, "train")
    assert [p.name for p in ds.image_paths] == SPLITS["train"]
    assert ds.captions[:2] == CAPTIONS["1002_bb.jpg"]
    assert [p.name for p in load_dataset("captions-json", root, "test").image_paths] == [
        "1005_ee.jpg"
    ]


def test_captions_json_errors(tmp_path: Path) -> None:
    root = _json_root(tmp_path)
    (root / "images" / "1004_dd.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("captions-json", root, "all")
    assert str(e.value).startswith("captions.json entry 4: no image file for 1004_dd.jpg")
    write_text(root / "captions.json", json.dumps([{"image": "x.jpg", "captions": [""]}]))
    with pytest.raises(DatasetError, match=r"captions\.json entry 1: empty caption for x\.jpg"):
        load_dataset("captions-json", root, "all")
    with pytest.raises(DatasetError, match=r"no captions\.json in"):
        load_dataset("captions-json", tmp_path, "all")


def test_captions_tsv_folder_and_file(tmp_path: Path) -> None:
    root = tmp_path / "tsvset"
    write_images(root / "images")
    write_text(root / "captions.tsv", tsv_text())
    write_generic_splits(root)
    ds = load_dataset("captions-tsv", root, "val")
    assert ds.image_paths == [root / "images" / "1004_dd.jpg"]
    assert ds.captions == CAPTIONS["1004_dd.jpg"]
    ds = load_dataset("captions-tsv", root / "captions.tsv", "all")
    assert len(ds) == 5 and len(ds.captions) == 10


def test_captions_tsv_without_split_lists(tmp_path: Path) -> None:
    root = tmp_path / "tsvset"
    write_images(root)  # images beside the tsv also work
    write_text(root / "caps.tsv", tsv_text())
    assert len(load_dataset("captions-tsv", root / "caps.tsv", "all")) == 5
    with pytest.raises(DatasetError, match=r"train\.txt"):
        load_dataset("captions-tsv", root / "caps.tsv", "train")
