"""Symmetric InfoNCE (CLIP's loss) with the learnable temperature kept in the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClipLoss(nn.Module):
    """Mean of text->image and image->text cross-entropy over the batch's similarity matrix.

    `group` (optional, one id per row) marks rows that share a source image: their off-diagonal
    pairs are true matches, so they are masked out as negatives instead of being pushed apart.
    """

    def forward(
        self,
        image_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor,
        group: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = logit_scale.exp() * text_emb @ image_emb.t()
        if group is not None:
            same = group[:, None] == group[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def unique_image_batches(
    caption_image: torch.Tensor, batch_size: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Caption-index batches in which no image appears twice.

    Each image's captions are dealt into successive rounds (its k-th caption, in a random
    order, goes to round k); a round holds at most one caption per image, and batches are cut
    from shuffled rounds, so every caption is used once per epoch.
    """
    n = len(caption_image)
    order = torch.randperm(n, generator=generator)
    shuffled_images = caption_image[order]
    sort = torch.argsort(shuffled_images, stable=True)
    sorted_images = shuffled_images[sort]
    # position of each caption among its image's captions
    starts = torch.ones_like(sorted_images, dtype=torch.bool)
    starts[1:] = sorted_images[1:] != sorted_images[:-1]
    group_start = torch.cummax(
        torch.where(starts, torch.arange(n), torch.zeros(n, dtype=torch.long)), 0
    ).values
    round_of = torch.empty(n, dtype=torch.long)
    round_of[order[sort]] = torch.arange(n) - group_start
    batches: list[torch.Tensor] = []
    for r in range(int(round_of.max()) + 1 if n else 0):
        members = torch.nonzero(round_of == r).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        batches += list(torch.split(members, batch_size))
    perm = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in perm]
