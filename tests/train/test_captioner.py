"""Captioner training on synthetic features: recipe parsing, selection on val, reproducibility."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crossmodal.errors import DatasetError
from crossmodal.train.captioner import CaptionerRecipe, SplitFeatures, fit

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_recipe_parses_and_overrides_apply() -> None:
    recipe = CaptionerRecipe.from_toml(REPO / "recipes" / "captioner.toml", epochs=1, out=None)
    assert recipe.epochs == 1
    assert recipe.out == "runs/captioner"
    assert recipe.beam >= 3


def test_unknown_recipe_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("d_modle = 64\n")
    with pytest.raises(DatasetError, match="d_modle"):
        CaptionerRecipe.from_toml(path)


def synthetic(n: int, seed: int) -> SplitFeatures:
    """Two kinds of image (feature sign) with two kinds of caption."""
    base = torch.randn(1, 1280, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(seed)
    names, feats, caps = [], [], []
    for i in range(n):
        kind = i % 2
        feats.append((1 if kind else -1) * base[0] + 0.1 * torch.randn(1280, generator=gen))
        caps.append(["a dog runs on grass"] * 2 if kind else ["a man rides a bike"] * 2)
        names.append(f"{i}.jpg")
    return SplitFeatures(names=names, features=torch.stack(feats), captions=caps)


def small_recipe(**kw: object) -> CaptionerRecipe:
    values: dict = dict(
        min_count=1, d_model=32, layers=1, heads=2, ff_mult=2, dropout=0.0, lr=3e-3,
        batch_size=8, epochs=20, warmup_steps=2, patience=30, max_len=10,
    )  # fmt: skip
    values.update(kw)
    return CaptionerRecipe(**values)


def test_fit_learns_selects_on_val_and_repeats_with_the_seed() -> None:
    torch.set_num_threads(1)
    train, val = synthetic(16, 0), synthetic(6, 1)
    captioner, info = fit(small_recipe(), train, val, log=lambda _: None)
    assert len(info["history"]) == 20
    best_bleu = max(row["BLEU-4"] for row in info["history"])
    # history rounds to 4 places; the kept epoch is the first that reached the best score
    assert info["history"][info["best_epoch"] - 1]["BLEU-4"] == best_bleu
    assert info["val_greedy"]["BLEU-4"] == best_bleu > 0.5
    _, again = fit(small_recipe(), train, val, log=lambda _: None)
    assert [r["loss"] for r in again["history"]] == [r["loss"] for r in info["history"]]
    assert captioner.caption_features(val.features[:2], beam=1) == [
        "a man rides a bike", "a dog runs on grass",
    ]  # fmt: skip
