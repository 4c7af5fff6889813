"""The from-scratch recipe's settings (`SSLConfig`) and the dual-encoder it builds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crossmodal import runtime
from crossmodal.errors import ConfigError
from crossmodal.models.small import DEFAULT_CNN_WIDTHS, SmallCNNTower
from crossmodal.train.config import RunConfig

STAGES = ("simsiam", "mlm", "align")
_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class SSLConfig(RunConfig):
    """Everything that defines a from-scratch run. Epochs of a pre-training stage may be 0
    (skip it: an ablation that aligns randomly initialised towers).

    The defaults are the measured CPU run (benchmarks/ssl_prototype.py): 11 minutes wall for
    Flickr8k's 5,000 training images on one thread of a two-core machine shared with other
    jobs. On a GPU (bf16 autocast), raise the epochs and widths.
    """

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
    # shared space (256, not RunConfig's 512: small towers of 128-wide features)
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
    patience: int = 4  # this recipe's own: from-scratch val recall is noisy early on
    # shared optimisation settings
    weight_decay: float = 0.05  # this recipe's own (RunConfig's 0.5 is for tuned heads)
    warmup_fraction: float = 0.05
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # CPU threads for torch (None: torch's default, one per core). On a machine shared with
    # other jobs, 1 thread ran this recipe 2x faster than 2 oversubscribed ones
    threads: int | None = None
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
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
