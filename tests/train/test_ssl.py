"""The from-scratch recipe: towers, augmentations, each stage's objective, a tiny full run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossmodal.errors import ConfigError, ModelNotAvailable
from crossmodal.models import load_model
from crossmodal.models.dual import DualEncoder
from crossmodal.models.small import SmallCNNTower, SmallTextTower
from crossmodal.models.towers import build_image_tower, build_text_tower
from crossmodal.train.ssl import (
    MLMHead,
    SimSiam,
    SplitTensors,
    SSLConfig,
    color_jitter,
    epoch_captions,
    mask_tokens,
    mlm_loss,
    model_config,
    pretrain_image_tower,
    pretrain_text_tower,
    random_resized_crop,
    simsiam_loss,
    simsiam_view,
    train_ssl,
)
from tests.train.test_heads import write_colour_dataset


def tiny_config(root: Path, out: Path, **overrides: object) -> SSLConfig:
    base: dict[str, object] = dict(
        dataset="captions-json",
        root=str(root),
        out=str(out),
        device="cpu",
        image_size=32,
        cnn_widths=[8, 16],
        text_width=32,
        text_layers=6,
        text_heads=2,
        text_max_length=16,
        embed_dim=16,
        simsiam_dim=32,
        simsiam_pred_dim=8,
        simsiam_epochs=1,
        mlm_epochs=1,
        align_epochs=1,
        simsiam_batch_size=4,
        mlm_batch_size=4,
        align_batch_size=4,
    )
    base.update(overrides)
    return SSLConfig(**base)  # type: ignore[arg-type]


def test_towers_build_from_specs_and_have_the_tower_interface():
    cnn = build_image_tower({"type": "small-cnn", "image_size": 40, "widths": [8, 16]})
    assert isinstance(cnn, SmallCNNTower) and cnn.feature_dim == 16 and len(cnn.blocks) == 2
    pixels = cnn.preprocess(Image.new("RGB", (90, 60), (255, 0, 0)))
    assert pixels.shape == (3, 40, 40) and float(pixels.max()) <= 1.0
    assert cnn.eval()(pixels[None]).shape == (1, 16)
    assert cnn.spec()["type"] == "small-cnn" and "small-cnn" in cnn.fingerprint()
    text = build_text_tower({"type": "small-transformer", "width": 32, "heads": 2})
    assert isinstance(text, SmallTextTower) and len(text.blocks) == 6
    tokens = text.tokenize(["a dog runs", "two children play on the beach together"])
    with torch.inference_mode():
        feats = text.eval()(tokens)
        # padding must not change a caption's features: alone it has no padding at all
        alone = text(text.tokenize(["a dog runs"]))
    assert feats.shape == (2, 32)
    torch.testing.assert_close(feats[:1], alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(ModelNotAvailable, match="multiple of heads"):
        build_text_tower({"type": "small-transformer", "width": 30, "heads": 4})


def test_augmentations_keep_shape_range_and_differ_per_sample():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 24, 24)
    crops = random_resized_crop(x, gen, scale=(0.2, 1.0))
    assert crops.shape == x.shape
    jittered = color_jitter(x, gen, prob=1.0, gray_prob=0.0)
    assert jittered.shape == x.shape and jittered.min() >= 0 and jittered.max() <= 1
    assert not torch.allclose(jittered[0] - x[0], jittered[1] - x[1])
    gray = color_jitter(x, gen, prob=0.0, gray_prob=1.0)
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    # the identity crop (whole image, no flip) gives the image back
    same = random_resized_crop(x, gen, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=1e-5)


def test_mask_tokens_follows_bert_and_spares_special_tokens():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 20))
    ids[:, 0], ids[:, -1] = 101, 102
    lengths = torch.full((64,), 20)
    inputs, picked = mask_tokens(ids, lengths, gen, 0.15, 103, torch.arange(5000, 5010))
    assert not picked[:, 0].any() and not picked[:, -1].any()
    share = picked.float().mean().item() * 20 / 18
    assert 0.1 < share < 0.2
    masked = (inputs == 103) & picked
    assert 0.7 < masked.sum().item() / picked.sum().item() < 0.9
    assert torch.equal(inputs[~picked], ids[~picked])


def test_epoch_captions_draws_the_asked_number_per_image():
    caption_image = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    chosen = epoch_captions(caption_image, 2, torch.Generator().manual_seed(3))
    counts = torch.bincount(caption_image[chosen])
    assert counts.tolist() == [2, 2, 2]
    assert len(epoch_captions(caption_image, 0, torch.Generator())) == 9


def test_simsiam_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    x1, x2 = simsiam_view(pixels, gen, SSLConfig()), simsiam_view(pixels, gen, SSLConfig())
    assert x1.shape == (8, 3, 32, 32) and not torch.equal(x1, x2)
    net = SimSiam(SmallCNNTower(32, [8, 16]), 32, 8).train()
    optim = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        p1, p2, z1, z2 = net(x1, x2)
        assert not z1.requires_grad  # the stop-gradient
        loss = simsiam_loss(p1, p2, z1, z2)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.15
    # a negative cosine: aligned predictions score -1, its minimum
    z = torch.randn(4, 8)
    assert float(simsiam_loss(z, z, z, z)) == pytest.approx(-1.0)


def test_mlm_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    tower = SmallTextTower(width=32, heads=2, max_length=16, dropout=0.0).train()
    tokens = tower.tokenize(
        ["a dog runs on the grass", "a child jumps into the pool", "two men ride bikes"]
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    special = torch.tensor(tower.tokenizer.all_special_ids)
    corpus = torch.unique(ids[~torch.isin(ids, special)])
    head = MLMHead(tower, corpus)
    mask_id = int(tower.tokenizer.mask_token_id)
    inputs, picked = mask_tokens(ids, mask.sum(1), gen, 0.3, mask_id, corpus)
    assert picked.any()
    params = list(tower.parameters()) + [
        p for n, p in head.named_parameters() if not n.startswith("tower.")
    ]
    optim = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(10):
        loss, logits, targets = mlm_loss(tower, head, ids, mask, inputs, picked)
        assert logits.shape == (int(picked.sum()), len(corpus)) and len(targets) == len(logits)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.4


def test_pretraining_stages_log_one_record_per_epoch():
    torch.manual_seed(0)
    cfg = SSLConfig(
        simsiam_epochs=2,
        simsiam_batch_size=8,
        simsiam_dim=32,
        simsiam_pred_dim=8,
        mlm_epochs=2,
        mlm_batch_size=6,
    )
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    records = pretrain_image_tower(SmallCNNTower(32, [8, 16]), pixels, cfg, gen, None, False)
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(-1.0 <= r["loss"] <= 1.0 and r["z_std"] > 0 for r in records)
    tower = SmallTextTower(width=32, heads=2, max_length=16)
    tokens = tower.tokenize(["a dog runs on the grass", "two men ride bikes"] * 6)
    data = SplitTensors(
        pixels=torch.zeros(0, 3, 8, 8, dtype=torch.uint8),
        input_ids=tokens["input_ids"],
        lengths=tokens["attention_mask"].sum(1),
        caption_image=torch.arange(12),
    )
    records = pretrain_text_tower(tower, data, cfg, gen, None, False)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["candidates"] < 15  # the softmax covers the captions' words only


def test_train_ssl_end_to_end_saves_a_loadable_dual_encoder(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    result = train_ssl(tiny_config(root, tmp_path / "run"), show_progress=False)
    best = result.best_dir
    assert best == tmp_path / "run" / "best" and result.run_dir == tmp_path / "run"
    for stage in ("simsiam", "mlm", "align"):
        lines = (tmp_path / "run" / stage / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 1 and "loss" in json.loads(lines[0])
    config = json.loads((best / "config.json").read_text())
    assert config["saved_towers"] == ["image", "text"]
    assert config["image_tower"]["type"] == "small-cnn"
    assert config["text_tower"]["type"] == "small-transformer"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= summary["best_val_mean_recall"] <= 100
    assert (result.score, result.best_epoch) == (
        summary["best_val_mean_recall"],
        summary["best_epoch"],
    )

    model = load_model(str(best), cache=False)
    assert isinstance(model, DualEncoder)
    images = [Image.new("RGB", (50, 40), (200, 30, 30)), Image.new("RGB", (40, 40), (0, 0, 200))]
    img = model.encode_images(images)
    txt = model.encode_texts(["a red square", "something blue", "nothing"])
    assert img.shape == (2, 16) and txt.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    # the saved towers are the trained ones, not a fresh random init
    again = DualEncoder(model_config(tiny_config(root, tmp_path / "x")))
    assert not np.allclose(again.eval().encode_texts(["a red square"]), txt[:1])


def test_stages_can_be_skipped(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    cfg = tiny_config(root, tmp_path / "run", simsiam_epochs=0, mlm_epochs=0)
    train_ssl(cfg, show_progress=False)
    assert (tmp_path / "run" / "simsiam" / "metrics.jsonl").read_text() == ""
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"align_epochs": 0}, "align_epochs must be at least 1"),
        ({"text_width": 30, "text_heads": 4}, "multiple of text_heads"),
        ({"mask_prob": 1.5}, "mask_prob"),
        ({"device": "tpu"}, "device must be"),
        ({"simsiam_lr": -1.0}, "simsiam_lr"),
        ({"cnn_depths": [1]}, "cnn_depths"),
        ({"precision": "fp8"}, "precision"),
        ({"threads": 0}, "threads must be"),
    ],
)
def test_bad_settings_are_refused_before_training(
    tmp_path: Path, overrides: dict[str, object], message: str
):
    cfg = tiny_config(tmp_path / "missing", tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=message):
        train_ssl(cfg, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_dataset_is_refused(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="larger than"):
        train_ssl(tiny_config(root, tmp_path / "r", align_batch_size=64), show_progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kill_after", [1, 3])  # inside stage 1; inside stage 3 (align)
def test_a_killed_run_resumes_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_after: int
):
    """Killed right after a checkpoint (stage 1 epoch 1 of 2, or align epoch 1 of 2), refused
    without --resume, resumed: the same logs and the same weights as a run never killed."""
    from safetensors.torch import load_file

    from crossmodal.train import loop

    root = write_colour_dataset(tmp_path / "data")
    epochs = dict(simsiam_epochs=2, align_epochs=2, mlm_epochs=1)
    whole = train_ssl(tiny_config(root, tmp_path / "whole", **epochs), show_progress=False)
    cfg = tiny_config(root, tmp_path / "killed", **epochs)
    real_save, calls = loop.save_checkpoint, {"n": 0}

    def save_then_die(path: Path, payload: dict) -> None:
        real_save(path, payload)
        calls["n"] += 1
        if calls["n"] == kill_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_ssl(cfg, show_progress=False)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    with pytest.raises(ConfigError, match="--resume"):
        train_ssl(cfg, show_progress=False)
    with pytest.raises(ConfigError, match="different settings"):
        train_ssl(tiny_config(root, tmp_path / "killed", seed=1), resume=True)
    resumed = train_ssl(cfg, show_progress=False, resume=True)
    for stage in ("simsiam", "mlm", "align"):
        a = [json.loads(x) for x in (tmp_path / "whole" / stage / "metrics.jsonl").open()]
        b = [json.loads(x) for x in (tmp_path / "killed" / stage / "metrics.jsonl").open()]
        for row in a + b:
            row.pop("seconds")
        assert a == b, stage
    assert (resumed.score, resumed.best_epoch) == (whole.score, whole.best_epoch)
    weights_a = load_file(str(whole.best_dir / "model.safetensors"))
    weights_b = load_file(str(resumed.best_dir / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        torch.testing.assert_close(weights_a[key], weights_b[key], rtol=0, atol=0)


def test_cli_train_ssl_prints_the_result_refuses_a_rerun_and_resumes(tmp_path: Path):
    from typer.testing import CliRunner

    from crossmodal.cli import app

    root = write_colour_dataset(tmp_path / "data")
    cfg = tiny_config(root, tmp_path / "run")
    lines = [
        f"{name} = {json.dumps(getattr(cfg, name))}"
        for name in (
            "dataset", "root", "out", "device", "image_size", "cnn_widths", "text_width",
            "text_heads", "text_max_length", "embed_dim", "simsiam_dim", "simsiam_pred_dim",
            "simsiam_epochs", "mlm_epochs", "align_epochs", "simsiam_batch_size",
            "mlm_batch_size", "align_batch_size",
        )
    ]  # fmt: skip
    path = tmp_path / "ssl.toml"
    path.write_text("\n".join(lines) + "\n")
    first = CliRunner().invoke(app, ["train-ssl", "--config", str(path), "--quiet"])
    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert f"val mean recall {summary['best_val_mean_recall']:.2f}" in first.output
    assert f"epoch {summary['best_epoch']})" in first.output
    again = CliRunner().invoke(app, ["train-ssl", "--config", str(path), "--quiet"])
    assert again.exit_code == 2 and "--resume" in again.output
    # a finished run resumed trains nothing more and gives the same result
    resumed = CliRunner().invoke(app, ["train-ssl", "--config", str(path), "--quiet", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.splitlines()[-1] == first.output.splitlines()[-1]
