"""Fine-tuning a Hugging Face CLIP: freeze-lower-layers and LoRA recipes, resume, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.errors import ConfigError, DatasetError
from crossmodal.models import load_model
from crossmodal.train.clip_finetune import lora_plan
from crossmodal.train.config import TrainConfig, make_config
from crossmodal.train.runner import run_training
from tests.conftest import make_image
from tests.models.clip_fixtures import make_tiny_hf_clip
from tests.train.resume import assert_same_run, kill_then_resume


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_clip(tmp_path_factory.mktemp("clip") / "tiny")


def tiny(root: Path, clip: Path, out: Path, **overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        clip_model=f"hf:{clip}",
        dataset="captions-json",
        root=str(root),
        out=str(out),
        epochs=3,
        batch_size=4,
        lr=1e-2,
        image_lr=1e-2,
        text_lr=1e-2,
        lora_lr=1e-2,
        weight_decay=0.1,
        warmup_epochs=0.5,
        patience=5,
        workers=1,
        device="cpu",
    )
    base.update(overrides)
    return make_config(None, **base)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_freeze_lower_layers_recipe_trains_only_the_top(
    colour_root: Path, clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the tiny towers have 2 layers: "top 1" freezes the lower one, as 3 of 12 does on ViT-B/32
    cfg = tiny(
        colour_root,
        clip_dir,
        tmp_path / "run",
        unfreeze_image=1,
        unfreeze_text=1,
        tower_weights_dtype="float32",
    )
    best = run_training(cfg, show_progress=False).best_dir
    before, after = weights(clip_dir), weights(best)
    assert before.keys() == after.keys()

    def changed(key: str) -> bool:
        return not torch.equal(before[key], after[key])

    for tower in ("vision_model", "text_model"):
        lower = [k for k in before if k.startswith(f"{tower}.encoder.layers.0.")]
        upper = [k for k in before if k.startswith(f"{tower}.encoder.layers.1.")]
        assert lower and not any(changed(k) for k in lower)
        assert any(changed(k) for k in upper)
        assert not any(changed(k) for k in before if k.startswith(f"{tower}.embeddings."))
    assert changed("visual_projection.weight") and changed("text_projection.weight")

    run = tmp_path / "run"
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["score"] == max(r["val_mean_recall"] for r in log)
    assert make_config(run / "config.toml") == cfg
    info = json.loads((best / "training_info.json").read_text())
    assert "top 1 layers" in info["recipe"]

    # a plain HF CLIP folder: the hf: backend loads it, and it scores as it did in training
    model = load_model(f"hf:{best}", cache=False)
    emb = model.encode_texts(["a red square", "something teal"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
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
    np.testing.assert_allclose(np.linalg.norm(split.image_emb, axis=1), 1.0, rtol=1e-5)
    t2i, i2t = retrieval_ranks(split.image_emb, split.text_emb, split.caption_image)
    for direction, ranks in (("t2i", t2i), ("i2t", i2t)):
        assert metrics_from_ranks(ranks)["R@1"] == pytest.approx(summary["val"][direction]["R@1"])


def test_lora_recipe_saves_a_merged_plain_clip(colour_root: Path, clip_dir: Path, tmp_path: Path):
    # default lora_targets (MiniLM's query/value) map to q_proj/v_proj, on both towers
    cfg = tiny(colour_root, clip_dir, tmp_path / "run", lora_text=4, epochs=2)
    best = run_training(cfg, show_progress=False).best_dir
    files = {p.name for p in best.iterdir()}
    assert not any(name.startswith("adapter_") for name in files), files
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    before, after = weights(clip_dir), weights(best)
    assert after.keys() == before.keys()  # merged: no lora_A / base_layer keys
    assert all(v.dtype == torch.float16 for v in after.values())  # tower_weights_dtype default

    def same(key: str) -> bool:
        return torch.equal(before[key].half(), after[key])

    for tower in ("vision_model", "text_model"):
        layer = f"{tower}.encoder.layers.1.self_attn"
        assert not same(f"{layer}.q_proj.weight") and not same(f"{layer}.v_proj.weight")
        assert same(f"{layer}.k_proj.weight") and same(f"{layer}.out_proj.weight")
    model = load_model(f"hf:{best}", cache=False)
    emb = model.encode_texts(["a blue square"])
    assert emb.shape == (1, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-4)


def test_a_killed_run_resumes_to_the_same_weights(
    colour_root: Path, clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    extra = {
        "unfreeze_image": 1,
        "lora_text": 2,
        "lora_targets": ["q_proj", "v_proj"],
        "tower_weights_dtype": "float32",
    }
    whole = run_training(
        tiny(colour_root, clip_dir, tmp_path / "whole", **extra), show_progress=False
    ).best_dir

    cfg = tiny(colour_root, clip_dir, tmp_path / "killed", **extra)
    resumed = kill_then_resume(monkeypatch, cfg, after=1)
    assert_same_run(
        tmp_path / "whole", tmp_path / "killed", weights(whole), weights(resumed), epochs=3
    )


def test_lora_plan_maps_names_and_picks_towers():
    def plan(**kw: object) -> dict[str, list[str]]:
        return lora_plan(make_config(None, clip_model="hf:x", **kw))

    assert plan(lora_text=4) == {"text": ["q_proj", "v_proj"], "image": ["q_proj", "v_proj"]}
    assert plan(lora_text=4, unfreeze_image=3) == {"text": ["q_proj", "v_proj"], "image": []}
    assert plan(lora_text=4, lora_targets=["text.q_proj", "image.fc1"]) == {
        "text": ["q_proj"],
        "image": ["fc1"],
    }
    assert plan() == {"text": [], "image": []}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clip_model": "openclip:ViT-B-32/laion2b_s34b_b79k"}, "torchvision"),
        ({"clip_model": "/models/clip"}, "must be 'hf:"),
    ],
)
def test_untrainable_clip_specs_are_config_errors(settings: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        make_config(None, **settings)


def test_bad_clip_settings_fail_before_training(colour_root: Path, clip_dir: Path, tmp_path: Path):
    def fails(error: type[Exception], match: str, root: Path = colour_root, **kw: object) -> None:
        out = tmp_path / "never"
        with pytest.raises(error, match=match):
            run_training(tiny(root, clip_dir, out, **kw), show_progress=False)
        assert not out.exists()

    fails(ConfigError, "no folder .*nowhere", clip_model=f"hf:{tmp_path / 'nowhere'}")
    fails(ConfigError, "'attention' is not a layer", lora_text=2, lora_targets=["attention"])
    fails(ConfigError, "choose one", lora_text=2, unfreeze_image=1, lora_targets=["image.q_proj"])
    fails(ConfigError, "larger than the 8 training images", batch_size=64)
    fails(ConfigError, "image_size is fixed", image_size=224)
    folders = tmp_path / "labels"
    for label, rgb in (("cat", (200, 10, 10)), ("dog", (10, 10, 200))):
        for i in range(4):
            make_image(folders / label / f"{i}.png", rgb)
    fails(DatasetError, "no captions", root=folders, dataset="folder")


def test_cli_reports_a_missing_clip_folder_in_one_line(tmp_path: Path):
    path = tmp_path / "clip.toml"
    path.write_text(f'clip_model = "hf:{tmp_path / "missing-clip"}"\nunfreeze_image = 3\n')
    result = CliRunner().invoke(
        app, ["train", "--config", str(path), "--out", str(tmp_path / "never")]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "missing-clip" in lines[0], result.output
    assert not (tmp_path / "never").exists()
