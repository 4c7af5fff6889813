"""Head training: the sampler, the loss, and a tiny end-to-end run that is deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossmodal.errors import ConfigError
from crossmodal.models import load_model
from crossmodal.train.heads import HeadConfig, train_heads
from crossmodal.train.loss import ClipLoss, unique_image_batches
from tests.conftest import make_image

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 40, 160),
    "orange": (240, 140, 20),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "pink": (250, 160, 200),
    "brown": (120, 70, 20),
    "teal": (20, 140, 140),
}


def test_unique_image_batches_cover_every_caption_once_without_repeats():
    caption_image = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4])
    gen = torch.Generator().manual_seed(1)
    batches = unique_image_batches(caption_image, batch_size=3, generator=gen)
    seen = torch.cat(batches).sort().values
    assert seen.tolist() == list(range(len(caption_image)))
    for b in batches:
        images = caption_image[b]
        assert len(set(images.tolist())) == len(images)


def test_clip_loss_prefers_aligned_pairs_and_masks_same_image():
    emb = torch.nn.functional.normalize(torch.eye(4), dim=-1)
    scale = torch.tensor(np.log(10.0))
    loss = ClipLoss()
    aligned = loss(emb, emb, scale)
    shuffled = loss(emb, emb[[1, 0, 3, 2]], scale)
    assert aligned < shuffled
    # rows 0 and 1 share an image: their mutual similarity must not count as a negative
    text = emb.clone()
    text[1] = emb[0]
    masked = loss(emb, text, scale, group=torch.tensor([0, 0, 1, 2]))
    unmasked = loss(emb, text, scale)
    assert masked < unmasked


def write_colour_dataset(root: Path) -> Path:
    records = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        rel = f"images/{i:02d}_{name}.png"
        make_image(root / rel, rgb)
        records.append({"image": rel, "captions": [f"a {name} square", f"something {name}"]})
    (root / "captions.json").write_text(json.dumps(records))
    names = [r["image"] for r in records]
    (root / "train.txt").write_text("\n".join(names[:8]) + "\n")
    (root / "val.txt").write_text("\n".join(names[8:]) + "\n")
    return root


def tiny_config(root: Path, out: Path, **overrides: object) -> HeadConfig:
    base = dict(
        dataset="captions-json",
        root=str(root),
        out=str(out),
        embed_dim=16,
        image_hidden=32,
        text_hidden=0,
        epochs=3,
        batch_size=4,
        lr=1e-2,
        patience=5,
        cache_dir=str(out.parent / "cache"),
    )
    base.update(overrides)
    return HeadConfig(**base)  # type: ignore[arg-type]


def test_train_heads_end_to_end_is_deterministic(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    result = train_heads(tiny_config(root, tmp_path / "a"), show_progress=False)
    best_a = result.best_dir
    best_b = train_heads(tiny_config(root, tmp_path / "b"), show_progress=False).best_dir
    log = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 3 and {"loss", "val_mean_recall", "val"} <= set(log[0])
    model_a = load_model(str(best_a), cache=False)
    model_b = load_model(str(best_b), cache=False)
    texts = ["a red square", "a teal thing"]
    np.testing.assert_array_equal(model_a.encode_texts(texts), model_b.encode_texts(texts))
    info = json.loads((best_a / "config.json").read_text())["info"]
    assert "selected_on" in info and info["seed"] == 0
    # the result says what summary.json says (the CLI prints from the result)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    best_log = max(log, key=lambda r: r["val_mean_recall"])
    assert (result.score, result.best_epoch) == (summary["score"], summary["epoch"])
    assert result.best_epoch == best_log["epoch"] and result.val == best_log["val"]


def test_training_reduces_loss(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    train_heads(tiny_config(root, tmp_path / "r", epochs=8, patience=99), show_progress=False)
    losses = [
        json.loads(x)["loss"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < losses[0]


def test_batch_larger_than_dataset_is_refused(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="larger than"):
        train_heads(tiny_config(root, tmp_path / "x", batch_size=64), show_progress=False)


def test_bad_settings_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError):
        HeadConfig(batch_size=1).validate()
    with pytest.raises(ConfigError):
        HeadConfig(dropout=1.5).validate()


def test_multilingual_head_maps_chinese_near_english(tmp_path: Path):
    from crossmodal.train.multilingual import add_multilingual_head

    root = write_colour_dataset(tmp_path / "data")
    best = train_heads(tiny_config(root, tmp_path / "a"), show_progress=False).best_dir
    out = add_multilingual_head(
        best,
        tmp_path / "ml",
        dataset="captions-json",
        root=root,
        epochs=40,
        lr=1e-2,
        batch_size=8,
        cache_dir=tmp_path / "cache",
        show_progress=False,
    )
    model = load_model(str(out), cache=False)
    en = model.encode_texts(["a red square", "a blue square"])
    zh = model.encode_texts(["一个红色的方块", "一个蓝色的方块"])  # routed to the USE tower
    assert float(zh[0] @ en[0]) > float(zh[0] @ en[1])
    assert float(zh[1] @ en[1]) > float(zh[1] @ en[0])
    with pytest.raises(ConfigError, match="already has"):
        add_multilingual_head(
            out,
            tmp_path / "again",
            dataset="captions-json",
            root=root,
            cache_dir=tmp_path / "cache",
            show_progress=False,
        )
