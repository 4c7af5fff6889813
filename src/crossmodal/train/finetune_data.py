"""The data side of end-to-end fine-tuning: a split decoded into memory, its augmentation
on the training device, keyword views of captions, and each epoch's batches (plain or
grouped by hard negatives)."""

from __future__ import annotations

import dataclasses
import math
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset
from crossmodal.data.images import load_image
from crossmodal.errors import DatasetError, ImageLoadError
from crossmodal.models.towers import (
    EfficientNetTower,
)
from crossmodal.train.config import TrainConfig
from crossmodal.train.loss import unique_image_batches

# words dropped from a caption's keyword view: articles, auxiliaries, prepositions, pronouns
_STOPWORD_TEXT = (
    "a an the is are was were be being been and or of to in on at by for with from into onto "
    "over under near next while as its his her their this that these those some there here "
    "it he she they them who which one two three four five"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


# ---- data -------------------------------------------------------------------------------
@dataclasses.dataclass
class SplitData:
    """A split ready for training: decoded pixels and captions indexed by image."""

    pixels: torch.Tensor  # (n_images, 3, S, S) uint8
    captions: list[str]
    caption_image: torch.Tensor  # (n_captions,) long
    skipped: list[tuple[str, str]]


def keyword_view(caption: str) -> str:
    """'A dog runs on the beach .' -> 'dog runs beach': the seeds' keyword augmentation."""
    words = re.findall(r"[a-z0-9']+", caption.lower())
    kept = [w for w in words if w not in _STOPWORDS]
    return " ".join(kept)


def decode_split(
    ds: ImageTextDataset,
    tower: EfficientNetTower,
    max_images: int,
    workers: int,
    show_progress: bool,
    text_views: bool = False,
) -> SplitData:
    """Decode (and resize to the tower's size) every image once; unreadable ones are reported
    and dropped together with their captions."""
    n = len(ds.image_paths) if max_images <= 0 else min(max_images, len(ds.image_paths))
    size = tower.image_size

    def load(i: int) -> np.ndarray | str:
        try:
            image = load_image(ds.image_paths[i], draft_size=size)
        except ImageLoadError as exc:
            return str(exc)
        return np.asarray(tower.resize(image), dtype=np.uint8)

    arrays: list[np.ndarray | str] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        bar = tqdm(
            total=n, desc=f"decoding {ds.split} images", unit="img", disable=not show_progress
        )
        for result in pool.map(load, range(n)):
            arrays.append(result)
            bar.update()
        bar.close()
    keep = [i for i, a in enumerate(arrays) if not isinstance(a, str)]
    skipped = [(str(ds.image_paths[i]), str(a)) for i, a in enumerate(arrays) if isinstance(a, str)]
    remap = {old: new for new, old in enumerate(keep)}
    captions, caption_image = [], []
    for text, image in zip(ds.captions, ds.caption_image.tolist(), strict=True):
        if image in remap:
            captions.append(text)
            caption_image.append(remap[image])
    if text_views:
        views = [(keyword_view(t), i) for t, i in zip(captions, caption_image, strict=True)]
        for view, i in views:
            if view:
                captions.append(view)
                caption_image.append(i)
    if not keep or not captions:
        raise DatasetError(f"{ds.name} {ds.split}: no readable image with a caption")
    stacked = np.stack([arrays[i] for i in keep])
    return SplitData(
        pixels=torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(),
        captions=captions,
        caption_image=torch.tensor(caption_image, dtype=torch.long),
        skipped=skipped,
    )


def augment(pixels: torch.Tensor, generator: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """uint8 (n, 3, S, S) -> float in [-1, 1], with a random resized crop (area in
    [crop_scale, 1], aspect 3/4..4/3), a horizontal flip and colour jitter per image."""
    n = len(pixels)
    x = pixels.float() / 255.0
    if cfg.augment:
        r = torch.rand(n, 8, generator=generator).to(pixels.device)
        area = cfg.crop_scale + (1 - cfg.crop_scale) * r[:, 0]
        log_ratio = (r[:, 1] * 2 - 1) * math.log(4 / 3)
        w = torch.sqrt(area * log_ratio.exp()).clamp(max=1.0)
        h = torch.sqrt(area / log_ratio.exp()).clamp(max=1.0)
        cx = (r[:, 2] * 2 - 1) * (1 - w)
        cy = (r[:, 3] * 2 - 1) * (1 - h)
        flip = torch.where(r[:, 4] < 0.5, -1.0, 1.0) if cfg.flip_augment else torch.ones_like(w)
        theta = torch.zeros(n, 2, 3, device=pixels.device)
        theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        j = cfg.color_jitter
        if j > 0:
            bright = (1 + (r[:, 5] * 2 - 1) * j).view(n, 1, 1, 1)
            contrast = (1 + (r[:, 6] * 2 - 1) * j).view(n, 1, 1, 1)
            sat = (1 + (r[:, 7] * 2 - 1) * j).view(n, 1, 1, 1)
            x = x * bright
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * contrast + mean
            gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
            x = ((x - gray) * sat + gray).clamp(0.0, 1.0)
    elif cfg.flip_augment:
        flip = torch.rand(n, generator=generator).to(pixels.device) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    return x * 2.0 - 1.0


def center(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] exactly as `EfficientNetTower.preprocess` scales (x / 127.5 - 1)."""
    return pixels.float() / 127.5 - 1.0


# ---- batches -----------------------------------------------------------------------------
def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def hard_negative_batches(
    caption_image: torch.Tensor,
    image_emb: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """Batches whose images were close to each other in last epoch's space (harder negatives).

    Each round of `unique_image_batches` (one caption per image) is ordered by a k-means
    cluster of its images, then cut into batches, so look-alike images meet in one batch.
    """
    from sklearn.cluster import KMeans

    n_images = len(image_emb)
    k = max(1, n_images // batch_size)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    labels = torch.from_numpy(
        KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(image_emb.numpy())
    )
    plain = unique_image_batches(caption_image, batch_size, generator)
    members = torch.cat(plain) if plain else torch.zeros(0, dtype=torch.long)
    # rebuild rounds: captions of distinct images, grouped by cluster, cut into batches
    out: list[torch.Tensor] = []
    seen_round: dict[int, int] = {}
    rounds: dict[int, list[int]] = {}
    for c in members.tolist():
        image = int(caption_image[c])
        r = seen_round.get(image, 0)
        seen_round[image] = r + 1
        rounds.setdefault(r, []).append(c)
    for r in sorted(rounds):
        caps = torch.tensor(rounds[r])
        jitter = torch.rand(len(caps), generator=generator)
        order = torch.argsort(labels[caption_image[caps]].double() + jitter)
        out += list(torch.split(caps[order], batch_size))
    perm = torch.randperm(len(out), generator=generator)
    return [out[i] for i in perm]


def epoch_batches(
    train: SplitData, cfg: TrainConfig, epoch: int, image_emb: torch.Tensor | None
) -> tuple[list[torch.Tensor], torch.Generator]:
    gen = epoch_generator(cfg.seed, epoch)
    batches = unique_image_batches(train.caption_image, cfg.batch_size, gen)
    if cfg.hard_negatives > 0 and image_emb is not None:
        hard = hard_negative_batches(train.caption_image, image_emb, cfg.batch_size, gen)
        n_hard = round(cfg.hard_negatives * len(batches))
        # an epoch still shows every caption once: take the hard batches for a share of the
        # epoch and the plain ones for the captions not yet covered
        chosen = hard[:n_hard]
        covered = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)
        mask = torch.ones(len(train.caption_image), dtype=torch.bool)
        mask[covered] = False
        rest = [b[mask[b]] for b in batches]
        batches = chosen + [b for b in rest if len(b) >= 2]
        perm = torch.randperm(len(batches), generator=gen)
        batches = [batches[i] for i in perm]
    return [b for b in batches if len(b) >= 2], gen
