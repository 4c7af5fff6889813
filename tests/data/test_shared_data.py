"""The real copies in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import ImageTextDataset, LabeledImageDataset, load_dataset, read_captions_file
from crossmodal.errors import DatasetError

from .corpus import shared_or_skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flickr_root() -> Path:
    return shared_or_skip("flickr8k")


@pytest.mark.parametrize(("split", "n_images"), [("test", 1000), ("val", 1000), ("train", 5000)])
def test_flickr8k_splits(flickr_root: Path, split: str, n_images: int) -> None:
    ds = load_dataset("flickr8k", flickr_root, split)
    assert isinstance(ds, ImageTextDataset)
    assert len(ds) == n_images
    assert len(ds.captions) == 5 * n_images
    assert np.bincount(ds.caption_image, minlength=n_images).tolist() == [5] * n_images
    assert len(set(ds.image_paths)) == n_images
    listed = (flickr_root / f"{split}.txt").read_text().split()
    assert [p.name for p in ds.image_paths] == listed
    assert ds.image_paths[0].is_file() and ds.image_paths[-1].is_file()
    if split == "test":
        assert ds.image_paths[0].name == "3385593926_d3e9c21170.jpg"


def test_flickr8k_token_layout_matches_tsv(flickr_root: Path, tmp_path: Path) -> None:
    """The original text files (with the `.jpg.1#0` typo) give the same test split."""
    (tmp_path / "Flickr8k_text").symlink_to(flickr_root / "original", target_is_directory=True)
    (tmp_path / "Flicker8k_Dataset").symlink_to(flickr_root / "images", target_is_directory=True)
    tsv = load_dataset("flickr8k", flickr_root, "test")
    tok = load_dataset("flickr8k", tmp_path, "test")
    assert [p.name for p in tok.image_paths] == [p.name for p in tsv.image_paths]
    assert tok.captions == tsv.captions
    assert tok.caption_image.tolist() == tsv.caption_image.tolist()
    # 'all': the 1,000 train images and the typo'd orphan not shipped here are left out
    assert len(load_dataset("flickr8k", tmp_path, "all")) == 7000
    # the standard train list names 1,000 images that this copy does not have
    with pytest.raises(DatasetError, match=r"Flickr_8k\.trainImages\.txt line \d+: no image file"):
        load_dataset("flickr8k", tmp_path, "train")


def test_read_real_token_file(flickr_root: Path) -> None:
    caps = read_captions_file(flickr_root / "original" / "Flickr8k.token.txt")
    assert len(caps) == 8092
    assert {len(v) for v in caps.values()} == {5}
    assert caps["2258277193_586949ec62.jpg"][0] == "people waiting for the subway"


def test_stanford_dogs() -> None:
    root = shared_or_skip("stanford_dogs")
    ds = load_dataset("stanford-dogs", root, "all")
    assert isinstance(ds, LabeledImageDataset)
    assert len(ds) == 3000 and len(ds.class_ids) == 120
    assert ds.class_ids == sorted(ds.class_ids)
    assert np.bincount(ds.labels).tolist() == [25] * 120
    assert ds.class_names[ds.class_ids.index("n02109047")] == "Great_Dane"
    test = load_dataset("stanford-dogs", root, "test")
    assert len(test) == 600 and np.bincount(test.labels).tolist() == [5] * 120
