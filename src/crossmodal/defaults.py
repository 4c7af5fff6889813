"""Defaults shared by the CLI and the API, kept free of imports so any layer may use them."""

from __future__ import annotations

import os
from pathlib import Path

#: the project's data folder, relative to a checkout's root (the repo lives beside `shared/`)
DEFAULT_DATA_ROOT = Path("../shared/data")
#: the Flickr8k copy every dataset option defaults to (`--root`, `TrainConfig.root`, …)
DEFAULT_FLICKR8K_ROOT = DEFAULT_DATA_ROOT / "flickr8k"
#: the model a new collection uses when none is named
DEFAULT_MODEL = "default"


def default_collection_path() -> Path:
    """$CROSSMODAL_COLLECTION, else $XDG_DATA_HOME/crossmodal/default (~/.local/share/...)."""
    env = os.environ.get("CROSSMODAL_COLLECTION")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "crossmodal" / "default"


def normalise_model_name(name: str) -> str:
    """Model folders by absolute path, so the name recorded in a collection works from any cwd."""
    name = name.strip() or DEFAULT_MODEL
    if ":" not in name:
        path = Path(name).expanduser()
        if path.exists():
            return str(path.resolve())
    return name
