"""Query vectors: the one rule of search directions, and the encoder that caches query vectors.

`direction(mode, ...)` is the one place that says what a mode searches (images or texts) and
whether it crosses modalities (a text searching images, an image searching texts: the
model's hubness correction applies). `QueryEncoder` turns weighted texts and images into one
unit query vector, keeping recent text vectors (and image vectors by a caller's key) in an
LRU: an app or a notebook asks the same queries again (paging, refining "a dog +beach"), and
each costs a tower forward (~5-10 ms for a text on CPU). `Collection` and the web service
share one.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeAlias, TypeVar

import numpy as np
from PIL import Image

from crossmodal.data import load_image
from crossmodal.errors import CrossmodalError, ImageLoadError
from crossmodal.models.base import Encoder
from crossmodal.search_options import is_file

__all__ = [
    "CROSS_MODAL",
    "LRU",
    "MODES",
    "QUERY_CACHE_SIZE",
    "Direction",
    "QueryEncoder",
    "direction",
    "load_query_image",
    "query_terms",
]

MODES = ("auto", "t2i", "i2i", "i2t", "t2t")
#: modes whose query and results are of different kinds (the hubness correction applies)
CROSS_MODAL = ("t2i", "i2t")
#: query vectors a collection keeps (the web service asks for more: `WebSettings`)
QUERY_CACHE_SIZE = 256

#: One query term: a text, a PIL image, or the path of an image file.
QueryItem: TypeAlias = str | Path | Image.Image

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Direction:
    """What a search mode searches: `target` "images" or "texts", `cross_modal` or not."""

    mode: str
    target: str
    cross_modal: bool


def direction(mode: str, has_text: bool = True, has_image: bool = True) -> Direction:
    """The direction of `mode` for a query with these kinds of terms. "auto" searches images:
    t2i for text-only queries, i2i when an image is in it."""
    if mode not in MODES:
        raise CrossmodalError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "auto":
        mode = "i2i" if has_image else "t2i"
    from_text = mode.startswith("t")
    if from_text and not has_text:
        raise CrossmodalError(f"mode {mode} searches from text: the query has no text")
    if not from_text and not has_image:
        raise CrossmodalError(f"mode {mode} searches from an image: the query has no image")
    target = "images" if mode.endswith("i") else "texts"
    return Direction(mode, target, mode in CROSS_MODAL)


def query_terms(
    text: str | None,
    image: Image.Image | str | Path | None,
    query: Sequence[tuple[float, QueryItem]] | None,
) -> tuple[list[tuple[float, str]], list[tuple[float, Image.Image | Path]]]:
    """The weighted text and image terms of a query (a string naming a file is an image)."""
    texts: list[tuple[float, str]] = []
    images: list[tuple[float, Image.Image | Path]] = []
    if text is not None and text.strip():
        texts.append((1.0, text.strip()))  # `text=` is text even if a file has that name
    terms: list[tuple[float, QueryItem]] = []
    if image is not None:
        terms.append((1.0, image if isinstance(image, Image.Image) else Path(image)))
    terms += [(float(w), item) for w, item in (query or [])]
    for weight, item in terms:
        if isinstance(item, Image.Image | Path):
            images.append((weight, item))
        elif isinstance(item, str) and is_file(item):
            images.append((weight, Path(item)))
        elif isinstance(item, str):
            if item.strip():
                texts.append((weight, item.strip()))
        else:
            raise CrossmodalError(f"cannot search with a {type(item).__name__}")
    return texts, images


class LRU(Generic[K, V]):
    """A small thread-safe LRU map (functools.lru_cache cannot key on bytes' digest cheaply
    and cannot be sized per instance)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            # made outside the lock: two threads missing the same key both compute it, which
            # is cheaper than making every other query wait behind one model forward
            value = make()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


#: texts -> their unit vectors (n, dim): another way to run the text tower (the web
#: service's child processes); it must give what `Encoder.encode_texts` gives, or None
#: when it cannot (then the model in this process encodes them)
TextBackend = Callable[[list[str]], np.ndarray | None]


class QueryEncoder:
    """Weighted texts and images -> one unit query vector, with an LRU of query vectors.

    `model` is called when a vector must be computed (loading the model on first use).
    Thread-safe: the cache has its own lock, since a collection's writer holds the
    collection's lock for a whole index run.
    """

    def __init__(self, model: Callable[[], Encoder], cache_size: int = QUERY_CACHE_SIZE) -> None:
        self._model = model
        self.cache: LRU[tuple[str, str], np.ndarray] = LRU(cache_size)
        self.text_backend: TextBackend | None = None

    def clear(self) -> None:
        """Forget every cached vector (the model changed)."""
        self.cache.clear()

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts` (rows), the recently asked ones from the cache, the others
        through the text tower in one forward."""
        found = {t: v for t in texts if (v := self.cache.get(("text", t))) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            for text, row in zip(missing, self.encode_texts(missing), strict=True):
                found[text] = row
                self.cache.put(("text", text), row)
        return np.stack([found[t] for t in texts])

    def encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        """Unit vectors of `texts` through the text tower (the backend when it answers, else
        the model), in one forward, not through the cache."""
        vectors = None
        if self.text_backend is not None:
            vectors = self.text_backend(texts)
        if vectors is None:
            vectors = self._model().encode_texts(texts)
        vectors = np.asarray(vectors, np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # rows as copies: a cached vector must not keep its whole batch's array alive
        return [row.copy() for row in vectors / np.maximum(norms, 1e-12)]

    def image_vector(self, key: str, image: Callable[[], Image.Image]) -> np.ndarray:
        """The unit query vector of the image that `key` (e.g. a digest of its bytes) names;
        `image()` is called to decode it only when the vector is not cached."""
        return self.cache.get_or_make(("image", key), lambda: self.embed([], [(1.0, image())]))

    def embed(
        self,
        texts: Sequence[tuple[float, str]],
        images: Sequence[tuple[float, Image.Image | Path]],
    ) -> np.ndarray:
        """The unit vector of the weighted sum of the terms' vectors. Image paths are loaded
        here (an unreadable one is an `ImageLoadError` naming it)."""
        model = self._model() if images else None
        pictures = [
            (w, item.convert("RGB") if isinstance(item, Image.Image) else _load(item, model))
            for w, item in images
        ]
        if not texts and not pictures:
            raise CrossmodalError("empty query: give a text, the path of an image, or both")
        if any(w == 0 for w, _ in [*texts, *pictures]):
            raise CrossmodalError("a query term has weight 0: drop it or give it a weight")
        sums: list[np.ndarray] = []
        with one_torch_thread():
            if texts:
                vecs = self.text_vectors([t for _, t in texts])
                weights = np.array([w for w, _ in texts], np.float32)[:, None]
                sums.append(np.sum(weights * vecs, axis=0))
            if pictures:
                vecs = self._model().encode_query_images([im for _, im in pictures])
                weights = np.array([w for w, _ in pictures], np.float32)[:, None]
                sums.append(np.sum(weights * vecs, axis=0))
        vector = np.zeros(len(sums[0]), np.float32)
        for part in sums:
            vector += part
        norm = float(np.linalg.norm(vector))
        if norm < 1e-6:
            raise CrossmodalError("the query terms cancel out: change their weights")
        return (vector / norm).astype(np.float32)


def _load(path: Path, model: Encoder | None) -> Image.Image:
    assert model is not None
    return load_query_image(path, model)


def load_query_image(path: Path, model: Encoder) -> Image.Image:
    """An image file as a query: decoded at the draft size the model's input needs."""
    from crossmodal.index.pipeline import _model_input

    _, draft = _model_input(model)
    try:
        return load_image(path, draft_size=draft)
    except ImageLoadError as exc:
        raise ImageLoadError(f"cannot search with {path}: {exc}") from None


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Embed a query on one thread. A single query is too small to gain from two, and when
    the cores are busy (an index run beside a search, say) the second thread's waits turned a
    40 ms query into 250 ms and slowed the FAISS scan after it (docs/benchmarks.md)."""
    import sys

    # A torch-free query encoder (models/query_bundle.py) runs on one thread already;
    # importing torch here would cost a quick search 3 s.
    if "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
