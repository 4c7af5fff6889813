from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import ImageTextDataset, load_dataset
from crossmodal.errors import DatasetError

from .corpus import (
    CAPTIONS,
    FLICKR_LAYOUTS,
    IMAGES,
    SPLITS,
    token_text,
    write_jpeg,
    write_text,
)

MakeFlickr = Callable[..., Path]


def _expected_split(split: str) -> list[str]:
    return IMAGES if split == "all" else SPLITS[split]


def _assert_loaded(
    ds: ImageTextDataset, root: Path, split: str, image_dir: str, layout: str = ""
) -> None:
    names = _expected_split(split)
    if split == "train" and layout == "karpathy":
        # order of the JSON; 1003_cc.jpg is 'restval' there, which counts as train
        names = [n for n in IMAGES if n in SPLITS["train"]]
    assert isinstance(ds, ImageTextDataset)
    assert ds.split == split
    assert ds.root == root
    assert ds.image_paths == [root / image_dir / n for n in names]
    assert all(p.is_file() for p in ds.image_paths)
    assert ds.captions == [c for n in names for c in CAPTIONS[n]]
    assert ds.caption_image.dtype == np.int64
    assert ds.caption_image.tolist() == [i for i, n in enumerate(names) for _ in CAPTIONS[n]]
    assert ds.image_captions == [[2 * i, 2 * i + 1] for i in range(len(names))]
    assert len(ds) == len(names)


@pytest.mark.parametrize("layout", list(FLICKR_LAYOUTS))
@pytest.mark.parametrize("split", ["train", "val", "test", "all"])
def test_every_layout_every_split(make_flickr: MakeFlickr, layout: str, split: str) -> None:
    root = make_flickr(layout)
    _assert_loaded(load_dataset("flickr8k", root, split), root, split, "images", layout)


@pytest.mark.parametrize("image_dir", ["images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset"])
def test_image_folder_names(make_flickr: MakeFlickr, image_dir: str) -> None:
    root = make_flickr("token-Flickr8k_text", image_dir=image_dir)
    _assert_loaded(load_dataset("flickr8k", root, "test"), root, "test", image_dir)


def test_dev_alias_and_case(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    ds = load_dataset("Flickr8k", str(root), "dev")
    assert ds.split == "val"
    assert [p.name for p in ds.image_paths] == SPLITS["val"]


def test_orphan_captions_are_ignored(make_flickr: MakeFlickr) -> None:
    """The token and Kaggle files caption 9999_zz.jpg, which has no file and is in no split."""
    for layout in ("token-root", "kaggle"):
        root = make_flickr(layout)
        ds = load_dataset("flickr8k", root, "all")
        assert [p.name for p in ds.image_paths] == IMAGES
        assert "people waiting for the subway" not in ds.captions


def test_preference_tsv_over_token_over_karpathy_over_kaggle(make_flickr: MakeFlickr) -> None:
    root = make_flickr("kaggle")
    other = {img: [f"karpathy says {img}"] for img in IMAGES}
    write_text(root / "dataset_flickr8k.json", _karpathy_with(other))
    assert load_dataset("flickr8k", root, "test").captions == ["karpathy says 1005_ee.jpg"]
    write_text(root / "original" / "Flickr8k.token.txt", "1005_ee.jpg#0\ttoken says hi\n")
    write_text(root / "original" / "Flickr_8k.testImages.txt", "1005_ee.jpg\n")
    assert load_dataset("flickr8k", root, "test").captions == ["token says hi"]
    write_text(root / "captions.tsv", "image\tcaption\n1005_ee.jpg\ttsv says hi\n")
    write_text(root / "test.txt", "1005_ee.jpg\n")
    assert load_dataset("flickr8k", root, "test").captions == ["tsv says hi"]


def _karpathy_with(captions: dict[str, list[str]]) -> str:
    split_of = {img: s for s, imgs in SPLITS.items() for img in imgs}
    return json.dumps(
        {
            "images": [
                {"filename": i, "split": split_of[i], "sentences": [{"raw": c} for c in cs]}
                for i, cs in captions.items()
            ]
        }
    )


def test_kaggle_without_split_lists(make_flickr: MakeFlickr) -> None:
    root = make_flickr("kaggle")
    shutil.rmtree(root / "Flickr8k_text")
    assert len(load_dataset("flickr8k", root, "all")) == 5
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root, "test")
    msg = str(e.value)
    assert "Flickr_8k.testImages.txt" in msg and "Flickr8k_text/" in msg and "original/" in msg


def test_kaggle_finds_split_lists_in_original(make_flickr: MakeFlickr) -> None:
    root = make_flickr("kaggle")
    (root / "Flickr8k_text").rename(root / "original")
    assert [p.name for p in load_dataset("flickr8k", root, "train").image_paths] == SPLITS["train"]


def test_token_missing_one_split_list(make_flickr: MakeFlickr) -> None:
    root = make_flickr("token-original")
    (root / "original" / "Flickr_8k.devImages.txt").unlink()
    assert len(load_dataset("flickr8k", root, "test")) == 1
    with pytest.raises(DatasetError, match=r"Flickr_8k\.devImages\.txt"):
        load_dataset("flickr8k", root, "val")


# ----------------------------------------------------------------------------- error paths


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("flickr8k", tmp_path / "nowhere")


def test_no_caption_file_says_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", tmp_path)
    msg = str(e.value)
    for name in ("captions.tsv", "Flickr8k.token.txt", "dataset_flickr8k.json", "captions.txt"):
        assert name in msg


def test_no_image_folder(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    shutil.rmtree(root / "images")
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root)
    assert "Flicker8k_Dataset/" in str(e.value) and "Images/" in str(e.value)


def test_split_list_names_image_without_file(make_flickr: MakeFlickr) -> None:
    root = make_flickr("token-Flickr8k_text")
    (root / "images" / "1001_aa.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root, "train")
    assert str(e.value).startswith(
        "Flickr8k_text/Flickr_8k.trainImages.txt line 2: no image file for 1001_aa.jpg"
    )
    assert len(load_dataset("flickr8k", root, "test")) == 1  # other splits unaffected


def test_split_list_names_image_without_captions(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    write_jpeg(root / "images" / "7777_xx.jpg")
    write_text(root / "test.txt", "1005_ee.jpg\n\n7777_xx.jpg\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root, "test")
    assert str(e.value) == "test.txt line 3: 7777_xx.jpg has no captions in captions.tsv"


def test_split_list_duplicate(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    write_text(root / "val.txt", "1004_dd.jpg\n1005_ee.jpg\n1004_dd.jpg\n")
    with pytest.raises(DatasetError, match=r"val\.txt line 3: .*listed twice \(first on line 1\)"):
        load_dataset("flickr8k", root, "val")


def test_tsv_caption_for_missing_image_in_all(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    (root / "images" / "1003_cc.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root, "all")
    # 1003_cc.jpg's first caption is data row 5 -> line 6 after the header
    assert str(e.value).startswith("captions.tsv line 6: no image file for 1003_cc.jpg")


def test_empty_caption_in_tsv(make_flickr: MakeFlickr) -> None:
    root = make_flickr("tsv")
    lines = (root / "captions.tsv").read_text().splitlines()
    lines.insert(9, "1000268201_693b08cb0e.jpg\t ")  # becomes line 10
    write_text(root / "captions.tsv", "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("flickr8k", root, "test")
    assert str(e.value) == "captions.tsv line 10: empty caption for 1000268201_693b08cb0e.jpg"


def test_malformed_token_line(make_flickr: MakeFlickr) -> None:
    root = make_flickr("token-original")
    lines = token_text().splitlines()
    lines[3] = lines[3].replace("\t", " ")
    write_text(root / "original" / "Flickr8k.token.txt", "\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"original/Flickr8k\.token\.txt line 4: "):
        load_dataset("flickr8k", root, "test")


def test_karpathy_split_without_images(make_flickr: MakeFlickr) -> None:
    root = make_flickr("karpathy")
    data = json.loads((root / "dataset_flickr8k.json").read_text())
    for entry in data["images"]:
        entry["split"] = "train"
    write_text(root / "dataset_flickr8k.json", json.dumps(data))
    with pytest.raises(DatasetError, match="no images with split 'test'"):
        load_dataset("flickr8k", root, "test")


def test_unknown_dataset_and_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset("coco", tmp_path)
    for name in ("flickr8k", "captions-json", "captions-tsv", "folder", "stanford-dogs"):
        assert name in str(e.value)
    with pytest.raises(DatasetError, match="unknown split 'holdout'"):
        load_dataset("flickr8k", tmp_path, "holdout")


def test_root_is_a_file(tmp_path: Path) -> None:
    p = write_text(tmp_path / "x.txt", "hi\n")
    with pytest.raises(DatasetError, match="must be a folder"):
        load_dataset("flickr8k", p)
