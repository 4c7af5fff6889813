"""End-to-end fine-tuning (partial unfreeze, LoRA), configs, resume, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.errors import ConfigError, DatasetError
from crossmodal.models import load_model
from crossmodal.train.config import TrainConfig, make_config, read_config_file, to_toml
from crossmodal.train.finetune_data import hard_negative_batches, keyword_view
from crossmodal.train.runner import run_training
from tests.conftest import make_image
from tests.train.resume import assert_same_run, kill_then_resume


def tiny(root: Path, out: Path, **overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        dataset="captions-json",
        root=str(root),
        out=str(out),
        image_tower="lite0",
        text_tower="minilm",
        image_size=64,
        embed_dim=16,
        epochs=3,
        batch_size=4,
        lr=1e-2,
        patience=5,
        workers=2,
        cache_dir=str(out.parent / "cache"),
    )
    base.update(overrides)
    return make_config(None, **base)


@pytest.mark.parametrize(
    "trainable",
    [
        {"unfreeze_image": 2, "unfreeze_text": 1},
        {"unfreeze_image": 1, "lora_text": 4, "lora_targets": ["query", "value", "dense"]},
    ],
    ids=["partial-unfreeze", "lora"],
)
def test_fine_tune_saves_a_small_model_that_reloads_to_the_same_scores(
    colour_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trainable: dict
):
    cfg = tiny(colour_root, tmp_path / "run", **trainable)
    best = run_training(cfg, show_progress=False).best_dir
    config = json.loads((best / "config.json").read_text())
    assert config["saved_towers"] == ["image", "text"]
    # only what training changed is saved: the top blocks, not the whole tower
    assert all(
        p.startswith(
            (
                "image_tower.net._blocks.",
                "image_tower.net._bn1",
                "image_tower.net._conv_head",
                "text_tower.",
            )
        )
        for p in config["saved_tower_params"]
    )
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["score"] == max(r["val_mean_recall"] for r in log)
    # the reloaded model (pretrained towers + saved tensors + merged LoRA) scores as in training
    model = load_model(str(best), cache=False)
    from crossmodal.data import load_dataset
    from crossmodal.eval.evaluate import embed_split
    from crossmodal.eval.metrics import metrics_from_ranks, retrieval_ranks

    monkeypatch.setenv("CROSSMODAL_FAST", "0")
    split = embed_split(
        model,
        load_dataset("captions-json", colour_root, split="val"),
        cache_dir=None,
        show_progress=False,
    )
    t2i, i2t = retrieval_ranks(split.image_emb, split.text_emb, split.caption_image)
    for direction, ranks in (("t2i", t2i), ("i2t", i2t)):
        assert metrics_from_ranks(ranks)["R@1"] == pytest.approx(summary["val"][direction]["R@1"])
    if "lora_text" in trainable:
        assert config["lora_scale"] > 0
        from safetensors.torch import load_file

        keys = load_file(str(best / "model.safetensors")).keys()
        assert any(k.endswith("dense.lora_A") for k in keys)
        assert not any(".attention.self.query.weight" in k for k in keys)


def test_a_killed_run_resumes_to_the_same_model(
    colour_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    extra = {"unfreeze_image": 1, "lora_text": 2, "hard_negatives": 0.5, "text_views": True}
    whole = run_training(
        tiny(colour_root, tmp_path / "whole", **extra), show_progress=False
    ).best_dir

    cfg = tiny(colour_root, tmp_path / "killed", **extra)
    resumed = kill_then_resume(monkeypatch, cfg, after=2)
    from safetensors.torch import load_file

    assert_same_run(
        tmp_path / "whole",
        tmp_path / "killed",
        load_file(str(whole / "model.safetensors")),
        load_file(str(resumed / "model.safetensors")),
        epochs=3,
    )


def test_heads_only_run_resumes_too(colour_root: Path, tmp_path: Path, monkeypatch):
    from crossmodal.train import heads

    whole = run_training(tiny(colour_root, tmp_path / "w", hidden=8), show_progress=False).best_dir
    real = torch.save
    calls = {"n": 0}

    def save_then_die(obj: object, path: object, *a: object, **k: object) -> None:
        real(obj, path, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while writing epoch 2's checkpoint

    monkeypatch.setattr(heads.torch, "save", save_then_die)
    cfg = tiny(colour_root, tmp_path / "k", hidden=8)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, show_progress=False)
    monkeypatch.setattr(heads.torch, "save", real)
    resumed = run_training(cfg, resume=True, show_progress=False).best_dir
    a = load_model(str(whole), cache=False).encode_texts(["a red square"])
    b = load_model(str(resumed), cache=False).encode_texts(["a red square"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_config_file_flags_override_and_round_trip(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nimage_tower = "lite0"\nepochs = 7\nlr = 1\nunfreeze_image = 2\n')
    cfg = make_config(path, epochs=3)
    assert (cfg.image_tower, cfg.epochs, cfg.lr, cfg.unfreeze_image) == ("lite0", 3, 1.0, 2)
    assert cfg.fine_tune
    again = tmp_path / "again.toml"
    again.write_text(to_toml(cfg))
    assert make_config(again) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus_key = 1\n", "unknown key 'bogus_key'"),
        ('epochs = "ten"\n', "epochs must be an integer"),
        ("batch_size = 1\n", "at least 2"),
        ('text_tower = "use"\nlora_text = 8\n', "needs a text tower with attention"),
        ("lora_text = 4\nunfreeze_text = 1\n", "not both"),
        ('recipe = "heads"\nunfreeze_image = 2\n', "heads only"),
        ("epochs = [\n", "not valid TOML"),
    ],
)
def test_bad_configs_fail_before_training_with_one_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = CliRunner().invoke(
        app, ["train", "--config", str(path), "--out", str(tmp_path / "never")]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "never").exists()


def test_impossible_data_settings_fail_before_training(colour_root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="larger than the 8 training images"):
        run_training(
            tiny(colour_root, tmp_path / "a", batch_size=64, unfreeze_image=1), show_progress=False
        )
    folders = tmp_path / "labels"
    for label, rgb in (("cat", (200, 10, 10)), ("dog", (10, 10, 200))):
        for i in range(4):
            make_image(folders / label / f"{i}.png", rgb)
    with pytest.raises(DatasetError):
        run_training(
            tiny(folders, tmp_path / "b", dataset="folder", unfreeze_image=1), show_progress=False
        )
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


def test_keyword_view_and_hard_negative_batches():
    assert keyword_view("A dog runs on the beach .") == "dog runs beach"
    caption_image = torch.arange(40).repeat_interleave(2)
    emb = torch.nn.functional.normalize(torch.randn(40, 8), dim=-1)
    batches = hard_negative_batches(caption_image, emb, 8, torch.Generator().manual_seed(0))
    seen = torch.cat(batches).sort().values
    assert seen.tolist() == list(range(80))
    for b in batches:
        assert len(set(caption_image[b].tolist())) == len(b)


def test_every_shipped_recipe_is_a_valid_config():
    from crossmodal.train.config import build_config
    from crossmodal.train.ssl import SSLConfig

    recipes = sorted(Path("recipes").glob("*.toml"))
    assert len(recipes) >= 8
    for path in recipes:
        if path.name == "ssl.toml":
            build_config(SSLConfig, path)
        elif path.name == "captioner.toml":
            from crossmodal.train.captioner import CaptionerRecipe

            CaptionerRecipe.from_toml(path)
        else:
            read_config_file(path)
            make_config(path)
