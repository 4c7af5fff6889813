"""Head training on frozen towers: features are computed once (and cached), then only the
projection heads and the temperature learn. Minutes on a CPU for Flickr8k.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossmodal.data import ImageTextDataset, load_dataset
from crossmodal.errors import ConfigError, DatasetError
from crossmodal.eval.evaluate import embed_split
from crossmodal.eval.metrics import metrics_from_ranks, retrieval_ranks
from crossmodal.models.dual import DualEncoder
from crossmodal.models.features import default_cache_dir, embed_image_files
from crossmodal.train.config import EpochConfig
from crossmodal.train.loop import (
    EpochPlan,
    EpochTrainer,
    TrainResult,
    optimizer_step,
    run_epochs,
    warmup_cosine,
    write_summary,
)
from crossmodal.train.loss import ClipLoss, unique_image_batches


@dataclass
class HeadConfig(EpochConfig):
    """Everything that defines a head-training run (the TOML file / CLI flags map onto it).

    Where this recipe's defaults differ from `RunConfig`/`EpochConfig` they are set here on
    purpose: heads on frozen 1280/384-d features train best a little smaller (embed_dim 256,
    MLP heads with dropout) and faster (lr 1e-3, weight decay 0.05) than the end-to-end
    recipe. `crossmodal train` builds this from a `TrainConfig` and passes every value.
    """

    image_tower: dict[str, Any] = field(
        default_factory=lambda: {"type": "efficientnet", "variant": "lite0"}
    )
    text_tower: dict[str, Any] = field(default_factory=lambda: {"type": "minilm"})
    embed_dim: int = 256
    image_hidden: int = 1024
    text_hidden: int = 1024
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.05
    flip_augment: bool = True
    out: str = "runs/heads"
    cache_dir: str | None = None
    max_train_images: int = 0  # 0 = all; N = the first N train images (data-size studies)

    def validate(self) -> None:
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (InfoNCE needs negatives)")
        if self.epochs < 1:
            raise ConfigError("epochs must be at least 1")
        if self.embed_dim < 2:
            raise ConfigError("embed_dim must be at least 2")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout must be in [0, 1)")


def model_config(cfg: HeadConfig, name: str = "unnamed") -> dict[str, Any]:
    image_tower = dict(cfg.image_tower)
    image_tower.setdefault("feature_dim", 1280)
    text_tower = dict(cfg.text_tower)
    text_tower.setdefault("feature_dim", text_feature_dim(text_tower))
    return {
        "name": name,
        "embed_dim": cfg.embed_dim,
        "image_tower": image_tower,
        "text_tower": text_tower,
        "image_head": {"hidden": cfg.image_hidden, "dropout": cfg.dropout},
        "text_head": {"hidden": cfg.text_hidden, "dropout": cfg.dropout},
    }


def text_feature_dim(spec: dict[str, Any]) -> int:
    kind = spec.get("type", "minilm")
    if kind == "concat":
        return sum(text_feature_dim(t) for t in spec.get("towers", []))
    return 512 if kind == "use" else 384


def text_tower_spec(name: str) -> dict[str, Any]:
    """CLI shorthand: 'minilm', 'use', or 'minilm+use' (both, concatenated)."""
    parts = [p.strip() for p in name.split("+") if p.strip()]
    if len(parts) == 1:
        return {"type": parts[0]}
    return {"type": "concat", "towers": [{"type": p} for p in parts]}


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class SplitFeatures:
    image: torch.Tensor  # (n_images, d_img)
    text: torch.Tensor  # (n_captions, d_txt)
    caption_image: torch.Tensor  # (n_captions,)
    image_flip: torch.Tensor | None = None
    skipped: int = 0


def split_features(
    model: DualEncoder,
    dataset: ImageTextDataset,
    cache_dir: Path | None,
    flip: bool = False,
    show_progress: bool = True,
) -> SplitFeatures:
    split = embed_split(
        model,
        dataset,
        cache_dir=cache_dir,
        show_progress=show_progress,
        features_only=True,
        multilingual=False,
    )
    flipped = None
    if flip:
        fl = embed_image_files(
            model,
            split.image_paths,
            cache_dir=cache_dir,
            features_only=True,
            flip=True,
            show_progress=show_progress,
        )
        flipped = torch.from_numpy(fl.vectors) if fl.ok.all() else None
    return SplitFeatures(
        image=torch.from_numpy(split.image_emb),
        text=torch.from_numpy(split.text_emb),
        caption_image=torch.from_numpy(split.caption_image).long(),
        image_flip=flipped,
        skipped=len(split.skipped),
    )


def evaluate_features(model: DualEncoder, feats: SplitFeatures) -> dict[str, dict[str, float]]:
    model.eval()
    with torch.inference_mode():
        img = model.project_images(feats.image).numpy()
        txt = model.project_texts(feats.text).numpy()
    t2i, i2t = retrieval_ranks(img, txt, feats.caption_image.numpy())
    return {"t2i": metrics_from_ranks(t2i), "i2t": metrics_from_ranks(i2t)}


def _head_optimizer(model: DualEncoder, cfg: HeadConfig) -> torch.optim.AdamW:
    """AdamW over the heads and the temperature, decay on weight matrices only."""
    params = [p for n, p in model.named_parameters() if n.startswith(HEAD_KEYS)]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )


HEAD_KEYS = ("image_head.", "text_head.", "logit_scale")


def fit_heads(
    model: DualEncoder,
    train: SplitFeatures,
    val: SplitFeatures,
    cfg: HeadConfig,
    log: Path | None = None,
    show_progress: bool = True,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train heads + temperature in place; keeps the best state by val mean recall.

    With `log`, one JSON line per epoch goes there; with `checkpoint`, the whole training
    state (heads, optimiser, schedule, sampler RNG, best so far) is written there after every
    epoch, and `resume=True` continues from it."""
    generator = seed_everything(cfg.seed)
    if cfg.batch_size > len(train.image):
        raise ConfigError(
            f"batch_size {cfg.batch_size} is larger than the {len(train.image)} training images"
        )
    optim = _head_optimizer(model, cfg)
    # (this draw from the generator is part of the run's random sequence: keep it first)
    steps_per_epoch = len(unique_image_batches(train.caption_image, cfg.batch_size, generator))
    sched = warmup_cosine(optim, steps_per_epoch, cfg.epochs, cfg.warmup_epochs)
    loss_fn = ClipLoss()

    def train_epoch(epoch: int) -> dict[str, Any]:
        model.train()
        losses = []
        for batch in unique_image_batches(train.caption_image, cfg.batch_size, generator):
            images = train.caption_image[batch]
            img_feats = train.image[images]
            if cfg.flip_augment and train.image_flip is not None:
                use_flip = torch.rand(len(images), generator=generator) < 0.5
                img_feats = torch.where(use_flip[:, None], train.image_flip[images], img_feats)
            img = model.project_images(img_feats)
            txt = model.project_texts(train.text[batch])
            loss = loss_fn(img, txt, model.logit_scale, group=images)
            losses.append(optimizer_step(loss, optim, sched, model))
        return {"loss": float(np.mean(losses))}

    def load_loop_state(state: dict[str, Any]) -> None:
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        generator.set_state(state["generator"])

    trainer = EpochTrainer(
        train_epoch=train_epoch,
        learning_state=lambda: {
            k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(HEAD_KEYS)
        },
        load_learning_state=lambda state: model.load_state_dict(state, strict=False),
        loop_state=lambda: {
            "optim": optim.state_dict(),
            "sched": sched.state_dict(),
            "generator": generator.get_state(),
        },
        load_loop_state=load_loop_state,
        evaluate=lambda: evaluate_features(model, val),
        after_evaluate=lambda: {"temperature": float(1 / model.logit_scale.detach().exp())},
    )
    plan = EpochPlan(
        epochs=cfg.epochs,
        log=log,
        checkpoint=checkpoint,
        patience=cfg.patience,
        desc="training heads",
        show_progress=show_progress,
    )
    ckpt = None
    if resume and checkpoint is not None:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    best = run_epochs(trainer, plan, ckpt)
    model.eval()
    return best


def train_heads(cfg: HeadConfig, show_progress: bool = True, resume: bool = False) -> TrainResult:
    """Full run: load data, cache features, fit, save `<out>/best` + config + metrics log.
    `resume=True` continues a killed run from `<out>/checkpoint.pt`."""
    cfg.validate()
    start = time.perf_counter()
    out = Path(cfg.out)
    checkpoint = out / "checkpoint.pt"
    if resume:
        if not checkpoint.is_file():
            raise ConfigError(f"nothing to resume: {checkpoint} does not exist")
        saved = json.loads((out / "train_config.json").read_text())
        if saved != json.loads(json.dumps(asdict(cfg))):
            changed = sorted(k for k, v in asdict(cfg).items() if saved.get(k) != v)
            raise ConfigError(
                f"--resume with different settings than the run in {out}: {', '.join(changed)}"
            )
    elif checkpoint.is_file():
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    train_ds = load_dataset(cfg.dataset, cfg.root, split=cfg.train_split)
    if cfg.max_train_images > 0 and isinstance(train_ds, ImageTextDataset):
        train_ds = train_ds.subset(range(min(cfg.max_train_images, len(train_ds.image_paths))))
    val_ds = load_dataset(cfg.dataset, cfg.root, split=cfg.val_split)
    for ds in (train_ds, val_ds):
        if not isinstance(ds, ImageTextDataset) or not ds.captions:
            raise DatasetError(f"{cfg.dataset} {ds.split} has no captions to train on")
    assert isinstance(train_ds, ImageTextDataset) and isinstance(val_ds, ImageTextDataset)
    seed_everything(cfg.seed)
    model = DualEncoder(model_config(cfg, name=str(out / "best")))
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    train = split_features(
        model, train_ds, cache, flip=cfg.flip_augment, show_progress=show_progress
    )
    val = split_features(model, val_ds, cache, show_progress=show_progress)
    best = fit_heads(
        model,
        train,
        val,
        cfg,
        log=out / "metrics.jsonl",
        show_progress=show_progress,
        checkpoint=checkpoint,
        resume=resume,
    )
    seconds = round(time.perf_counter() - start, 1)
    model.save(
        out / "best",
        extra_info={
            "trained_on": f"{cfg.dataset} {cfg.train_split} ({len(train.image)} images, "
            f"{len(train.text)} captions)",
            "selected_on": (
                f"{cfg.val_split} mean recall {best['score']:.2f} at epoch {best['epoch']}"
            ),
            "seed": cfg.seed,
            "train_seconds": seconds,
        },
    )
    return write_summary(out, {**best, "seconds": seconds}, best, seconds)
