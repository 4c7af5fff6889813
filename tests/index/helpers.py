"""Shared by the gallery tests: a tiny dual encoder saved once per process, generated photos."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import TINY_MODEL_CONFIG, make_image

#: Pretrained towers with random linear heads: real mechanics, meaningless relevance.
TINY_CONFIG = {**TINY_MODEL_CONFIG, "embed_dim": 32}

COLORS = [
    (230, 30, 30),
    (30, 200, 40),
    (40, 60, 220),
    (240, 220, 40),
    (200, 40, 200),
    (40, 210, 210),
    (250, 140, 20),
    (120, 120, 120),
]


@functools.cache
def tiny_model_dir(seed: int = 0) -> Path:
    """A saved tiny model (built once per process per seed; removed at exit)."""
    import torch

    from crossmodal.models.dual import DualEncoder

    torch.manual_seed(seed)
    folder = Path(tempfile.mkdtemp(prefix=f"crossmodal-tiny{seed}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return DualEncoder({**TINY_CONFIG, "name": f"tiny{seed}"}).save(folder / "model")


def one_torch_thread() -> Iterator[None]:
    """For a module-scoped autouse fixture: these tests run small batches, which gain nothing
    from a second intra-op thread and lose a lot when the machine is busy (barrier waits)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pattern(path: Path, n: int, size: tuple[int, int] = (64, 48)) -> Path:
    """Image number n: a colour and a stripe pattern, so images embed apart from each other."""
    w, h = size
    rng = np.random.default_rng(n)
    base = np.array(COLORS[n % len(COLORS)], np.float32)
    period = 4 + 3 * (n // len(COLORS))
    stripes = ((np.arange(w) // period) % 2).astype(np.float32)[None, :, None]
    noise = rng.uniform(0.85, 1.0, size=(h, w, 1)).astype(np.float32)
    pixels = np.clip(base * (0.5 + 0.5 * stripes) * noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_photos(folder: Path, count: int) -> list[Path]:
    return [make_pattern(folder / f"d{i % 3}" / f"p{i:03d}.jpg", i) for i in range(count)]


__all__ = [
    "COLORS",
    "TINY_CONFIG",
    "make_image",
    "make_pattern",
    "make_photos",
    "one_torch_thread",
    "tiny_model_dir",
]
