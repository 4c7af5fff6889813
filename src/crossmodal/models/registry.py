"""Model names -> encoders.

Names: `default`, a saved model folder, `hf:<dir or hub id>`, `openclip:<arch>/<tag>`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.base import Encoder

#: Models shipped inside the package (folder name under crossmodal/models/weights).
BUILTIN_MODELS = ("default",)

_loaded: dict[tuple[str, str], Encoder] = {}


def builtin_model_path(name: str) -> Path:
    return Path(str(resources.files("crossmodal.models") / "weights" / name))


def resolve_model_dir(path: Path) -> Path:
    """A model folder, or a training run folder holding `best/`."""
    if (path / "config.json").is_file():
        return path
    if (path / "best" / "config.json").is_file():
        return path / "best"
    raise ModelNotAvailable(f"{path} holds no model (expected config.json and model.safetensors)")


def load_model(name: str = "default", device: str = "cpu", cache: bool = True) -> Encoder:
    """Load an encoder by name; raises ModelNotAvailable with a one-line reason otherwise.

    Loaded models are memoised per (name, device) since towers take seconds to build.
    """
    name = (name or "").strip() or "default"
    key = (name, device)
    if cache and key in _loaded:
        return _loaded[key]
    model = _load(name, device)
    if cache:
        _loaded[key] = model
    return model


def forget_loaded_models() -> None:
    """Drop the memoised models (a process that loaded one only to check it, such as the
    parent of `crossmodal serve --workers N`, need not keep it in memory)."""
    _loaded.clear()


def _load(name: str, device: str) -> Encoder:
    if name.startswith("hf:"):
        from crossmodal.models.clip_backends import load_hf_clip

        return load_hf_clip(name[3:], device=device)
    if name.startswith("openclip:"):
        from crossmodal.models.clip_backends import load_open_clip

        return load_open_clip(name[len("openclip:") :], device=device)

    from crossmodal.models.dual import DualEncoder

    if name in BUILTIN_MODELS:
        path = builtin_model_path(name)
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"the built-in model {name!r} is missing from this installation ({path}); "
                "reinstall crossmodal or train one with `crossmodal train`"
            )
        return DualEncoder.load(path, name=name)
    path = Path(os.path.expanduser(name))
    if path.exists():
        return DualEncoder.load(resolve_model_dir(path), name=name)
    raise ModelNotAvailable(
        f"unknown model {name!r}: use 'default', the folder of a saved model, "
        "'hf:<folder or hub id>' (Hugging Face CLIP) or 'openclip:<arch>/<pretrained>'"
    )
