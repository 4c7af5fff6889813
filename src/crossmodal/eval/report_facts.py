"""What a report states besides its measurements: the dataset's splits, each model's
architecture and training record (the model card's hyper-parameters, from the model's own
config.json, and its training recipe where one can be found), the hardware and the package
versions. Gathered once by `facts` so analysis.json carries them too and the write-up
(`paper.py`) never types a number."""

from __future__ import annotations

import os
import platform
import sys
import tomllib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from crossmodal.data import ImageTextDataset, load_dataset
from crossmodal.errors import CrossmodalError
from crossmodal.eval.report_runs import ModelRun
from crossmodal.models.base import Encoder

#: Packages whose versions the appendix lists (distribution names on PyPI).
ENVIRONMENT_PACKAGES = (
    "torch", "transformers", "numpy", "faiss-cpu", "openvino", "scikit-learn", "matplotlib",
    "pillow", "safetensors", "efficientnet-lite-pytorch", "peft",
)  # fmt: skip

#: Training recipes of the models shipped inside the package (their config.json records what
#: training did, not the file): the default's is named in docs/model-card.md.
BUILTIN_RECIPES = {"default": "recipes/finetune-lora-wide-aug.toml"}

_REPO_ROOT = Path(__file__).resolve().parents[3]


def _tower_name(spec: dict[str, Any]) -> str:
    kind = str(spec.get("type", "?"))
    if kind == "concat":
        return " + ".join(_tower_name(t) for t in spec.get("towers", []))
    if kind == "efficientnet":
        return f"EfficientNet-{str(spec.get('variant', '')).capitalize()}"
    return {"minilm": "MiniLM-L6", "use": "USE (multilingual)"}.get(kind, kind)


def model_facts(model: Encoder) -> dict[str, Any]:
    """What the model's own files say of it: architecture, search settings and the training
    record its config.json keeps (the model card's hyper-parameters)."""
    config: dict[str, Any] = getattr(model, "config", None) or {}
    if not config:  # a Hugging Face / OpenCLIP model: what it calls itself
        return {"model": model.name, "description": model.fingerprint, "dim": None}
    facts: dict[str, Any] = {
        "model": model.name,
        "dim": int(config.get("embed_dim", 0)),
        "image_tower": _tower_name(config.get("image_tower", {})),
        "text_tower": _tower_name(config.get("text_tower", {})),
        "image_size": getattr(getattr(model, "image_tower", None), "image_size", None),
        "image_head": config.get("image_head", {}),
        "text_head": config.get("text_head", {}),
        "hubness": {k: v for k, v in (config.get("hubness") or {}).items() if k != "file"},
        "query_image_flip": bool(config.get("query_image_flip", False)),
        "multilingual": "multilingual_tower" in config,
        "training": dict(config.get("info", {})),
    }
    recipe = training_recipe(model.name)
    if recipe is not None:
        facts["recipe_file"], facts["recipe"] = recipe
    return facts


def training_recipe(name: str) -> tuple[str, dict[str, Any]] | None:
    """The training configuration a model came from: a run folder's config.toml (beside
    `best/`), or the recipe of a built-in model when this is a checkout that has it."""
    candidates = []
    if name in BUILTIN_RECIPES:
        candidates.append(_REPO_ROOT / BUILTIN_RECIPES[name])
    else:
        folder = Path(os.path.expanduser(name))
        candidates += [folder / "config.toml", folder.parent / "config.toml"]
    for path in candidates:
        if path.is_file():
            try:
                shown = os.path.relpath(path, _REPO_ROOT) if name in BUILTIN_RECIPES else str(path)
                return shown, tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                return None
    return None


def split_sizes(dataset: ImageTextDataset) -> dict[str, dict[str, int]]:
    """Images and captions of each split the dataset has (the evaluated one always)."""
    sizes = {dataset.split: {"images": len(dataset.image_paths), "captions": len(dataset.captions)}}
    for split in ("train", "val", "test"):
        if split == dataset.split:
            continue
        try:
            other = load_dataset(dataset.name, dataset.root, split=split)
        except (CrossmodalError, OSError, ValueError):
            continue  # a layout with no such split (e.g. one captions.json)
        if isinstance(other, ImageTextDataset):
            sizes[split] = {"images": len(other.image_paths), "captions": len(other.captions)}
    order = ["train", "val", "test"]
    return dict(sorted(sizes.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    import torch

    try:
        from crossmodal.models.fast import describe_paths

        paths: dict[str, str] = describe_paths()
    except (ImportError, RuntimeError):  # the path description moved or cannot run here
        paths = {}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_name(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "device_used": "cpu",  # the report embeds on the CPU (models load on "cpu")
        "inference_path": paths,
    }


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("crossmodal", *ENVIRONMENT_PACKAGES):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def facts(runs: Sequence[ModelRun], dataset: ImageTextDataset) -> dict[str, Any]:
    """Everything the write-up states that is not a measurement of a model's ranks."""
    return {
        "splits": split_sizes(dataset),
        "models": {r.label: model_facts(r.model) for r in runs if r.model is not None},
        "hardware": hardware(),
        "environment": environment(),
        "python_executable": Path(sys.executable).name,
    }
