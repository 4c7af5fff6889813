"""Fixtures building tiny dataset folders in tmp_path (the content lives in corpus.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .corpus import FLICKR_LAYOUTS, write_images


@pytest.fixture
def make_flickr(tmp_path: Path) -> Callable[..., Path]:
    """make_flickr(layout, image_dir="images") -> a Flickr8k root in that layout."""

    def make(layout: str, image_dir: str = "images") -> Path:
        root = tmp_path / f"flickr-{layout}"
        root.mkdir()
        write_images(root / image_dir)
        FLICKR_LAYOUTS[layout](root)
        return root

    return make


@pytest.fixture
def tsv_root(make_flickr: Callable[..., Path]) -> Path:
    return make_flickr("tsv")
