"""The one interface every model in crossmodal offers: images and texts in, unit vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from crossmodal.models.hubness import HubnessCorrection


class Encoder(ABC):
    """A dual encoder: maps images and texts into one space of L2-normalised float32 vectors.

    Implementations batch internally and show a progress bar when asked; callers pass plain
    lists and get `(n, dim)` arrays back, as with sentence-transformers' `encode`.
    """

    #: registry name the model was loaded under (e.g. "default", "hf:/path", "/runs/x/best")
    name: str = "unnamed"
    #: embedding dimension of both modalities
    dim: int = 0
    #: charge on crowded gallery items in cross-modal search (crossmodal/models/hubness.py)
    hubness: HubnessCorrection | None = None

    @abstractmethod
    def encode_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed PIL images -> float32 array (n, dim), rows of unit length."""

    @abstractmethod
    def encode_texts(
        self,
        texts: Sequence[str],
        batch_size: int = 128,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed strings -> float32 array (n, dim), rows of unit length."""

    #: image *queries* (not indexed images) embedded as the mean of the image and its mirror
    #: image (test-time augmentation; chosen on val, docs/training.md)
    query_image_flip: bool = False

    def encode_query_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Vectors of images used as queries: with `query_image_flip`, each the normalised
        mean of the image's vector and its mirror image's."""
        if not self.query_image_flip:
            return self.encode_images(images)
        from PIL import ImageOps

        both = self.encode_images([*images, *(ImageOps.mirror(im) for im in images)])
        return l2_normalize(both[: len(images)] + both[len(images) :])

    @property
    def fingerprint(self) -> str:
        """A string that changes whenever the vectors this model produces could change.

        Used to key on-disk embedding caches and to refuse searching a collection indexed
        by another model. Subclasses with weights must override it.
        """
        return self.name


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)
