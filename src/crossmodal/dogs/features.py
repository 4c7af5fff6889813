"""EfficientNet-Lite features for breed recognition, cached on disk like every other embedding.

Breed recognition needs, per image and per tower, the pooled 1280-d feature vector only: the
linear probe reads it directly, and the ImageNet-1k logits are the tower's own final linear
layer applied to it (EfficientNet-Lite's classifier is pool -> dropout -> fc, and dropout is
off at inference). So one cached vector per image gives both signals, and the cache is the one
`crossmodal.models.features.embed_image_files` keeps for the dual encoder's image tower: a dog
photo already indexed by a lite0 model is not decoded again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from crossmodal.models.features import ImageBatchResult, default_cache_dir, embed_image_files

__all__ = ["DEFAULT_VARIANTS", "image_encoder", "imagenet_logits", "tower_features"]

#: Towers breed recognition may combine (both ship in PyPI packages).
DEFAULT_VARIANTS: tuple[str, ...] = ("lite0", "lite2")

_encoders: dict[str, object] = {}
_lock = threading.Lock()


def image_encoder(variant: str):
    """A dual encoder shell holding only the EfficientNet `variant` image tower (memoised).

    `embed_image_files` caches by the image tower's fingerprint and needs a `DualEncoder`; the
    shell has untrained heads that are never used (we ask for `features_only`), and no text
    tower, so building it costs only the image network.
    """
    from crossmodal.models.dual import DualEncoder
    from crossmodal.models.towers import EfficientNetTower

    with _lock:
        model = _encoders.get(variant)
        if model is None:
            config = {
                "name": f"dogs-{variant}",
                "embed_dim": 8,
                "image_tower": {"type": "efficientnet", "variant": variant},
                "text_tower": {"type": "minilm"},
            }
            shell = DualEncoder(config, build_towers=False)
            shell.image_tower = EfficientNetTower(variant)
            shell.eval()
            model = _encoders[variant] = shell
    return model


def tower_features(
    variant: str,
    paths: Sequence[str | Path],
    cache_dir: str | Path | bool | None = True,
    show_progress: bool = False,
    batch_size: int = 32,
) -> ImageBatchResult:
    """Pooled features (n_ok, 1280) of the images that decoded; `ok` / `failures` say which not.

    `cache_dir=True` means the default cache folder, `None`/`False` no cache.
    """
    if cache_dir is True:
        cache: str | Path | None = default_cache_dir()
    elif cache_dir is False:
        cache = None
    else:
        cache = cache_dir
    return embed_image_files(
        image_encoder(variant),
        paths,
        cache_dir=cache,
        batch_size=batch_size,
        show_progress=show_progress,
        features_only=True,
    )


def imagenet_logits(variant: str, features: np.ndarray) -> np.ndarray:
    """ImageNet-1k logits (n, 1000) from pooled features, through the tower's own classifier."""
    tower = image_encoder(variant).image_tower
    fc = tower.net._fc
    with torch.inference_mode():
        return fc(torch.from_numpy(np.asarray(features, np.float32))).numpy()
