"""Train a small CLIP from scratch: self-supervised pre-training of each tower, then alignment.

The prototype recipe of issue 4 (item 4), with no pretrained weights anywhere:

1. SimSiam (Chen & He, 2021) pre-trains the small CNN on the training images alone: two
   augmented views, a predictor MLP, stop-gradient, negative cosine similarity.
2. Masked-language modelling (BERT's 15% with 80/10/10) pre-trains the small Transformer on
   the training captions alone.
3. InfoNCE (CLIP's symmetric loss, learnable temperature) aligns both towers and their
   projection heads on the image-caption pairs, early-stopped on val mean recall.

The result is an ordinary dual-encoder folder (`<out>/best`) whose config names the small
towers and whose weights include them, so `crossmodal eval --model <out>/best` works. With a
few thousand pairs and minutes of CPU it scores far below the pretrained-tower models: it is
the from-scratch baseline those are measured against, not a replacement.

Images are decoded once into a uint8 tensor at the working size (5,000 Flickr8k images at
64 px are 61 MB) and augmented on the training device with tensor ops (torchvision's wheels
do not pair with the CPU torch build here).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from crossmodal import runtime
from crossmodal.data import ImageTextDataset, load_dataset, load_image
from crossmodal.defaults import DEFAULT_FLICKR8K_ROOT
from crossmodal.errors import ConfigError, DatasetError, ImageLoadError
from crossmodal.eval.metrics import mean_recall, metrics_from_ranks, retrieval_ranks
from crossmodal.models.dual import DualEncoder
from crossmodal.models.small import (
    DEFAULT_CNN_WIDTHS,
    SmallCNNTower,
    SmallTextTower,
    image_to_uint8,
    normalize_uint8,
)
from crossmodal.train.heads import seed_everything
from crossmodal.train.loop import warmup_cosine
from crossmodal.train.loss import ClipLoss, unique_image_batches

STAGES = ("simsiam", "mlm", "align")
_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class SSLConfig:
    """Everything that defines a from-scratch run. Epochs of a pre-training stage may be 0
    (skip it: an ablation that aligns randomly initialised towers).

    The defaults are the measured CPU run (benchmarks/ssl_prototype.py): 11 minutes wall for
    Flickr8k's 5,000 training images on one thread of a two-core machine shared with other
    jobs. On a GPU (bf16 autocast), raise the epochs and widths.
    """

    dataset: str = "flickr8k"
    root: str = str(DEFAULT_FLICKR8K_ROOT)
    train_split: str = "train"
    val_split: str = "val"
    max_train_images: int | None = None  # first N training images, for quick runs
    max_val_images: int | None = None
    # image tower (small-cnn)
    # 64 px costs about half of 96 px per CNN step: more alignment epochs in a CPU budget
    image_size: int = 64
    cnn_widths: list[int] = field(default_factory=lambda: list(DEFAULT_CNN_WIDTHS))
    cnn_depths: list[int] | None = None  # one block per stage when None
    # text tower (small-transformer, MiniLM's WordPiece vocabulary)
    text_width: int = 128  # 256 cost 3.4x per MLM step on this CPU
    text_layers: int = 6
    text_heads: int = 4
    text_mlp_ratio: int = 4
    text_max_length: int = 32
    # 0 by default: short from-scratch runs underfit, and dropout cost ~30% of a CPU MLM step
    text_dropout: float = 0.0
    # shared space
    embed_dim: int = 256
    head_hidden: int = 0  # 0: linear projection heads (the towers themselves are trained)
    # stage 1: SimSiam
    simsiam_epochs: int = 3
    simsiam_batch_size: int = 128
    simsiam_lr: float = 1e-3
    simsiam_dim: int = 512
    simsiam_pred_dim: int = 128
    min_crop_scale: float = 0.2
    # stage 2: masked-language modelling
    mlm_epochs: int = 2
    mlm_batch_size: int = 256
    mlm_lr: float = 5e-4
    mask_prob: float = 0.15
    # stage 3: InfoNCE alignment
    align_epochs: int = 15
    align_batch_size: int = 128
    align_lr: float = 1e-3  # projection heads and temperature
    align_tower_lr: float = 3e-4  # both towers
    align_captions_per_image: int = 1  # captions drawn per image each epoch; 0 = all of them
    align_min_crop_scale: float = 0.6
    patience: int = 4
    # shared optimisation settings
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # CPU threads for torch (None: torch's default, one per core). On a machine shared with
    # other jobs, 1 thread ran this recipe 2x faster than 2 oversubscribed ones
    threads: int | None = None
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    seed: int = 0
    out: str = "runs/ssl"

    def validate(self) -> None:
        """One clear line for the first impossible setting, before any data is read."""

        def positive(name: str, minimum: int = 1) -> None:
            if int(getattr(self, name)) < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {getattr(self, name)}")

        if not 16 <= self.image_size <= 512:
            raise ConfigError(f"image_size must be in 16..512 pixels, got {self.image_size}")
        if not self.cnn_widths or min(self.cnn_widths) < 1:
            raise ConfigError(f"cnn_widths must be positive channel counts, got {self.cnn_widths}")
        if self.cnn_depths is not None and (
            len(self.cnn_depths) != len(self.cnn_widths) or min(self.cnn_depths) < 1
        ):
            raise ConfigError(
                f"cnn_depths needs one positive depth per width ({len(self.cnn_widths)}), "
                f"got {self.cnn_depths}"
            )
        for name in ("text_width", "text_layers", "text_heads", "text_mlp_ratio"):
            positive(name)
        if self.text_width % self.text_heads:
            raise ConfigError(
                f"text_width {self.text_width} must be a multiple of text_heads {self.text_heads}"
            )
        if not 4 <= self.text_max_length <= 512:
            raise ConfigError(f"text_max_length must be in 4..512, got {self.text_max_length}")
        positive("embed_dim", 2)
        for name in ("simsiam_epochs", "mlm_epochs", "head_hidden"):
            positive(name, 0)
        positive("align_epochs")
        positive("patience")
        positive("simsiam_dim", 2)
        positive("simsiam_pred_dim", 1)
        for name in ("simsiam_batch_size", "mlm_batch_size", "align_batch_size"):
            # SimSiam's BatchNorm and InfoNCE's negatives both need two samples at least
            positive(name, 2)
        for name in ("simsiam_lr", "mlm_lr", "align_lr", "align_tower_lr"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0 <= self.text_dropout < 1:
            raise ConfigError(f"text_dropout must be in [0, 1), got {self.text_dropout}")
        for name in ("min_crop_scale", "align_min_crop_scale"):
            if not 0 < float(getattr(self, name)) <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        positive("align_captions_per_image", 0)
        for name in ("max_train_images", "max_val_images"):
            value = getattr(self, name)
            if value is not None and int(value) < 2:
                raise ConfigError(f"{name} must be at least 2 (or unset), got {value}")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"threads must be at least 1 (or unset), got {self.threads}")
        if self.precision not in _PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(_PRECISIONS)}, got {self.precision!r}"
            )
        runtime.resolve_device(self.device)


def _autocast(cfg: SSLConfig, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    """bf16 autocast on CUDA by default; on the CPU only when asked: on an AVX-512 machine
    (no AMX) it made the Transformer ~1.3x faster but not the CNN (channels-last fp32 was as
    fast), which is not worth the rounding in from-scratch training by default."""
    return runtime.autocast(device, cfg.precision)[0]


def model_config(cfg: SSLConfig, name: str = "unnamed") -> dict[str, Any]:
    """The dual-encoder config: small towers, linear (or MLP) heads, both towers saved."""
    image_tower = SmallCNNTower.spec_for(cfg.image_size, cfg.cnn_widths, cfg.cnn_depths)
    text_tower = {
        "type": "small-transformer",
        "width": cfg.text_width,
        "layers": cfg.text_layers,
        "heads": cfg.text_heads,
        "max_length": cfg.text_max_length,
        "mlp_ratio": cfg.text_mlp_ratio,
        "dropout": cfg.text_dropout,
        "feature_dim": cfg.text_width,
    }
    return {
        "name": name,
        "embed_dim": cfg.embed_dim,
        "image_tower": image_tower,
        "text_tower": text_tower,
        "image_head": {"hidden": cfg.head_hidden},
        "text_head": {"hidden": cfg.head_hidden},
        # the towers exist nowhere else: they must travel with the model
        "saved_towers": ["image", "text"],
    }


# ---- data ---------------------------------------------------------------------------------


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


# ---- augmentation (tensor ops, batched, on the training device) ---------------------------

# RGB <-> YIQ: hue jitter is a rotation of the chroma plane (I, Q), which keeps luma intact.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def random_resized_crop(
    pixels: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.5,
) -> torch.Tensor:
    """Per-sample random crop (area fraction in `scale`, aspect in `ratio`) resized back to the
    input size, and a horizontal flip, as one affine `grid_sample` over the batch.

    Random numbers come from a CPU generator and are moved over, so a run is reproducible on
    either device from the same seed.
    """
    n = pixels.shape[0]
    r = torch.rand(n, 5, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * r[:, 0]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * r[:, 1]
    aspect = torch.exp(log_ratio)
    # crop width and height as fractions of the side; a too-wide crop is clipped to the image
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * r[:, 2] - 1)
    cy = (1 - h) * (2 * r[:, 3] - 1)
    flip = torch.where(r[:, 4] < flip_prob, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    theta = theta.to(pixels.device, pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def color_jitter(
    pixels: torch.Tensor,
    generator: torch.Generator,
    strength: float = 0.4,
    hue: float = 0.1,
    prob: float = 0.8,
    gray_prob: float = 0.2,
) -> torch.Tensor:
    """SimSiam's colour distortion on [0, 1] pixels: brightness, contrast and saturation by a
    factor in [1 - s, 1 + s] and hue by up to `hue` of a turn (with probability `prob`), then
    grayscale with probability `gray_prob`. A fixed order keeps it one pass of tensor ops."""
    n = pixels.shape[0]
    device, dtype = pixels.device, pixels.dtype
    r = torch.rand(n, 6, generator=generator)
    on = (r[:, 0] < prob).float()

    def factor(u: torch.Tensor) -> torch.Tensor:
        f = 1 + strength * (2 * u - 1)
        return (on * f + (1 - on)).to(device, dtype).view(n, 1, 1, 1)

    luma = _LUMA.to(device, dtype).view(1, 3, 1, 1)
    x = (pixels * factor(r[:, 1])).clamp(0, 1)  # brightness
    mean = (x * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * factor(r[:, 2]) + mean).clamp(0, 1)  # contrast
    gray = (x * luma).sum(1, keepdim=True)
    x = ((x - gray) * factor(r[:, 3]) + gray).clamp(0, 1)  # saturation
    angle = on * hue * (2 * r[:, 4] - 1) * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    to_yiq = _RGB_TO_YIQ
    matrix = (torch.linalg.inv(to_yiq) @ rot @ to_yiq).to(device, dtype)  # (n, 3, 3)
    x = torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)  # hue
    gray = (x * luma).sum(1, keepdim=True).expand_as(x)
    to_gray = (r[:, 5] < gray_prob).to(device).view(n, 1, 1, 1)
    return torch.where(to_gray, gray, x)


def simsiam_view(pixels: torch.Tensor, generator: torch.Generator, cfg: SSLConfig) -> torch.Tensor:
    """uint8 batch -> one augmented view in [-1, 1] (the towers' input scaling)."""
    x = pixels.float() / 255.0
    x = random_resized_crop(x, generator, scale=(cfg.min_crop_scale, 1.0))
    x = color_jitter(x, generator)
    return x * 2 - 1


def align_view(pixels: torch.Tensor, generator: torch.Generator, cfg: SSLConfig) -> torch.Tensor:
    """Milder augmentation for alignment: a caption describes the whole picture, so crops keep
    most of it and colours are left alone ("a red shirt")."""
    x = normalize_uint8(pixels)
    return random_resized_crop(x, generator, scale=(cfg.align_min_crop_scale, 1.0))


# ---- stage 1: SimSiam ---------------------------------------------------------------------


class SimSiam(nn.Module):
    """Backbone + projector + predictor. The projector ends in an affine-free BatchNorm and the
    predictor is a bottleneck, as in the paper (its 2-layer projector variant for CIFAR)."""

    def __init__(self, backbone: SmallCNNTower, dim: int, pred_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        f = backbone.feature_dim
        self.projector = nn.Sequential(
            nn.Linear(f, dim, bias=False),
            nn.BatchNorm1d(dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False),
            nn.BatchNorm1d(dim, affine=False),
        )
        self.predictor = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False),
            nn.BatchNorm1d(pred_dim),
            nn.ReLU(inplace=True),
            nn.Linear(pred_dim, dim),
        )

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        z1 = self.projector(self.backbone(x1))
        z2 = self.projector(self.backbone(x2))
        return self.predictor(z1), self.predictor(z2), z1.detach(), z2.detach()


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Symmetric negative cosine similarity; z are already detached (the stop-gradient that
    keeps SimSiam from collapsing to a constant). -1 is the minimum."""
    return -0.5 * (
        F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
        + F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
    )


def output_std(z: torch.Tensor) -> float:
    """Per-dimension std of the l2-normalised outputs: ~1/sqrt(dim) when healthy, 0 when
    collapsed (the paper's collapse monitor)."""
    return float(F.normalize(z.float(), dim=-1).std(dim=0).mean())


# ---- stage 2: masked-language modelling ---------------------------------------------------


class MLMHead(nn.Module):
    """BERT's prediction head, decoding with the tower's (tied) token embedding.

    Logits are computed only for `candidates`, the token ids that occur in the training
    captions: every target is among them, and it cuts the softmax from 30,522 ids to a few
    thousand, most of stage 2's cost on a CPU.
    """

    def __init__(self, tower: SmallTextTower, candidates: torch.Tensor) -> None:
        super().__init__()
        self.tower = tower
        self.transform = nn.Sequential(
            nn.Linear(tower.width, tower.width), nn.GELU(), nn.LayerNorm(tower.width)
        )
        self.bias = nn.Parameter(torch.zeros(len(candidates)))
        self.register_buffer("candidates", candidates.clone(), persistent=False)
        lookup = torch.full((tower.vocab_size,), -1, dtype=torch.long)
        lookup[candidates] = torch.arange(len(candidates))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weight = self.tower.token_embedding.weight[self.candidates]
        return self.transform(states) @ weight.t() + self.bias


def mask_tokens(
    ids: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    mask_prob: float,
    mask_id: int,
    random_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `mask_prob` of the real tokens ([CLS]/[SEP]/padding never); of
    those, 80% become [MASK], 10% a random token, 10% stay. Returns (inputs, picked)."""
    n, width = ids.shape
    pos = torch.arange(width)[None, :]
    eligible = (pos >= 1) & (pos < lengths.cpu()[:, None] - 1)
    r = torch.rand(n, width, 2, generator=generator)
    picked = eligible & (r[..., 0] < mask_prob)
    if not picked.any() and eligible.any():
        # a tiny batch can draw no masks at all; predict one token rather than nothing
        rows, cols = torch.nonzero(eligible, as_tuple=True)
        k = int(torch.randint(len(rows), (1,), generator=generator))
        picked[rows[k], cols[k]] = True
    inputs = ids.cpu().clone()
    to_mask = picked & (r[..., 1] < 0.8)
    to_random = picked & (r[..., 1] >= 0.8) & (r[..., 1] < 0.9)
    inputs[to_mask] = mask_id
    # random replacements come from the captions' own vocabulary: a uniform draw over all of
    # WordPiece would mostly insert ids this corpus never uses
    draws = torch.randint(len(random_ids), (int(to_random.sum()),), generator=generator)
    inputs[to_random] = random_ids.cpu()[draws]
    return inputs.to(ids.device), picked.to(ids.device)


def mlm_loss(
    tower: SmallTextTower,
    head: MLMHead,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    inputs: torch.Tensor,
    picked: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of the original tokens at the picked positions, read from the states of
    the corrupted `inputs`. Returns (loss, logits, targets as candidate indices)."""
    states = tower.token_states(inputs, attention_mask)
    logits = head(states[picked]).float()
    targets = head.lookup[input_ids[picked]]
    return F.cross_entropy(logits, targets), logits, targets


def length_bucketed_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, pool: int = 50
) -> list[torch.Tensor]:
    """Shuffled batches of similar-length captions: each run of `pool` batches is sorted by
    length before it is cut, so little of a batch is padding (about half of it otherwise)."""
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[torch.Tensor] = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[torch.argsort(lengths.cpu()[part], stable=True)]
        batches += [b for b in torch.split(part, batch_size) if len(b) >= 2]
    perm = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in perm]


# ---- optimisation helpers -----------------------------------------------------------------


def _optimizer(
    groups: Sequence[tuple[Sequence[nn.Parameter], float]], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only: decaying norms, biases or the temperature
    only fights them."""
    params: list[dict[str, Any]] = []
    for group, lr in groups:
        decay = [p for p in group if p.ndim >= 2]
        rest = [p for p in group if p.ndim < 2]
        params.append({"params": decay, "lr": lr, "weight_decay": weight_decay})
        params.append({"params": rest, "lr": lr, "weight_decay": 0.0})
    groups_ = [g for g in params if g["params"]]
    # the fused kernel (CPU and CUDA) updates the 30,522-row token embedding in one pass; the
    # per-tensor loop spent ~15% of a CPU step on optimizer arithmetic
    return torch.optim.AdamW(groups_, fused=True)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch without the last partial batch (BatchNorm needs two samples, and a
    tiny last batch gives the step a noisy gradient)."""
    order = torch.randperm(n, generator=generator)
    full = (n // batch_size) * batch_size
    if full == 0:
        return [order]
    return list(torch.split(order[:full], batch_size))


def _log(handle: TextIO, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()


# ---- the stages ---------------------------------------------------------------------------


def pretrain_image_tower(
    tower: SmallCNNTower,
    pixels: torch.Tensor,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: TextIO | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Stage 1, in place: SimSiam on uint8 images already on the training device."""
    device = pixels.device
    net = SimSiam(tower, cfg.simsiam_dim, cfg.simsiam_pred_dim).to(device)
    optim = _optimizer([(list(net.parameters()), cfg.simsiam_lr)], cfg.weight_decay)
    steps = len(_batches(len(pixels), cfg.simsiam_batch_size, torch.Generator()))
    sched = warmup_cosine(optim, steps * cfg.simsiam_epochs, 1, cfg.warmup_fraction)
    autocast = _autocast(cfg, device)
    records: list[dict[str, Any]] = []
    bar = tqdm(
        total=steps * cfg.simsiam_epochs,
        desc="1/3 simsiam",
        unit="step",
        disable=not show_progress,
    )
    for epoch in range(cfg.simsiam_epochs):
        net.train()
        losses, stds = [], []
        start = time.perf_counter()
        for batch in _batches(len(pixels), cfg.simsiam_batch_size, generator):
            images = pixels[batch.to(device)]
            x1, x2 = simsiam_view(images, generator, cfg), simsiam_view(images, generator, cfg)
            with autocast():
                p1, p2, z1, z2 = net(x1, x2)
                loss = simsiam_loss(p1.float(), p2.float(), z1.float(), z2.float())
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
            stds.append(output_std(z1))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
        record = {
            "stage": "simsiam",
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "z_std": float(np.mean(stds)),
            "z_std_healthy": 1 / math.sqrt(cfg.simsiam_dim),
            "seconds": round(time.perf_counter() - start, 1),
        }
        records.append(record)
        if log is not None:
            _log(log, record)
    bar.close()
    tower.eval()
    return records


def pretrain_text_tower(
    tower: SmallTextTower,
    data: SplitTensors,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: TextIO | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Stage 2, in place: masked-language modelling on the split's (tokenised) captions."""
    device = data.input_ids.device
    real = data.input_ids[
        torch.arange(data.input_ids.shape[1], device=device)[None, :] < data.lengths[:, None]
    ]
    special = torch.tensor(tower.tokenizer.all_special_ids, device=device)
    corpus = torch.unique(real)
    corpus = corpus[~torch.isin(corpus, special)]
    if len(corpus) == 0:
        raise DatasetError("the training captions have no words to learn from")
    head = MLMHead(tower, corpus).to(device)
    params = list(tower.parameters()) + [
        p for n, p in head.named_parameters() if not n.startswith("tower.")
    ]
    optim = _optimizer([(params, cfg.mlm_lr)], cfg.weight_decay)
    steps = len(length_bucketed_batches(data.lengths, cfg.mlm_batch_size, torch.Generator()))
    sched = warmup_cosine(optim, steps * cfg.mlm_epochs, 1, cfg.warmup_fraction)
    autocast = _autocast(cfg, device)
    mask_id = int(tower.tokenizer.mask_token_id)
    records: list[dict[str, Any]] = []
    bar = tqdm(total=steps * cfg.mlm_epochs, desc="2/3 mlm", unit="step", disable=not show_progress)
    for epoch in range(cfg.mlm_epochs):
        tower.train()
        head.train()
        losses, hits, counts = [], 0, 0
        start = time.perf_counter()
        for batch in length_bucketed_batches(data.lengths, cfg.mlm_batch_size, generator):
            tokens = data.tokens(batch.to(device))
            inputs, picked = mask_tokens(
                tokens["input_ids"],
                data.lengths[batch.to(device)],
                generator,
                cfg.mask_prob,
                mask_id,
                corpus,
            )
            with autocast():
                loss, logits, targets = mlm_loss(
                    tower, head, tokens["input_ids"], tokens["attention_mask"], inputs, picked
                )
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
            hits += int((logits.argmax(-1) == targets).sum())
            counts += len(targets)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
        record = {
            "stage": "mlm",
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "masked_accuracy": hits / max(1, counts),
            "candidates": len(corpus),
            "seconds": round(time.perf_counter() - start, 1),
        }
        records.append(record)
        if log is not None:
            _log(log, record)
    bar.close()
    tower.eval()
    return records


@torch.inference_mode()
def embed_tensors(
    model: DualEncoder, data: SplitTensors, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-vector embeddings of a split held in memory (the same pixels `preprocess` makes),
    captions in length order so batches carry little padding."""
    model.eval()
    images = []
    for start in range(0, len(data.pixels), batch_size):
        pixels = normalize_uint8(data.pixels[start : start + batch_size])
        images.append(model.project_images(model.image_features(pixels)).float().cpu())
    order = torch.argsort(data.lengths, stable=True)
    texts = torch.zeros(len(order), model.dim)
    assert model.text_tower is not None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size].to(data.lengths.device)
        feats = model.text_tower(data.tokens(rows))
        texts[rows.cpu()] = model.project_texts(feats).float().cpu()
    return torch.cat(images).numpy(), texts.numpy()


def evaluate_tensors(model: DualEncoder, data: SplitTensors) -> dict[str, dict[str, float]]:
    """R@1/5/10, MRR and ranks in both directions, as `crossmodal eval` computes them."""
    image_emb, text_emb = embed_tensors(model, data)
    t2i, i2t = retrieval_ranks(image_emb, text_emb, data.caption_image.cpu().numpy())
    return {"t2i": metrics_from_ranks(t2i), "i2t": metrics_from_ranks(i2t)}


def epoch_captions(
    caption_image: torch.Tensor, per_image: int, generator: torch.Generator
) -> torch.Tensor:
    """Indices of `per_image` randomly chosen captions of every image (all when 0): an epoch
    then costs one pass over the images, not one per caption."""
    if per_image <= 0:
        return torch.arange(len(caption_image))
    order = torch.randperm(len(caption_image), generator=generator)
    images = caption_image.cpu()[order]
    sort = torch.argsort(images, stable=True)
    sorted_images = images[sort]
    starts = torch.ones_like(sorted_images, dtype=torch.bool)
    starts[1:] = sorted_images[1:] != sorted_images[:-1]
    index = torch.arange(len(sorted_images))
    group_start = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), 0).values
    rank = index - group_start  # position among its image's (shuffled) captions
    return torch.sort(order[sort][rank < per_image]).values


def align(
    model: DualEncoder,
    train: SplitTensors,
    val: SplitTensors,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: TextIO | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Stage 3, in place: InfoNCE over towers + heads + temperature; the best val epoch's
    state is kept (early stopping after `patience` epochs without a better mean recall)."""
    device = train.pixels.device
    assert model.image_tower is not None and model.text_tower is not None
    towers = list(model.image_tower.parameters()) + list(model.text_tower.parameters())
    heads = (
        list(model.image_head.parameters())
        + list(model.text_head.parameters())
        + [model.logit_scale]
    )
    optim = _optimizer([(towers, cfg.align_tower_lr), (heads, cfg.align_lr)], cfg.weight_decay)

    def epoch_batches() -> list[torch.Tensor]:
        chosen = epoch_captions(train.caption_image, cfg.align_captions_per_image, generator)
        batches = unique_image_batches(
            train.caption_image.cpu()[chosen], cfg.align_batch_size, generator
        )
        # InfoNCE needs negatives: a one-pair leftover batch would teach nothing
        return [chosen[b] for b in batches if len(b) >= 2]

    steps = len(epoch_batches())
    sched = warmup_cosine(optim, steps * cfg.align_epochs, 1, cfg.warmup_fraction)
    autocast = _autocast(cfg, device)
    loss_fn = ClipLoss()
    best: dict[str, Any] = {"score": -1.0, "epoch": 0}
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    bar = tqdm(
        total=steps * cfg.align_epochs, desc="3/3 align", unit="step", disable=not show_progress
    )
    for epoch in range(cfg.align_epochs):
        model.train()
        losses = []
        start = time.perf_counter()
        for batch in epoch_batches():
            rows = batch.to(device)
            images = train.caption_image[rows]
            pixels = align_view(train.pixels[images], generator, cfg)
            with autocast():
                img = model.project_images(model.image_features(pixels).float())
                txt = model.project_texts(model.text_tower(train.tokens(rows)).float())
            loss = loss_fn(img.float(), txt.float(), model.logit_scale, group=images)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            model.clamp_logit_scale()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
        metrics = evaluate_tensors(model, val)
        score = mean_recall(metrics)
        record = {
            "stage": "align",
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_mean_recall": score,
            "val": metrics,
            "temperature": float(1 / model.logit_scale.detach().exp()),
            "seconds": round(time.perf_counter() - start, 1),
        }
        if log is not None:
            _log(log, record)
        bar.set_postfix(epoch=epoch + 1, loss=f"{record['loss']:.3f}", val=f"{score:.2f}")
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, "val": metrics}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return best


# ---- the run ------------------------------------------------------------------------------


def _check_sizes(cfg: SSLConfig, train: SplitTensors) -> None:
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


def _load(cfg: SSLConfig, split: str) -> ImageTextDataset:
    ds = load_dataset(cfg.dataset, cfg.root, split=split)
    if not isinstance(ds, ImageTextDataset) or not ds.captions:
        raise DatasetError(f"{cfg.dataset} {split} has no captions to train on")
    return ds


def train_ssl(cfg: SSLConfig, show_progress: bool = True) -> Path:
    """Full run: SimSiam, MLM, alignment; writes `<out>/best` (a dual-encoder folder),
    `<out>/<stage>/metrics.jsonl`, `train_config.json` and `summary.json`. Returns `<out>/best`.
    """
    cfg.validate()
    device = runtime.resolve_device(cfg.device)
    start = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    train_ds = _load(cfg, cfg.train_split)
    val_ds = _load(cfg, cfg.val_split)
    generator = seed_everything(cfg.seed)
    out = Path(cfg.out)
    model = DualEncoder(model_config(cfg, name=str(out / "best")))
    image_tower, text_tower = model.image_tower, model.text_tower
    assert isinstance(image_tower, SmallCNNTower) and isinstance(text_tower, SmallTextTower)
    train = load_split(train_ds, text_tower, cfg.image_size, cfg.max_train_images, show_progress)
    _check_sizes(cfg, train)
    val = load_split(val_ds, text_tower, cfg.image_size, cfg.max_val_images, show_progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    train, val = train.to(device), val.to(device)
    model.to(device)
    seconds: dict[str, float] = {"data": round(time.perf_counter() - start, 1)}
    results: dict[str, Any] = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        (out / stage).mkdir(exist_ok=True)
        with open(out / stage / "metrics.jsonl", "w") as log:
            if stage == "simsiam" and cfg.simsiam_epochs:
                results[stage] = pretrain_image_tower(
                    image_tower, train.pixels, cfg, generator, log, show_progress
                )[-1]
            elif stage == "mlm" and cfg.mlm_epochs:
                results[stage] = pretrain_text_tower(
                    text_tower, train, cfg, generator, log, show_progress
                )[-1]
            elif stage == "align":
                results[stage] = align(model, train, val, cfg, generator, log, show_progress)
        seconds[stage] = round(time.perf_counter() - t0, 1)
    model.cpu()
    best = results["align"]
    total = round(time.perf_counter() - start, 1)
    model.save(
        out / "best",
        extra_info={
            "recipe": "ssl: SimSiam image tower + MLM text tower + InfoNCE alignment, from scratch",
            "trained_on": f"{cfg.dataset} {cfg.train_split} ({len(train.pixels)} images, "
            f"{len(train.input_ids)} captions)",
            "selected_on": (
                f"{cfg.val_split} mean recall {best['score']:.2f} at epoch {best['epoch']}"
            ),
            "seed": cfg.seed,
            "device": str(device),
            "train_seconds": total,
        },
    )
    summary = {
        "best_val_mean_recall": best["score"],
        "best_epoch": best["epoch"],
        "val": best["val"],
        "pretraining": {k: v for k, v in results.items() if k != "align"},
        "seconds": {**seconds, "total": total},
        "device": str(device),
        "parameters": {
            "image_tower": sum(p.numel() for p in image_tower.parameters()),
            "text_tower": sum(p.numel() for p in text_tower.parameters()),
        },
        "skipped_images": {"train": train.skipped, "val": val.skipped},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out / "best"


__all__ = [
    "SSLConfig",
    "SimSiam",
    "align",
    "color_jitter",
    "mask_tokens",
    "mlm_loss",
    "model_config",
    "pretrain_image_tower",
    "pretrain_text_tower",
    "random_resized_crop",
    "simsiam_loss",
    "train_ssl",
]
