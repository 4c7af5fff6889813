"""The whole from-scratch run: data, the three stages in order, the saved model and summary;
`resume=True` continues a killed run from the stage (and epoch) it had reached."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from crossmodal import runtime
from crossmodal.errors import ConfigError
from crossmodal.models.dual import DualEncoder
from crossmodal.models.small import SmallCNNTower, SmallTextTower
from crossmodal.train.heads import seed_everything
from crossmodal.train.loop import TrainResult, write_summary
from crossmodal.train.ssl.align_stage import align
from crossmodal.train.ssl.config import STAGES, SSLConfig, model_config
from crossmodal.train.ssl.data import SplitTensors, check_sizes, load_captioned, load_split
from crossmodal.train.ssl.image_stage import pretrain_image_tower
from crossmodal.train.ssl.stage import CHECKPOINT, StageFiles
from crossmodal.train.ssl.text_stage import pretrain_text_tower

CONFIG_FILE = "train_config.json"


def check_resumable(cfg: SSLConfig, resume: bool) -> None:
    """A new run never overwrites an old one; a resumed one must have its settings."""
    out = Path(cfg.out)
    started = any((out / stage / CHECKPOINT).is_file() for stage in STAGES)
    if not resume:
        if started:
            raise ConfigError(
                f"{out} already holds a run; pass --resume to continue it, or choose another --out"
            )
        return
    if not started:
        raise ConfigError(f"nothing to resume: {out} holds no stage checkpoint")
    saved = json.loads((out / CONFIG_FILE).read_text())
    now = json.loads(json.dumps(asdict(cfg)))
    changed = sorted(k for k, v in now.items() if k != "threads" and saved.get(k) != v)
    if changed:
        raise ConfigError(
            f"--resume with different settings than the run in {out}: {', '.join(changed)}"
        )


def run_stages(
    cfg: SSLConfig,
    model: DualEncoder,
    splits: tuple[SplitTensors, SplitTensors],
    resume: bool,
    show_progress: bool,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The three stages in order (a stage with 0 epochs is skipped); their results and
    seconds. One generator runs through all of them, so each stage's checkpoint holds it."""
    train, val = splits
    image_tower, text_tower = model.image_tower, model.text_tower
    assert isinstance(image_tower, SmallCNNTower) and isinstance(text_tower, SmallTextTower)
    generator = torch.Generator().manual_seed(cfg.seed)
    out = Path(cfg.out)
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        (out / stage).mkdir(exist_ok=True)
        files = StageFiles.in_folder(out / stage, resume, show_progress)
        if stage == "simsiam" and cfg.simsiam_epochs:
            records = pretrain_image_tower(image_tower, train.pixels, cfg, generator, files=files)
            results[stage] = records[-1]
        elif stage == "mlm" and cfg.mlm_epochs:
            results[stage] = pretrain_text_tower(text_tower, train, cfg, generator, files=files)[-1]
        elif stage == "align":
            results[stage] = align(model, train, val, cfg, generator, files=files)
        elif files.log is not None:
            files.log.write_text("")  # a skipped stage: an empty log says so
        seconds[stage] = round(time.perf_counter() - t0, 1)
    return results, seconds


def train_ssl(cfg: SSLConfig, show_progress: bool = True, resume: bool = False) -> TrainResult:
    """Full run: SimSiam, MLM, alignment; writes `<out>/best` (a dual-encoder folder),
    `<out>/<stage>/metrics.jsonl` and `checkpoint.pt`, `train_config.json` and `summary.json`.
    `resume=True` continues a killed run (same settings) where it stopped."""
    cfg.validate()
    device = runtime.resolve_device(cfg.device)
    check_resumable(cfg, resume)
    start = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    train_ds = load_captioned(cfg, cfg.train_split)
    val_ds = load_captioned(cfg, cfg.val_split)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    model = DualEncoder(model_config(cfg, name=str(out / "best")))
    image_tower, text_tower = model.image_tower, model.text_tower
    assert isinstance(image_tower, SmallCNNTower) and isinstance(text_tower, SmallTextTower)
    train = load_split(train_ds, text_tower, cfg.image_size, cfg.max_train_images, show_progress)
    check_sizes(cfg, train)
    val = load_split(val_ds, text_tower, cfg.image_size, cfg.max_val_images, show_progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    train, val = train.to(device), val.to(device)
    model.to(device)
    data_seconds = round(time.perf_counter() - start, 1)
    results, seconds = run_stages(cfg, model, (train, val), resume, show_progress)
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
        "seconds": {"data": data_seconds, **seconds, "total": total},
        "device": str(device),
        "parameters": {
            "image_tower": sum(p.numel() for p in image_tower.parameters()),
            "text_tower": sum(p.numel() for p in text_tower.parameters()),
        },
        "skipped_images": {"train": train.skipped, "val": val.skipped},
    }
    return write_summary(out, summary, best, total)
