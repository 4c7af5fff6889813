"""What the three stages share: their optimiser, and how a stage runs on the trainer loop
(`crossmodal.train.loop.run_epochs`) with its own log, checkpoint and resume."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from crossmodal.train.loop import EpochPlan, EpochTrainer, run_epochs

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def stage_optimizer(
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


@dataclass
class StageFiles:
    """Where a stage logs and checkpoints, and the checkpoint it continues from (if any)."""

    log: Path | None = None
    checkpoint: Path | None = None
    resume_from: dict[str, Any] | None = None
    show_progress: bool = True

    @classmethod
    def in_folder(cls, folder: Path, resume: bool, show_progress: bool = True) -> StageFiles:
        """`<folder>/metrics.jsonl` and `<folder>/checkpoint.pt`; with `resume`, the
        checkpoint already there (a stage never started has none and starts afresh)."""
        ckpt = folder / CHECKPOINT
        found = None
        if resume and ckpt.is_file():
            found = torch.load(ckpt, map_location="cpu", weights_only=False)
        return cls(folder / METRICS, ckpt, found, show_progress)


@dataclass
class StageParts:
    """One stage as the trainer loop sees it: what learns, how it steps, how it is scored."""

    name: str
    desc: str
    epochs: int
    train_epoch: Callable[[int], dict[str, Any]]
    module: nn.Module  # its state_dict is what learns (and what the checkpoint keeps)
    optim: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    evaluate: Callable[[], dict[str, dict[str, float]]] | None = None
    after_evaluate: Callable[[], dict[str, Any]] = dict
    patience: int | None = None


def run_stage(parts: StageParts, files: StageFiles) -> tuple[dict[str, Any], list[dict]]:
    """Run (or continue) a stage; returns run_epochs' outcome and the epoch records. A stage
    resumed after its last epoch trains nothing and gives back its last record."""
    optim, sched, generator = parts.optim, parts.sched, parts.generator

    def load_loop_state(state: dict[str, Any]) -> None:
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    trainer = EpochTrainer(
        train_epoch=parts.train_epoch,
        learning_state=lambda: {
            k: v.detach().clone() for k, v in parts.module.state_dict().items()
        },
        load_learning_state=parts.module.load_state_dict,
        loop_state=lambda: {
            "optim": optim.state_dict(),
            "sched": sched.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
        load_loop_state=load_loop_state,
        evaluate=parts.evaluate,
        after_evaluate=parts.after_evaluate,
    )
    plan = EpochPlan(
        epochs=parts.epochs,
        log=files.log,
        checkpoint=files.checkpoint,
        record_prefix={"stage": parts.name},
        patience=parts.patience,
        seconds="epoch",
        desc=parts.desc,
        show_progress=files.show_progress,
    )
    outcome = run_epochs(trainer, plan, files.resume_from)
    records = plan.records or ([outcome["last"]] if outcome.get("last") else [])
    return outcome, records


def steps_bar(batches: Iterable[torch.Tensor], epoch: int, show_progress: bool) -> tqdm:
    """A per-epoch progress bar over the batches (cleared when the epoch ends)."""
    return tqdm(
        batches, desc=f"epoch {epoch + 1}", unit="step", leave=False, disable=not show_progress
    )
