"""Stage 3: InfoNCE (CLIP's symmetric loss, learnable temperature) aligns both towers and
their projection heads on the image-caption pairs, early-stopped on val mean recall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossmodal import runtime
from crossmodal.eval.metrics import metrics_from_ranks, retrieval_ranks
from crossmodal.models.dual import DualEncoder
from crossmodal.models.small import normalize_uint8
from crossmodal.train.loop import optimizer_step, warmup_cosine
from crossmodal.train.loss import ClipLoss, unique_image_batches
from crossmodal.train.ssl.augment import align_view
from crossmodal.train.ssl.config import SSLConfig
from crossmodal.train.ssl.data import SplitTensors
from crossmodal.train.ssl.stage import (
    StageFiles,
    StageParts,
    run_stage,
    stage_optimizer,
    steps_bar,
)


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


def _align_optimizer(model: DualEncoder, cfg: SSLConfig) -> torch.optim.AdamW:
    """Towers at `align_tower_lr`; heads and temperature at `align_lr`."""
    assert model.image_tower is not None and model.text_tower is not None
    towers = list(model.image_tower.parameters()) + list(model.text_tower.parameters())
    heads = (
        list(model.image_head.parameters())
        + list(model.text_head.parameters())
        + [model.logit_scale]
    )
    return stage_optimizer([(towers, cfg.align_tower_lr), (heads, cfg.align_lr)], cfg.weight_decay)


def align(
    model: DualEncoder,
    train: SplitTensors,
    val: SplitTensors,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: Path | None = None,
    show_progress: bool = True,
    files: StageFiles | None = None,
) -> dict[str, Any]:
    """Stage 3, in place: InfoNCE over towers + heads + temperature; the best val epoch's
    state is kept (early stopping after `patience` epochs without a better mean recall)."""
    files = files or StageFiles(log=log, show_progress=show_progress)
    device = train.pixels.device
    text_tower = model.text_tower
    assert text_tower is not None
    optim = _align_optimizer(model, cfg)

    def epoch_batches() -> list[torch.Tensor]:
        chosen = epoch_captions(train.caption_image, cfg.align_captions_per_image, generator)
        batches = unique_image_batches(
            train.caption_image.cpu()[chosen], cfg.align_batch_size, generator
        )
        # InfoNCE needs negatives: a one-pair leftover batch would teach nothing
        return [chosen[b] for b in batches if len(b) >= 2]

    steps = len(epoch_batches())
    sched = warmup_cosine(optim, steps * cfg.align_epochs, 1, cfg.warmup_fraction)
    autocast = runtime.autocast(device, cfg.precision)[0]
    loss_fn = ClipLoss()

    def train_epoch(epoch: int) -> dict[str, Any]:
        model.train()
        losses = []
        for batch in steps_bar(epoch_batches(), epoch, files.show_progress):
            rows = batch.to(device)
            images = train.caption_image[rows]
            pixels = align_view(train.pixels[images], generator, cfg)
            with autocast():
                img = model.project_images(model.image_features(pixels).float())
                txt = model.project_texts(text_tower(train.tokens(rows)).float())
            loss = loss_fn(img.float(), txt.float(), model.logit_scale, group=images)
            losses.append(optimizer_step(loss, optim, sched, model))
        return {"loss": float(np.mean(losses))}

    parts = StageParts(
        "align",
        "3/3 align",
        cfg.align_epochs,
        train_epoch,
        model,
        optim,
        sched,
        generator,
        evaluate=lambda: evaluate_tensors(model, val),
        after_evaluate=lambda: {"temperature": float(1 / model.logit_scale.detach().exp())},
        patience=cfg.patience,
    )
    best, _ = run_stage(parts, files)
    model.eval()
    return best
