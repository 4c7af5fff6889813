"""Embedding image files batch by batch, decoding on threads while the model runs.

Like `crossmodal.models.features.embed_image_files`, but as a generator over batches (so the
collection can commit each batch as soon as it is embedded) that also returns what the
catalogue needs about every file: its content hash and pixel size. Worker threads read, hash,
decode and preprocess the next batches while the main thread runs the model on this one; JPEGs
are decoded at reduced scale when the model would downscale them anyway (`draft_size`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crossmodal.data import load_image
from crossmodal.errors import ImageLoadError
from crossmodal.index.facts import PhotoFacts, header_facts
from crossmodal.models.base import Encoder
from crossmodal.models.features import overlapped_batches

__all__ = [
    "LoadedImage",
    "embed_loaded",
    "file_sha1",
    "header_of",
    "image_size_of",
    "iter_embedded_batches",
    "load_file",
]

_EXIF_ORIENTATION = 0x0112


def file_sha1(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def image_size_of(path: Path) -> tuple[int, int] | None:
    """(width, height) as displayed (EXIF rotation applied), from the header alone."""
    return header_of(path)[0]


def header_of(path: Path) -> tuple[tuple[int, int] | None, PhotoFacts | None]:
    """(displayed size, photo facts) from one read of the header: the facts (EXIF date,
    camera, GPS, type: crossmodal/index/facts.py) cost no read beyond the size's."""
    try:
        mtime_ns = os.stat(path).st_mtime_ns
        with Image.open(path) as im:
            return header_facts(im, mtime_ns)
    except Exception:  # size and facts are metadata only: never fail a file that decoded
        return None, None


@dataclass
class LoadedImage:
    """One input file after the worker thread: `error` is None when it decoded."""

    index: int
    digest: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    facts: PhotoFacts | None = None
    item: Any = None  # the preprocessed tensor / PIL image, dropped after embedding
    #: the image tower's pooled features, kept when asked (`keep_features`): automatic tags
    #: and captions read them instead of running the tower again
    features: np.ndarray | None = None


def _model_input(model: Encoder) -> tuple[Callable[[Image.Image], Any] | None, int | None]:
    """(preprocess run on worker threads, draft size) for this encoder."""
    draft = getattr(model, "draft_size", None)
    if draft is not None:  # a torch-free query encoder (models/query_bundle.py) says it
        return None, int(draft)
    from crossmodal.models.dual import DualEncoder

    if isinstance(model, DualEncoder) and model.image_tower is not None:
        size = int(getattr(model.image_tower, "image_size", 0))
        # JPEG DCT scaling down to exactly the model's size shifts embeddings by up to ~0.01
        # in cosine (its box-like filter is not the bicubic of the reference path); stopping
        # at twice the size keeps them within ~0.005 and still decodes a 12 MP photo at 1/4
        # or 1/8 scale, several times faster than in full
        return model.image_preprocess, 2 * size if size else None
    return None, None


def _embed(
    model: Encoder, items: list[Any], keep_features: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(projected vectors, the tower's pooled features when kept and the model has them)."""
    from crossmodal.models.dual import DualEncoder

    if isinstance(model, DualEncoder):
        import torch

        with torch.inference_mode():
            features = model.image_features(torch.stack(items))
            vectors = model.project_images(features).numpy()
        return vectors, features.float().numpy() if keep_features else None
    return model.encode_images(items, batch_size=len(items)), None


def load_file(
    path: Path, index: int, preprocess: Callable[[Image.Image], Any] | None, draft: int | None
) -> LoadedImage:
    """Hash, decode and preprocess one file (never raises for a bad file: its `error` says
    why in one line). Run on the decode threads here and in the Ray actors (ray_index)."""
    out = LoadedImage(index=index)
    try:
        out.digest = file_sha1(path)
        image = load_image(path, draft_size=draft)
    except ImageLoadError as exc:
        out.error = str(exc)
        return out
    except OSError as exc:  # vanished or unreadable between the scan and now
        out.error = (
            "file not found"
            if isinstance(exc, FileNotFoundError)
            else (f"cannot read: {exc.strerror or exc}")
        )
        return out
    size, out.facts = header_of(path)
    out.width, out.height = size if size else image.size
    out.item = preprocess(image) if preprocess is not None else image
    return out


def embed_loaded(
    model: Encoder, loaded: Sequence[LoadedImage], texts: Sequence[str], keep_features: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of the ok files of `loaded`, in order; vectors of `texts`); drops the
    decoded pixels. `keep_features`: each ok file's pooled tower features in `.features`."""
    good = [x for x in loaded if x.error is None]
    empty = np.zeros((0, model.dim), np.float32)
    vectors = empty
    if good:
        found, features = _embed(model, [x.item for x in good], keep_features)
        vectors = np.asarray(found, dtype=np.float32)
        for n, x in enumerate(good):
            x.features = features[n] if features is not None else None
    for x in good:
        x.item = None  # the decoded pixels are not needed any more
    text_vectors = np.asarray(model.encode_texts(list(texts)), np.float32) if texts else empty
    return vectors, text_vectors


def iter_embedded_batches(
    model: Encoder,
    paths: Sequence[Path],
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    texts_for: Callable[[int], Sequence[str]] | None = None,
    keep_features: bool = False,
) -> Iterator[tuple[list[LoadedImage], np.ndarray, np.ndarray]]:
    """Yield `(loaded, vectors, text_vectors)` per batch of `paths`: `loaded[i]` for every file
    of the batch (failed ones carry `error`), `vectors` rows for the ok ones, in order, and
    `text_vectors` rows for `texts_for(index)` of each ok file, concatenated in the same order
    (captions are embedded by the same workers as their images). `keep_features`: each ok
    file's `features` holds the image tower's pooled features (our dual encoders only).

    Never raises for a bad file: unreadable, empty, truncated or non-image files come back with
    a one-line reason.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    preprocess, draft = _model_input(model)

    def load(i: int) -> LoadedImage:
        return load_file(paths[i], i, preprocess, draft)

    chunks = [
        list(range(s, min(s + batch_size, len(paths)))) for s in range(0, len(paths), batch_size)
    ]
    n_decode = workers or max(2, min(8, os.cpu_count() or 2))

    def embed(loaded: list[LoadedImage]) -> tuple[list[LoadedImage], np.ndarray, np.ndarray]:
        texts = (
            [t for x in loaded if x.error is None for t in texts_for(x.index)] if texts_for else []
        )
        return loaded, *embed_loaded(model, loaded, texts, keep_features)

    for loaded, vectors, text_vectors in overlapped_batches(chunks, load, embed, n_decode):
        if on_progress is not None:
            on_progress(len(loaded))
        yield loaded, vectors, text_vectors
