"""Stage 1: SimSiam (Chen & He, 2021) pre-trains the small CNN on the training images alone:
two augmented views, a predictor MLP, stop-gradient, negative cosine similarity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossmodal import runtime
from crossmodal.models.small import SmallCNNTower
from crossmodal.train.loop import warmup_cosine
from crossmodal.train.ssl.augment import simsiam_view
from crossmodal.train.ssl.config import SSLConfig
from crossmodal.train.ssl.stage import (
    StageFiles,
    StageParts,
    run_stage,
    stage_optimizer,
    steps_bar,
)


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


def image_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch without the last partial batch (BatchNorm needs two samples, and a
    tiny last batch gives the step a noisy gradient)."""
    order = torch.randperm(n, generator=generator)
    full = (n // batch_size) * batch_size
    if full == 0:
        return [order]
    return list(torch.split(order[:full], batch_size))


def pretrain_image_tower(
    tower: SmallCNNTower,
    pixels: torch.Tensor,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: Path | None = None,
    show_progress: bool = True,
    files: StageFiles | None = None,
) -> list[dict[str, Any]]:
    """Stage 1, in place: SimSiam on uint8 images already on the training device. Returns
    the epoch records (`files` gives a checkpoint to write and, on resume, to start from)."""
    files = files or StageFiles(log=log, show_progress=show_progress)
    device = pixels.device
    net = SimSiam(tower, cfg.simsiam_dim, cfg.simsiam_pred_dim).to(device)
    optim = stage_optimizer([(list(net.parameters()), cfg.simsiam_lr)], cfg.weight_decay)
    steps = len(image_batches(len(pixels), cfg.simsiam_batch_size, torch.Generator()))
    sched = warmup_cosine(optim, steps * cfg.simsiam_epochs, 1, cfg.warmup_fraction)
    autocast = runtime.autocast(device, cfg.precision)[0]

    def train_epoch(epoch: int) -> dict[str, Any]:
        net.train()
        losses, stds = [], []
        batches = image_batches(len(pixels), cfg.simsiam_batch_size, generator)
        for batch in steps_bar(batches, epoch, files.show_progress):
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
        return {
            "loss": float(np.mean(losses)),
            "z_std": float(np.mean(stds)),
            "z_std_healthy": 1 / math.sqrt(cfg.simsiam_dim),
        }

    parts = StageParts(
        "simsiam", "1/3 simsiam", cfg.simsiam_epochs, train_epoch, net, optim, sched, generator
    )
    _, records = run_stage(parts, files)
    tower.eval()
    return records
