"""One entry point for every recipe: `TrainConfig` -> the trainer that fits it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossmodal.train.config import TrainConfig, to_toml
from crossmodal.train.heads import HeadConfig, text_tower_spec, train_heads
from crossmodal.train.loop import TrainResult


def head_config(cfg: TrainConfig) -> HeadConfig:
    """The cached-feature trainer's view of a heads-only run."""
    image_tower: dict[str, Any] = {"type": "efficientnet", "variant": cfg.image_tower}
    if cfg.image_size:
        image_tower["image_size"] = cfg.image_size
    return HeadConfig(
        dataset=cfg.dataset,
        root=cfg.root,
        train_split=cfg.train_split,
        val_split=cfg.val_split,
        image_tower=image_tower,
        text_tower=text_tower_spec(cfg.text_tower),
        embed_dim=cfg.embed_dim,
        image_hidden=cfg.hidden,
        text_hidden=cfg.hidden,
        dropout=cfg.dropout,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_epochs=cfg.warmup_epochs,
        patience=cfg.patience,
        flip_augment=cfg.flip_augment,
        seed=cfg.seed,
        out=cfg.out,
        cache_dir=cfg.cache_dir or None,
        max_train_images=cfg.max_train_images,
    )


def run_training(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> TrainResult:
    """Train as `cfg` says; returns where the run and its best model are, and its scores."""
    cfg.validate()
    if cfg.clip_model:
        from crossmodal.train.clip_finetune import train_clip

        return train_clip(cfg, resume=resume, show_progress=show_progress)
    if cfg.fine_tune:
        from crossmodal.train.finetune import train_finetune

        return train_finetune(cfg, resume=resume, show_progress=show_progress)
    best = train_heads(head_config(cfg), resume=resume, show_progress=show_progress)
    (Path(cfg.out) / "config.toml").write_text(to_toml(cfg))
    return best
