"""A Chinese (and any-language) path into an existing model's space, from English captions only.

The multilingual USE tower maps a Chinese sentence and its English translation close together.
A linear head is fitted so that USE(caption) lands where the model's own English text path puts
the same caption (cosine distillation). Chinese queries then route through USE + this head and
land in the shared space with no Chinese training data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset, load_dataset
from crossmodal.defaults import DEFAULT_FLICKR8K_ROOT
from crossmodal.errors import ConfigError, DatasetError
from crossmodal.models.dual import DualEncoder, ProjectionHead
from crossmodal.models.features import default_cache_dir, embed_texts
from crossmodal.models.registry import resolve_model_dir
from crossmodal.models.towers import build_text_tower
from crossmodal.train.heads import seed_everything

USE_SPEC: dict[str, Any] = {"type": "use", "feature_dim": 512}


def _targets_and_inputs(
    model: DualEncoder, ds: ImageTextDataset, cache: Path, show_progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    captions = list(dict.fromkeys(ds.captions))
    target = embed_texts(
        model, captions, cache_dir=cache, multilingual=False, show_progress=show_progress
    )
    inputs = embed_texts(
        model,
        captions,
        cache_dir=cache,
        multilingual=True,
        features_only=True,
        show_progress=show_progress,
    )
    return torch.from_numpy(inputs), torch.from_numpy(target)


def add_multilingual_head(
    model_path: str | Path,
    out: str | Path,
    dataset: str = "flickr8k",
    root: str | Path = DEFAULT_FLICKR8K_ROOT,
    epochs: int = 60,
    lr: float = 3e-3,
    batch_size: int = 512,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    input_noise: float = 0.0,
    hidden: int = 0,
) -> Path:
    """Load a saved dual encoder, fit a USE->space head on train captions (early-stopped on the
    val captions' cosine), and save the extended model to `out`.

    `input_noise` adds Gaussian noise of that expected norm to the (unit-length) USE inputs
    while training. A Chinese sentence and its English source sit about 0.7 apart in USE
    (cosine ~0.75), so a head fitted on clean English inputs meets Chinese ones as shifted
    inputs; training on shifted inputs makes the head rely on directions that survive it."""
    if batch_size < 1 or epochs < 1:
        raise ConfigError("batch_size and epochs must be at least 1")
    if input_noise < 0 or hidden < 0:
        raise ConfigError("input_noise and hidden must not be negative")
    start = time.perf_counter()
    source = resolve_model_dir(Path(model_path))
    model = DualEncoder.load(source)
    if model.multilingual_head is not None:
        raise ConfigError(f"{source} already has a multilingual head")
    model.config["multilingual_tower"] = dict(USE_SPEC)
    model.config["multilingual_head"] = {"hidden": hidden}
    model.multilingual_tower = build_text_tower(USE_SPEC)
    model.multilingual_head = ProjectionHead(512, model.dim, hidden=hidden)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    splits = {}
    for split in ("train", "val"):
        ds = load_dataset(dataset, root, split=split)
        if not isinstance(ds, ImageTextDataset) or not ds.captions:
            raise DatasetError(f"{dataset} {split} has no captions")
        splits[split] = _targets_and_inputs(model, ds, cache, show_progress)
    best_cos, best_epoch = _fit_head(
        model.multilingual_head,
        splits["train"],
        splits["val"],
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        input_noise=input_noise,
        show_progress=show_progress,
    )
    model.eval()
    info = {
        "multilingual_head": f"USE -> space, cosine distillation on {dataset} train "
        f"captions (input noise {input_noise:g}, hidden {hidden}); "
        f"val cosine {best_cos:.4f} at epoch {best_epoch}"
    }
    saved = model.save(out, extra_info=info)
    (Path(out) / "multilingual_summary.json").write_text(
        json.dumps(
            {
                "val_cosine": best_cos,
                "epoch": best_epoch,
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
        + "\n"
    )
    return saved


def _fit_head(
    head: ProjectionHead,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    input_noise: float,
    show_progress: bool,
) -> tuple[float, int]:
    """Fit the head by cosine distillation (inputs, targets), stop when the val cosine has not
    improved for 5 epochs, keep the best epoch's weights; return (val cosine, epoch)."""
    (x_train, y_train), (x_val, y_val) = train, val
    generator = seed_everything(seed)
    optim = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    best = (-1.0, 0, {k: v.clone() for k, v in head.state_dict().items()})
    stale = 0
    bar = tqdm(range(epochs), desc="multilingual head", unit="epoch", disable=not show_progress)
    for epoch in bar:
        head.train()
        for idx in torch.randperm(len(x_train), generator=generator).split(batch_size):
            x = x_train[idx]
            if input_noise > 0:
                noise = torch.randn(x.shape, generator=generator)
                x = x + noise * (input_noise / x.shape[1] ** 0.5)
            pred = F.normalize(head(x), dim=-1)
            loss = (1 - (pred * y_train[idx]).sum(-1)).mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
        head.eval()
        with torch.inference_mode():
            val_cos = float((F.normalize(head(x_val), dim=-1) * y_val).sum(-1).mean())
        bar.set_postfix(val_cos=f"{val_cos:.4f}")
        if val_cos > best[0] + 1e-5:
            best = (val_cos, epoch + 1, {k: v.clone() for k, v in head.state_dict().items()})
            stale = 0
        else:
            stale += 1
            if stale >= 5:
                break
    head.load_state_dict(best[2])
    return best[0], best[1]


def val_cosine(model: DualEncoder, texts: list[str]) -> float:
    """Mean cosine between the English and the multilingual path for the same texts."""
    english = embed_texts(model, texts, multilingual=False, show_progress=False)
    other = embed_texts(model, texts, multilingual=True, show_progress=False)
    return float(np.mean(np.sum(english * other, axis=1)))
