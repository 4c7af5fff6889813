"""A split held in memory for the from-scratch recipe: uint8 pixels at the working size and
tokenised captions (5,000 Flickr8k images at 64 px are 61 MB)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset, load_dataset, load_image
from crossmodal.errors import ConfigError, DatasetError, ImageLoadError
from crossmodal.models.small import SmallTextTower, image_to_uint8
from crossmodal.train.ssl.config import SSLConfig


@dataclass
class SplitTensors:
    """A split held in memory: uint8 pixels at the working size and tokenised captions."""

    pixels: torch.Tensor  # (n_images, 3, S, S) uint8
    input_ids: torch.Tensor  # (n_captions, L) int64, padded
    lengths: torch.Tensor  # (n_captions,) tokens per caption, [CLS] and [SEP] included
    caption_image: torch.Tensor  # (n_captions,) int64
    skipped: int = 0

    def to(self, device: torch.device) -> SplitTensors:
        return SplitTensors(
            self.pixels.to(device),
            self.input_ids.to(device),
            self.lengths.to(device),
            self.caption_image.to(device),
            self.skipped,
        )

    def tokens(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The given captions as a tower input, trimmed to the longest of them."""
        lengths = self.lengths[rows]
        width = int(lengths.max())
        ids = self.input_ids[rows, :width]
        mask = (torch.arange(width, device=ids.device)[None, :] < lengths[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask}


def decode_images(
    paths: Sequence[Path], size: int, show_progress: bool = True, desc: str = "decoding"
) -> tuple[torch.Tensor, list[int]]:
    """uint8 (n_ok, 3, size, size) and the indices of the paths that decoded.

    Decoded on a few threads (PIL releases the GIL); broken files are skipped, as evaluation
    skips them, rather than failing a run minutes in.
    """

    def one(path: Path) -> torch.Tensor | None:
        try:
            return image_to_uint8(load_image(path), size)
        except (ImageLoadError, OSError):
            return None

    workers = max(1, min(4, os.cpu_count() or 1))
    out: list[torch.Tensor] = []
    ok: list[int] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not show_progress)
        for i, pixels in enumerate(pool.map(one, paths)):
            if pixels is not None:
                out.append(pixels)
                ok.append(i)
            bar.update(1)
        bar.close()
    if not out:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), ok
    return torch.stack(out), ok


def load_split(
    dataset: ImageTextDataset,
    tower: SmallTextTower,
    size: int,
    limit: int | None,
    show_progress: bool = True,
) -> SplitTensors:
    """Decode and tokenise a split (its first `limit` images); broken images lose captions."""
    if limit is not None and limit < len(dataset):
        dataset = dataset.subset(np.arange(limit))
    pixels, ok = decode_images(
        dataset.image_paths, size, show_progress, desc=f"decoding {dataset.split}"
    )
    if not ok:
        raise DatasetError(f"no image of {dataset.name} ({dataset.split}) could be decoded")
    skipped = len(dataset) - len(ok)
    if skipped:
        dataset = dataset.subset(np.asarray(ok))
    tokens = tower.tokenizer(
        list(dataset.captions),
        padding=True,
        truncation=True,
        max_length=tower.max_length,
        return_tensors="pt",
    )
    return SplitTensors(
        pixels=pixels,
        input_ids=tokens["input_ids"].long(),
        lengths=tokens["attention_mask"].sum(1).long(),
        caption_image=torch.as_tensor(dataset.caption_image, dtype=torch.long),
        skipped=skipped,
    )


def check_sizes(cfg: SSLConfig, train: SplitTensors) -> None:
    n_images, n_captions = len(train.pixels), len(train.input_ids)
    if cfg.simsiam_epochs and cfg.simsiam_batch_size > n_images:
        raise ConfigError(
            f"simsiam_batch_size {cfg.simsiam_batch_size} is larger than the "
            f"{n_images} training images"
        )
    if cfg.mlm_epochs and cfg.mlm_batch_size > n_captions:
        raise ConfigError(
            f"mlm_batch_size {cfg.mlm_batch_size} is larger than the {n_captions} training captions"
        )
    if cfg.align_batch_size > n_images:
        raise ConfigError(
            f"align_batch_size {cfg.align_batch_size} is larger than the {n_images} training images"
        )


def load_captioned(cfg: SSLConfig, split: str) -> ImageTextDataset:
    ds = load_dataset(cfg.dataset, cfg.root, split=split)
    if not isinstance(ds, ImageTextDataset) or not ds.captions:
        raise DatasetError(f"{cfg.dataset} {split} has no captions to train on")
    return ds
