"""Shared by the trainers' kill-and-resume tests: kill a run right after one epoch's
checkpoint, resume it, and compare it with an uninterrupted run epoch by epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crossmodal.errors import ConfigError
from crossmodal.train import loop
from crossmodal.train.config import TrainConfig
from crossmodal.train.runner import run_training


def kill_then_resume(monkeypatch: pytest.MonkeyPatch, cfg: TrainConfig, after: int) -> Path:
    """Run `cfg`, killed as if by Ctrl-C right after epoch `after`'s checkpoint; check that
    starting it again without --resume is refused; resume it. Returns the best model."""
    real_save = loop.save_checkpoint
    calls = {"n": 0}

    def save_then_die(path: Path, payload: dict) -> None:
        real_save(path, payload)
        calls["n"] += 1
        if calls["n"] == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, show_progress=False)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    with pytest.raises(ConfigError, match="--resume"):
        run_training(cfg, show_progress=False)  # never silently overwrite a run
    return run_training(cfg, resume=True, show_progress=False).best_dir


def assert_same_run(
    run_a: Path,
    run_b: Path,
    weights_a: dict[str, torch.Tensor],
    weights_b: dict[str, torch.Tensor],
    epochs: int,
) -> None:
    """Same val scores and losses every epoch, same final weights (within float noise)."""
    log_a = (run_a / "metrics.jsonl").read_text().splitlines()
    log_b = (run_b / "metrics.jsonl").read_text().splitlines()
    assert len(log_a) == len(log_b) == epochs
    for a, b in zip(log_a, log_b, strict=True):
        ra, rb = json.loads(a), json.loads(b)
        assert ra["val_mean_recall"] == rb["val_mean_recall"]
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        torch.testing.assert_close(weights_a[key], weights_b[key], rtol=1e-4, atol=1e-5)
