"""Hubness correction for cross-modal search ("query-bank normalisation").

In a shared image-text space a few gallery items ("hubs") sit close to a great many queries
and turn up as the first hit for queries that are not about them. Each gallery item is
charged for how crowded its neighbourhood is: its mean similarity to its `k` nearest queries
in a bank of *training* queries (CSLS, Lample et al. 2018; QB-Norm, Bogolin et al. 2022):

    score(q, g) = q . g - weight * mean(top-k of bank . g)

The charge depends on the gallery item alone, so it is worked out once when the item is
indexed and kept as one more coordinate of its stored vector (zero-padded to a multiple of
16); a cross-modal query carries a 1 in that coordinate, a same-modal query a 0
(image->image and text->text are left as they were). Search stays one exact scan.

Images are charged against a bank of training captions (they are what text->image queries
look like) and captions against a bank of training images. `k` and `weight` are chosen on the
val split (`crossmodal hubness`, crossmodal/train/hubness.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.errors import ModelNotAvailable

BANK_FILE = "hubness.safetensors"
#: gallery tables and the bank of queries that charges each
BANK_FOR = {"images": "text_bank", "texts": "image_bank"}


@dataclass
class HubnessCorrection:
    """Banks of training-query vectors and the `k` / `weight` of the charge."""

    text_bank: np.ndarray  # (n, dim) unit vectors of training captions: charge images
    image_bank: np.ndarray  # (m, dim) unit vectors of training images: charge captions
    k: int
    weight: float

    def __post_init__(self) -> None:
        self.text_bank = np.ascontiguousarray(self.text_bank, np.float32)
        self.image_bank = np.ascontiguousarray(self.image_bank, np.float32)
        if self.k < 1 or self.k > min(len(self.text_bank), len(self.image_bank)):
            raise ValueError(f"hubness k={self.k} must be in 1..the smaller bank's size")

    def offsets(self, vectors: np.ndarray, table: str, chunk: int = 2048) -> np.ndarray:
        """The stored extra coordinate of each row of `table` ("images" or "texts"):
        minus `weight` times its mean similarity to its `k` nearest bank queries."""
        bank = getattr(self, BANK_FOR[table])
        vectors = np.asarray(vectors, np.float32).reshape(-1, bank.shape[1])
        out = np.empty(len(vectors), np.float32)
        with _one_blas_thread():
            for start in range(0, len(vectors), chunk):
                sims = vectors[start : start + chunk] @ bank.T
                top = np.partition(sims, -self.k, axis=1)[:, -self.k :]
                out[start : start + chunk] = top.mean(axis=1)
        return -self.weight * out

    def augment(self, vectors: np.ndarray, table: str) -> np.ndarray:
        """Gallery rows with their offset appended, then zeros: (n, stored_dim(dim))."""
        vectors = np.asarray(vectors, np.float32)
        n, dim = vectors.shape
        out = np.zeros((n, stored_dim(dim)), np.float32)
        out[:, :dim] = vectors
        out[:, dim] = self.offsets(vectors, table)
        return out

    @property
    def digest(self) -> str:
        """Changes whenever the offsets could (so stored indexes built with others are
        recognised as stale)."""
        h = hashlib.sha1(f"{self.k}:{self.weight!r}".encode())
        h.update(self.text_bank.tobytes())
        h.update(self.image_bank.tobytes())
        return h.hexdigest()[:10]

    def spec(self) -> dict[str, Any]:
        return {"file": BANK_FILE, "k": self.k, "weight": self.weight}

    def save(self, folder: str | Path) -> dict[str, Any]:
        """Write the banks (float16) into a model folder; returns the config entry."""
        from safetensors.numpy import save_file

        save_file(
            {
                "text_bank": self.text_bank.astype(np.float16),
                "image_bank": self.image_bank.astype(np.float16),
            },
            str(Path(folder) / BANK_FILE),
        )
        return self.spec()

    @classmethod
    def load(cls, folder: str | Path, spec: dict[str, Any]) -> HubnessCorrection:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        file = Path(folder) / str(spec.get("file", BANK_FILE))
        if not file.is_file():
            raise ModelNotAvailable(
                f"model folder {folder} names a hubness bank {file.name} that is missing: "
                "copy it from where the model came from, or make one with `crossmodal hubness`"
            )
        try:
            banks = load_file(str(file))
            return cls(
                text_bank=banks["text_bank"],
                image_bank=banks["image_bank"],
                k=int(spec["k"]),
                weight=float(spec["weight"]),
            )
        except (OSError, SafetensorError, KeyError, ValueError) as exc:
            raise ModelNotAvailable(f"cannot read the hubness bank {file}: {exc}") from exc


@functools.cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController()
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Offsets are computed while indexing, beside the image-tower workers: a multithreaded
    BLAS product there spins on the workers' cores (indexing 115 -> 97 images/s)."""
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def stored_dim(dim: int) -> int:
    """Width of a stored row: the vector, its offset, zeros up to a multiple of 16. FAISS's
    SIMD kernels want that: a 513-wide fp16 store scanned 100k rows in 64 ms, not 3.6."""
    return dim + 16 - dim % 16


def query_columns(queries: np.ndarray, cross_modal: bool) -> np.ndarray:
    """Queries widened to `stored_dim`: a 1 in the offset's column applies the gallery's
    charge, a 0 leaves it out."""
    queries = np.asarray(queries, np.float32)
    n, dim = queries.shape
    out = np.zeros((n, stored_dim(dim)), np.float32)
    out[:, :dim] = queries
    out[:, dim] = 1.0 if cross_modal else 0.0
    return out
