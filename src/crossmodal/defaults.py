"""Defaults shared by the CLI and the API, kept free of imports so any layer may use them."""

from __future__ import annotations

from pathlib import Path

#: the project's data folder, relative to a checkout's root (the repo lives beside `shared/`)
DEFAULT_DATA_ROOT = Path("../shared/data")
#: the Flickr8k copy every dataset option defaults to (`--root`, `TrainConfig.root`, …)
DEFAULT_FLICKR8K_ROOT = DEFAULT_DATA_ROOT / "flickr8k"
