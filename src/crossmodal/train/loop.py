"""The epoch loop shared by the end-to-end trainers (our towers, and CLIP backends).

A trainer supplies what differs — how a batch becomes a loss, how val is embedded, which
tensors change — and gets the same run folder, schedule, gradient accumulation, mixed
precision, early stopping, per-epoch checkpoint and exact `--resume` semantics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset, load_dataset
from crossmodal.errors import ConfigError, DatasetError
from crossmodal.eval.metrics import mean_recall
from crossmodal.models.dual import DualEncoder
from crossmodal.train.config import TrainConfig
from crossmodal.train.loss import unique_image_batches

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def config_for_compare(cfg: TrainConfig) -> dict[str, Any]:
    # settings that may differ between a run and its resumption without changing the result
    skip = {"out", "workers", "cache_dir", "device"}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}


def open_run(
    cfg: TrainConfig, resume: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The checkpoint to resume from (None for a new run). A new run never overwrites an old
    one, and a resumed run must have the settings (and `extra` facts) it was started with."""
    path = Path(cfg.out) / CHECKPOINT
    if not resume:
        if path.is_file():
            raise ConfigError(
                f"{cfg.out} already holds a run; pass --resume to continue it, "
                "or choose another --out"
            )
        return None
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    now = config_for_compare(cfg)
    if ckpt["config"] != now:
        changed = sorted(k for k, v in now.items() if ckpt["config"].get(k) != v)
        raise ConfigError(
            f"--resume with different settings than the run in {cfg.out}: {', '.join(changed)}"
        )
    for key, value in (extra or {}).items():
        if ckpt.get(key) != value:
            raise ConfigError(f"--resume: the run in {cfg.out} was started with another {key}")
    return ckpt


def caption_splits(cfg: TrainConfig) -> tuple[ImageTextDataset, ImageTextDataset]:
    """Train and val splits, refused early if they have no captions or are smaller than a
    batch (a batch holds each image at most once)."""
    found = []
    for split in (cfg.train_split, cfg.val_split):
        ds = load_dataset(cfg.dataset, cfg.root, split=split)
        if not isinstance(ds, ImageTextDataset) or not ds.captions:
            raise DatasetError(f"{cfg.dataset} {split} has no captions to train on")
        found.append(ds)
    n_train = len(found[0].image_paths)
    if cfg.max_train_images > 0:
        n_train = min(n_train, cfg.max_train_images)
    if cfg.batch_size > n_train:
        raise ConfigError(
            f"batch_size {cfg.batch_size} is larger than the {n_train} training "
            "images (a batch holds each image at most once)"
        )
    return found[0], found[1]


def warmup_cosine(
    optim: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine to zero at the last step of the last epoch."""
    total = steps_per_epoch * epochs
    warmup = max(1, int(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optim, factor)


def optimizer_steps_per_epoch(caption_image: torch.Tensor, cfg: TrainConfig) -> int:
    gen = torch.Generator().manual_seed(0)
    return math.ceil(len(unique_image_batches(caption_image, cfg.batch_size, gen)) / cfg.grad_accum)


def truncate_log(path: Path, epochs: int) -> None:
    """Drop log lines of epochs after the checkpoint (a kill between log and checkpoint)."""
    if not path.exists():
        return
    lines = [
        ln
        for ln in path.read_text().splitlines()
        if ln.strip() and json.loads(ln)["epoch"] <= epochs
    ]
    path.write_text("".join(ln + "\n" for ln in lines))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact


@dataclasses.dataclass
class TrainResult:
    """What a finished run gives back (its `summary.json` says the same, for other tools)."""

    run_dir: Path
    best_dir: Path  # a loadable model folder (`<run>/best`)
    best_epoch: int
    score: float  # val mean recall of the best epoch
    val: dict[str, dict[str, float]]  # that epoch's val metrics, both directions
    seconds: float


@dataclasses.dataclass
class EpochTrainer:
    """What one trainer (or one stage of one) supplies to `run_epochs`: how an epoch trains,
    how val is scored, and which state a checkpoint must hold to continue exactly."""

    #: trains epoch i (0-based) in place -> the fields it logs (loss, ...)
    train_epoch: Callable[[int], dict[str, Any]]
    #: the tensors that learn: kept as the best state and saved as the checkpoint's "model"
    learning_state: Callable[[], dict[str, torch.Tensor]]
    load_learning_state: Callable[[dict[str, torch.Tensor]], None]
    #: optimiser, schedule, RNG states ...: the rest of what a resumed run needs
    loop_state: Callable[[], dict[str, Any]]
    load_loop_state: Callable[[dict[str, Any]], None]
    #: val metrics after each epoch, to keep the best one; None: no selection (pre-training
    #: stages), the last epoch is the result
    evaluate: Callable[[], dict[str, dict[str, float]]] | None = None
    #: fields logged after the val ones (the temperature)
    after_evaluate: Callable[[], dict[str, Any]] = dict


@dataclasses.dataclass
class EpochPlan:
    """How many epochs, where the log and the checkpoint go, and when to stop early."""

    epochs: int
    log: Path | None = None  # metrics.jsonl, one line per epoch
    checkpoint: Path | None = None  # the whole state after each epoch (None: no resume)
    header: dict[str, Any] = dataclasses.field(default_factory=dict)  # facts a resume checks
    record_prefix: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. the stage
    patience: int | None = None  # epochs without a better val score before stopping
    deadline: float | None = None  # time.perf_counter() value after which no epoch starts
    seconds: str = ""  # "epoch": log each epoch's duration; "run": time since `started`
    started: float = 0.0
    desc: str = "training"
    show_progress: bool = True
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # logged this call


def run_epochs(
    trainer: EpochTrainer, plan: EpochPlan, ckpt: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The epoch loop of every trainer: train, score, keep the best, log, checkpoint; from
    `ckpt` (a checkpoint this function wrote) it continues where that run stopped. Leaves the
    best state loaded (when there is a val score) and returns {"score", "epoch", "val"} of
    the best epoch (for a stage without val: the last epoch's record under "last")."""
    best: dict[str, Any] = {"score": -1.0, "epoch": 0}
    best_state: dict[str, torch.Tensor] | None = None
    stale, first_epoch, last = 0, 0, {}
    if ckpt is not None:
        trainer.load_learning_state(ckpt["model"])
        trainer.load_loop_state(ckpt)
        best, best_state, stale = ckpt["best"], ckpt["best_state"], ckpt["stale"]
        first_epoch, last = ckpt["epoch"], ckpt.get("last", {})
        if plan.log is not None:
            truncate_log(plan.log, first_epoch)
    elif plan.log is not None:
        plan.log.write_text("")
    bar = tqdm(
        range(first_epoch, plan.epochs),
        desc=plan.desc,
        unit="epoch",
        initial=first_epoch,
        total=plan.epochs,
        disable=not plan.show_progress,
    )
    for epoch in bar:
        if plan.patience is not None and stale >= plan.patience:
            break
        if plan.deadline is not None and time.perf_counter() > plan.deadline:
            break
        epoch_start = time.perf_counter()
        last = {**plan.record_prefix, "epoch": epoch + 1, **trainer.train_epoch(epoch)}
        if trainer.evaluate is not None:
            metrics = trainer.evaluate()
            score = mean_recall(metrics)
            last.update(val_mean_recall=score, val=metrics, **trainer.after_evaluate())
            if score > best["score"]:
                best = {"score": score, "epoch": epoch + 1, "val": metrics}
                best_state = trainer.learning_state()
                stale = 0
            else:
                stale += 1
            bar.set_postfix(loss=f"{last['loss']:.3f}", val=f"{score:.2f}")
        if plan.seconds:
            since = epoch_start if plan.seconds == "epoch" else plan.started
            last["seconds"] = round(time.perf_counter() - since, 1)
        plan.records.append(last)
        if plan.log is not None:  # before the checkpoint: a resume trims lines past it
            with open(plan.log, "a") as log:
                log.write(json.dumps(last) + "\n")
        if plan.checkpoint is not None:
            payload = {
                "epoch": epoch + 1,
                **plan.header,
                "model": trainer.learning_state(),
                **trainer.loop_state(),
                "best": best,
                "best_state": best_state,
                "stale": stale,
                "last": last,
            }
            save_checkpoint(plan.checkpoint, payload)
    bar.close()
    if best_state is not None:
        trainer.load_learning_state(best_state)
    return best if trainer.evaluate is not None else {"last": last}


def optimizer_step(
    loss: torch.Tensor,
    optim: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    model: DualEncoder,
) -> float:
    """One plain step of a dual encoder on a batch's loss (no accumulation, no scaler):
    backward, step the optimiser and the schedule, keep the temperature in CLIP's range.
    Returns the loss as a float for the epoch's record."""
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    sched.step()
    model.clamp_logit_scale()
    return float(loss.detach())


@dataclasses.dataclass
class Step:
    """What one batch produced: its loss and (for hard-negative mining) its image vectors."""

    loss: torch.Tensor
    image_rows: torch.Tensor  # which training images the batch held
    image_emb: torch.Tensor


@dataclasses.dataclass
class Trainer:
    """The parts of an end-to-end caption-batch run that differ between trainers (our towers,
    CLIP backends); `fit` turns them into an `EpochTrainer` for `run_epochs`."""

    model: nn.Module
    optim: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: Any  # torch.amp.GradScaler or None
    train_mode: Callable[[], None]
    batch_step: Callable[[torch.Tensor, torch.Generator], Step]  # caption indices -> loss
    after_step: Callable[[], None]  # e.g. clamp the temperature
    evaluate_val: Callable[[], dict[str, dict[str, float]]]
    temperature: Callable[[], float]
    learning_state: Callable[[], dict[str, torch.Tensor]]
    make_batches: Callable[[int, torch.Tensor | None], tuple[list[torch.Tensor], torch.Generator]]
    n_images: int
    embed_dim: int


def fit(
    trainer: Trainer,
    cfg: TrainConfig,
    ckpt: dict[str, Any] | None,
    extra_checkpoint: dict[str, Any] | None = None,
    desc: str = "fine-tuning",
    show_progress: bool = True,
    start_time: float | None = None,
) -> dict[str, Any]:
    """Run the epochs (or the rest of them, from `ckpt`); leaves the best state loaded in the
    model and returns {"score", "epoch", "val"} of the best epoch."""
    start_time = time.perf_counter() if start_time is None else start_time
    model, optim, sched, scaler = trainer.model, trainer.optim, trainer.sched, trainer.scaler
    # last epoch's image vectors, for hard-negative batches
    mined: dict[str, torch.Tensor | None] = {"image_emb": None}

    def train_epoch(epoch: int) -> dict[str, Any]:
        batches, gen = trainer.make_batches(epoch, mined["image_emb"])
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout, drop-connect, LoRA dropout
        trainer.train_mode()
        losses: list[float] = []
        seen = torch.zeros(trainer.n_images, trainer.embed_dim) if cfg.hard_negatives else None
        steps = tqdm(
            batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not show_progress
        )
        optim.zero_grad(set_to_none=True)
        for i, batch in enumerate(steps):
            step = trainer.batch_step(batch, gen)
            scaled = step.loss / cfg.grad_accum
            (scaler.scale(scaled) if scaler else scaled).backward()
            if (i + 1) % cfg.grad_accum == 0 or i + 1 == len(batches):
                if scaler:
                    scaler.step(optim)
                    scaler.update()
                else:
                    optim.step()
                optim.zero_grad(set_to_none=True)
                sched.step()
                trainer.after_step()
            losses.append(float(step.loss.detach()))
            if seen is not None:
                seen[step.image_rows.cpu()] = step.image_emb.detach().float().cpu()
            steps.set_postfix(loss=f"{losses[-1]:.3f}")
        steps.close()
        mined["image_emb"] = seen
        return {"loss": float(np.mean(losses)) if losses else float("nan")}

    def load_loop_state(state: dict[str, Any]) -> None:
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        mined["image_emb"] = state.get("image_emb")

    epoch_trainer = EpochTrainer(
        train_epoch=train_epoch,
        learning_state=trainer.learning_state,
        load_learning_state=lambda state: model.load_state_dict(state, strict=False),
        loop_state=lambda: {
            "optim": optim.state_dict(),
            "sched": sched.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "image_emb": mined["image_emb"],
        },
        load_loop_state=load_loop_state,
        evaluate=trainer.evaluate_val,
        after_evaluate=lambda: {"temperature": trainer.temperature()},
    )
    header = {"config": config_for_compare(cfg), **(extra_checkpoint or {})}
    plan = _fit_plan(cfg, header, desc, show_progress, start_time)
    return run_epochs(epoch_trainer, plan, ckpt)


def _fit_plan(
    cfg: TrainConfig, header: dict[str, Any], desc: str, show_progress: bool, start_time: float
) -> EpochPlan:
    """The caption trainers' epochs: `<out>/metrics.jsonl`, `<out>/checkpoint.pt`, early
    stopping on patience and on `max_minutes`, seconds since the run started."""
    out = Path(cfg.out)
    return EpochPlan(
        epochs=cfg.epochs,
        log=out / METRICS,
        checkpoint=out / CHECKPOINT,
        header=header,
        patience=cfg.patience,
        deadline=start_time + cfg.max_minutes * 60 if cfg.max_minutes else None,
        seconds="run",
        started=start_time,
        desc=desc,
        show_progress=show_progress,
    )


def write_summary(
    run_dir: Path, summary: dict[str, Any], best: dict[str, Any], seconds: float
) -> TrainResult:
    """Write `<run>/summary.json` (for other tools) and return the same facts as a result."""
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(
        run_dir=run_dir,
        best_dir=run_dir / "best",
        best_epoch=int(best["epoch"]),
        score=float(best["score"]),
        val=best.get("val", {}),
        seconds=seconds,
    )
