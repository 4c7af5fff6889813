"""Shared fixtures: where the real data lives, and small generated images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CROSSMODAL_SHARED_DATA", REPO.parent / "shared" / "data"))
FLICKR8K = SHARED_DATA / "flickr8k"
STANFORD_DOGS = SHARED_DATA / "stanford_dogs"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


#: Pretrained towers with random linear heads into 16-d: real mechanics, meaningless relevance.
TINY_MODEL_CONFIG = {
    "name": "tiny",
    "embed_dim": 16,
    "image_tower": {"type": "efficientnet", "variant": "lite0", "feature_dim": 1280},
    "text_tower": {"type": "minilm", "feature_dim": 384},
    "image_head": {"hidden": 0},
    "text_head": {"hidden": 0},
}


def sample_photo(name: str) -> Path:
    """Real photographs that ship inside installed packages (no dataset needed)."""
    import matplotlib
    import sklearn

    paths = {
        "grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        "china": Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg",
        "flower": Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg",
    }
    return paths[name]


@pytest.fixture(scope="session")
def flickr8k_root() -> Path:
    if not (FLICKR8K / "captions.tsv").is_file():
        pytest.skip(f"../shared/data not found: no Flickr8k at {FLICKR8K}")
    return FLICKR8K


@pytest.fixture(scope="session")
def dogs_root() -> Path:
    if not (STANFORD_DOGS / "labels.tsv").is_file():
        pytest.skip(f"../shared/data not found: no Stanford Dogs at {STANFORD_DOGS}")
    return STANFORD_DOGS


def make_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    """A small image with a colour gradient, so different colours embed differently."""
    w, h = size
    grad = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    base = np.array(color, np.float32)[None, None, :]
    pixels = np.clip(base * (0.6 + 0.4 * grad) + np.zeros((h, 1, 1)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def default_model():
    from crossmodal.models import load_model

    return load_model("default")
