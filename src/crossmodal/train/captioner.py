"""Train the captioner on cached image features (minutes on a CPU).

The image tower's pooled features of the Flickr8k train/val images come from the project's
feature cache (computed on first use); the decoder is trained with label-smoothed cross
entropy on every train caption, and the epoch with the best val BLEU-4 (greedy captions) is
kept. The vocabulary comes from the train captions only; test is never read here.
"""

from __future__ import annotations

import copy
import math
import random
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crossmodal.data.datasets import ImageTextDataset
from crossmodal.data.loaders import load_dataset
from crossmodal.errors import DatasetError
from crossmodal.eval.caption_metrics import caption_scores
from crossmodal.models.captioner import (
    PAD,
    CaptionDecoder,
    Captioner,
    CaptionerConfig,
    Vocabulary,
    greedy_decode,
)


@dataclass
class CaptionerRecipe:
    data: str = "../shared/data/flickr8k"
    out: str = "runs/captioner"
    image_model: str = "default"
    seed: int = 0
    threads: int = 2
    min_count: int = 5
    max_len: int = 24
    d_model: int = 256
    layers: int = 3
    heads: int = 8
    ff_mult: int = 4
    memory_slots: int = 4
    dropout: float = 0.3
    label_smoothing: float = 0.1
    lr: float = 5e-4
    weight_decay: float = 0.05
    batch_size: int = 64
    epochs: int = 20
    warmup_steps: int = 300
    patience: int = 4
    beam: int = 3
    length_penalty: float = 0.6

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> CaptionerRecipe:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DatasetError(f"cannot read the recipe {path}: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - {"recipe"})
        if unknown:
            raise DatasetError(f"{path}: unknown captioner settings: {', '.join(unknown)}")
        values = {k: v for k, v in raw.items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class SplitFeatures:
    names: list[str]
    features: torch.Tensor  # (n_images, 1280)
    captions: list[list[str]]  # references per image


def split_features(
    data: str | Path, split: str, image_model: str = "default", cache_dir: Path | None = None
) -> SplitFeatures:
    """The image tower's features of a Flickr8k split (from the cache when there) and the
    references of each image."""
    from crossmodal.models.features import embed_image_files
    from crossmodal.models.registry import load_model

    dataset = load_dataset("flickr8k", data, split)
    result = embed_image_files(
        load_model(image_model),
        dataset.image_paths,
        cache_dir,
        show_progress=True,
        features_only=True,
    )
    if result.failures:
        path, reason = result.failures[0]
        raise DatasetError(f"{len(result.failures)} {split} images failed ({path}: {reason})")
    if not isinstance(dataset, ImageTextDataset):
        raise DatasetError(f"{dataset.name} {split} has no captions to learn from")
    refs = [[dataset.captions[c] for c in idx] for idx in dataset.image_captions]
    return SplitFeatures(
        names=[p.name for p in dataset.image_paths],
        features=torch.from_numpy(result.vectors),
        captions=refs,
    )


def _token_batches(
    targets: list[list[int]], batch_size: int, rng: random.Random
) -> list[list[int]]:
    order = list(range(len(targets)))
    rng.shuffle(order)
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def val_scores(decoder: CaptionDecoder, vocab: Vocabulary, val: SplitFeatures) -> dict[str, float]:
    """Greedy captions of the val images scored against their references (the selection
    signal: cheaper than beam search, and it ranks epochs the same way)."""
    decoder.eval()
    hyps: dict[str, str] = {}
    for start in range(0, len(val.names), 250):
        ids = greedy_decode(decoder, val.features[start : start + 250])
        for name, row in zip(val.names[start : start + 250], ids, strict=True):
            hyps[name] = vocab.decode(row)
    return caption_scores(dict(zip(val.names, val.captions, strict=True)), hyps)


def _lr_at(step: int, total: int, recipe: CaptionerRecipe) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total - recipe.warmup_steps)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _train_step(
    decoder: CaptionDecoder,
    optimiser: torch.optim.Optimizer,
    loss_fn: nn.Module,
    features: torch.Tensor,
    tokens: torch.Tensor,
) -> float:
    """One step of teacher forcing: predict tokens[1:] from tokens[:-1]."""
    logits = decoder(features, tokens[:, :-1])
    loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
    optimiser.step()
    return float(loss.detach())


def fit(
    recipe: CaptionerRecipe,
    train: SplitFeatures,
    val: SplitFeatures,
    log: Any = print,
    on_best: Any = None,
) -> tuple[Captioner, dict[str, Any]]:
    """Train, select on val BLEU-4, and return the best captioner with its history.
    `on_best(captioner, epoch)` sees each new best (the run saves it, so a stopped run keeps
    its best epoch)."""
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    vocab = Vocabulary.build([c for caps in train.captions for c in caps], recipe.min_count)
    config = CaptionerConfig(
        vocab_size=len(vocab),
        feature_dim=int(train.features.shape[1]),
        memory_slots=recipe.memory_slots,
        d_model=recipe.d_model,
        layers=recipe.layers,
        heads=recipe.heads,
        ff_mult=recipe.ff_mult,
        dropout=recipe.dropout,
        max_len=recipe.max_len,
    )
    decoder = CaptionDecoder(config)
    targets = [vocab.encode(c, recipe.max_len) for caps in train.captions for c in caps]
    owner = [i for i, caps in enumerate(train.captions) for _ in caps]
    optimiser = torch.optim.AdamW(
        decoder.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=recipe.label_smoothing)
    total = math.ceil(len(targets) / recipe.batch_size) * recipe.epochs
    step = 0
    best: dict[str, Any] = {"bleu4": -1.0}
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        decoder.train()
        losses = []
        for batch in _token_batches(targets, recipe.batch_size, rng):
            tokens = _pad([targets[i] for i in batch])
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, total, recipe)
            feats = train.features[[owner[i] for i in batch]]
            losses.append(_train_step(decoder, optimiser, loss_fn, feats, tokens))
            step += 1
        scores = val_scores(decoder, vocab, val)
        row = {"epoch": epoch, "loss": float(np.mean(losses))}
        row["seconds"] = time.perf_counter() - started
        row.update({k: round(v, 4) for k, v in scores.items()})
        history.append(row)
        log(
            f"epoch {epoch}: loss {row['loss']:.3f}, val BLEU-4 {scores['BLEU-4']:.4f}, "
            f"CIDEr {scores['CIDEr']:.4f} ({row['seconds']:.0f} s)"
        )
        if scores["BLEU-4"] > best["bleu4"]:
            best = {
                "bleu4": scores["BLEU-4"],
                "epoch": epoch,
                "state": copy.deepcopy(decoder.state_dict()),
            }
            if on_best is not None:
                on_best(Captioner(decoder, vocab, {"length_penalty": recipe.length_penalty}), epoch)
        elif epoch - best["epoch"] >= recipe.patience:
            log(f"no val gain for {recipe.patience} epochs: stopping")
            break
    decoder.load_state_dict(best["state"])
    info = {
        "best_epoch": best["epoch"],
        "val_greedy": {
            k: v for k, v in history[best["epoch"] - 1].items() if k.startswith(("BLEU", "CIDEr"))
        },
        "train_seconds": round(time.perf_counter() - started, 1),
        "history": history,
    }
    return Captioner(decoder, vocab, {"length_penalty": recipe.length_penalty}), info


def train_captioner(
    recipe: CaptionerRecipe, cache_dir: Path | None = None, log: Any = print
) -> dict[str, Any]:
    """The whole recipe: features, training, val scores with beam search, weights saved to
    `recipe.out`. Returns the summary that is also stored in the saved config."""
    from crossmodal.runtime import cpu_name

    torch.set_num_threads(max(1, recipe.threads))
    train = split_features(recipe.data, "train", recipe.image_model, cache_dir)
    val = split_features(recipe.data, "val", recipe.image_model, cache_dir)
    log(f"features: {len(train.names)} train, {len(val.names)} val images")

    def save_best(captioner: Captioner, epoch: int) -> None:
        captioner.save(recipe.out, {"image_model": recipe.image_model, "partial_epoch": epoch})

    captioner, info = fit(recipe, train, val, log, on_best=save_best)
    val_beam = score_split(captioner, val, recipe.beam)
    log(f"val with beam {recipe.beam}: " + ", ".join(f"{k} {v:.4f}" for k, v in val_beam.items()))
    from crossmodal.models.registry import load_model

    summary = {
        **info,
        "val_beam": {k: round(v, 4) for k, v in val_beam.items()},
        "beam": recipe.beam,
        "length_penalty": recipe.length_penalty,
        "image_model": recipe.image_model,
        "image_tower": load_model(recipe.image_model).image_tower_fingerprint(),  # type: ignore[attr-defined]
        "trained_on": f"flickr8k train ({len(train.names)} images, "
        f"{sum(len(c) for c in train.captions)} captions)",
        "selected_on": f"val BLEU-4 (greedy) at epoch {info['best_epoch']}",
        "seed": recipe.seed,
        "threads": recipe.threads,
        "cpu": cpu_name(),
        "recipe": {f.name: getattr(recipe, f.name) for f in fields(recipe)},
    }
    captioner.info.update(summary)
    captioner.save(recipe.out)
    log(f"saved to {recipe.out}")
    return summary


def score_split(captioner: Captioner, split: SplitFeatures, beam: int) -> dict[str, float]:
    hyps = captioner.caption_features(split.features, beam=beam)
    return caption_scores(
        dict(zip(split.names, split.captions, strict=True)),
        dict(zip(split.names, hyps, strict=True)),
    )
