"""Stage 2: masked-language modelling (BERT's 15% with 80/10/10) pre-trains the small
Transformer on the training captions alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossmodal import runtime
from crossmodal.errors import DatasetError
from crossmodal.models.small import SmallTextTower
from crossmodal.train.loop import warmup_cosine
from crossmodal.train.ssl.config import SSLConfig
from crossmodal.train.ssl.data import SplitTensors
from crossmodal.train.ssl.stage import (
    StageFiles,
    StageParts,
    run_stage,
    stage_optimizer,
    steps_bar,
)


class MLMHead(nn.Module):
    """BERT's prediction head, decoding with the tower's (tied) token embedding.

    Logits are computed only for `candidates`, the token ids that occur in the training
    captions: every target is among them, and it cuts the softmax from 30,522 ids to a few
    thousand, most of stage 2's cost on a CPU.
    """

    candidates: torch.Tensor  # buffers, declared for the type checker
    lookup: torch.Tensor

    def __init__(self, tower: SmallTextTower, candidates: torch.Tensor) -> None:
        super().__init__()
        self.tower = tower
        self.transform = nn.Sequential(
            nn.Linear(tower.width, tower.width), nn.GELU(), nn.LayerNorm(tower.width)
        )
        self.bias = nn.Parameter(torch.zeros(len(candidates)))
        self.register_buffer("candidates", candidates.clone(), persistent=False)
        lookup = torch.full((tower.vocab_size,), -1, dtype=torch.long)
        lookup[candidates] = torch.arange(len(candidates))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weight = self.tower.token_embedding.weight[self.candidates]
        return self.transform(states) @ weight.t() + self.bias


def mask_tokens(
    ids: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    mask_prob: float,
    mask_id: int,
    random_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `mask_prob` of the real tokens ([CLS]/[SEP]/padding never); of
    those, 80% become [MASK], 10% a random token, 10% stay. Returns (inputs, picked)."""
    n, width = ids.shape
    pos = torch.arange(width)[None, :]
    eligible = (pos >= 1) & (pos < lengths.cpu()[:, None] - 1)
    r = torch.rand(n, width, 2, generator=generator)
    picked = eligible & (r[..., 0] < mask_prob)
    if not picked.any() and eligible.any():
        # a tiny batch can draw no masks at all; predict one token rather than nothing
        rows, cols = torch.nonzero(eligible, as_tuple=True)
        k = int(torch.randint(len(rows), (1,), generator=generator))
        picked[rows[k], cols[k]] = True
    inputs = ids.cpu().clone()
    to_mask = picked & (r[..., 1] < 0.8)
    to_random = picked & (r[..., 1] >= 0.8) & (r[..., 1] < 0.9)
    inputs[to_mask] = mask_id
    # random replacements come from the captions' own vocabulary: a uniform draw over all of
    # WordPiece would mostly insert ids this corpus never uses
    draws = torch.randint(len(random_ids), (int(to_random.sum()),), generator=generator)
    inputs[to_random] = random_ids.cpu()[draws]
    return inputs.to(ids.device), picked.to(ids.device)


def mlm_loss(
    tower: SmallTextTower,
    head: MLMHead,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    inputs: torch.Tensor,
    picked: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of the original tokens at the picked positions, read from the states of
    the corrupted `inputs`. Returns (loss, logits, targets as candidate indices)."""
    states = tower.token_states(inputs, attention_mask)
    logits = head(states[picked]).float()
    targets = head.lookup[input_ids[picked]]
    return F.cross_entropy(logits, targets), logits, targets


def length_bucketed_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, pool: int = 50
) -> list[torch.Tensor]:
    """Shuffled batches of similar-length captions: each run of `pool` batches is sorted by
    length before it is cut, so little of a batch is padding (about half of it otherwise)."""
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[torch.Tensor] = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[torch.argsort(lengths.cpu()[part], stable=True)]
        batches += [b for b in torch.split(part, batch_size) if len(b) >= 2]
    perm = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in perm]


def caption_vocabulary(tower: SmallTextTower, data: SplitTensors) -> torch.Tensor:
    """The token ids the captions use, special tokens excepted: MLM's candidates."""
    device = data.input_ids.device
    real = data.input_ids[
        torch.arange(data.input_ids.shape[1], device=device)[None, :] < data.lengths[:, None]
    ]
    special = torch.tensor(tower.tokenizer.all_special_ids, device=device)
    corpus = torch.unique(real)
    corpus = corpus[~torch.isin(corpus, special)]
    if len(corpus) == 0:
        raise DatasetError("the training captions have no words to learn from")
    return corpus


def pretrain_text_tower(
    tower: SmallTextTower,
    data: SplitTensors,
    cfg: SSLConfig,
    generator: torch.Generator,
    log: Path | None = None,
    show_progress: bool = True,
    files: StageFiles | None = None,
) -> list[dict[str, Any]]:
    """Stage 2, in place: masked-language modelling on the split's (tokenised) captions.
    Returns the epoch records (`files`: checkpoint and resume, as in stage 1)."""
    files = files or StageFiles(log=log, show_progress=show_progress)
    device = data.input_ids.device
    corpus = caption_vocabulary(tower, data)
    head = MLMHead(tower, corpus).to(device)
    params = list(tower.parameters()) + [
        p for n, p in head.named_parameters() if not n.startswith("tower.")
    ]
    optim = stage_optimizer([(params, cfg.mlm_lr)], cfg.weight_decay)
    steps = len(length_bucketed_batches(data.lengths, cfg.mlm_batch_size, torch.Generator()))
    sched = warmup_cosine(optim, steps * cfg.mlm_epochs, 1, cfg.warmup_fraction)
    autocast = runtime.autocast(device, cfg.precision)[0]
    mask_id = int(tower.tokenizer.mask_token_id)

    def train_epoch(epoch: int) -> dict[str, Any]:
        tower.train()
        head.train()
        losses, hits, counts = [], 0, 0
        batches = length_bucketed_batches(data.lengths, cfg.mlm_batch_size, generator)
        for batch in steps_bar(batches, epoch, files.show_progress):
            tokens = data.tokens(batch.to(device))
            inputs, picked = mask_tokens(
                tokens["input_ids"],
                data.lengths[batch.to(device)],
                generator,
                cfg.mask_prob,
                mask_id,
                corpus,
            )
            with autocast():
                loss, logits, targets = mlm_loss(
                    tower, head, tokens["input_ids"], tokens["attention_mask"], inputs, picked
                )
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.detach()))
            hits += int((logits.argmax(-1) == targets).sum())
            counts += len(targets)
        return {
            "loss": float(np.mean(losses)),
            "masked_accuracy": hits / max(1, counts),
            "candidates": len(corpus),
        }

    parts = StageParts("mlm", "2/3 mlm", cfg.mlm_epochs, train_epoch, head, optim, sched, generator)
    _, records = run_stage(parts, files)
    tower.eval()
    return records
