"""Embedding files and texts in bulk, with an on-disk cache and decoding overlapped with the model.

The cache is one SQLite file per namespace (a tower or model fingerprint), keyed by the SHA-1
of the image file's bytes or of the text, so a renamed file is still a hit and an edited one a
miss. For our dual encoder the cache holds *tower features*: heads are cheap, so every model
that shares a frozen tower (all head variants during model selection) shares one cache.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from crossmodal.data import load_image
from crossmodal.errors import ImageLoadError
from crossmodal.models.base import Encoder, l2_normalize

Loaded = TypeVar("Loaded")
Embedded = TypeVar("Embedded")


def default_cache_dir() -> Path:
    env = os.environ.get("CROSSMODAL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crossmodal"


class FeatureCache:
    """key -> float32 vector, persisted in `<root>/<namespace-hash>.sqlite`."""

    def __init__(self, root: str | Path | None, namespace: str) -> None:
        self.namespace = namespace
        self.path: Path | None = None
        self._db: sqlite3.Connection | None = None
        if root is None:
            return
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(namespace.encode()).hexdigest()[:20]
            self.path = root / f"{name}.sqlite"
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('namespace', ?)", (namespace,))
            self._db.commit()
        except (OSError, sqlite3.Error):
            # A cache that cannot be written only costs time; never fail the job for it.
            self._db, self.path = None, None

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        if self._db is None:
            return
        rows = [(k, np.asarray(v, np.float32).tobytes()) for k, v in items]
        try:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self._db.commit()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def file_digest(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read()).hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class ImageBatchResult:
    """Vectors for the images that decoded; `ok[i]` says whether input i is among them."""

    vectors: np.ndarray
    ok: np.ndarray
    failures: list[tuple[Path, str]] = field(default_factory=list)


def _prepare(
    path: Path,
    transform: Callable[[Image.Image], object] | None,
    flip: bool,
    draft_size: int | None = None,
) -> object:
    """The decoded image (mirrored with `flip`), through `transform` when there is one."""
    image = load_image(path, draft_size=draft_size)
    if flip:
        image = ImageOps.mirror(image)
    return transform(image) if transform is not None else image


def overlapped_batches(
    chunks: Sequence[Sequence[int]],
    load: Callable[[int], Loaded],
    embed: Callable[[list[Loaded]], Embedded],
    n_decode: int,
) -> Iterator[Embedded]:
    """`embed(loaded batch)` for each chunk of indices, in order: `load` runs on `n_decode`
    threads one batch ahead of the model, and the model as `torch.get_num_threads()`
    single-threaded batches side by side rather than one batch on that many intra-op
    threads: small convolutions split across threads spend their time at barriers, and
    whenever a decoder thread (or another process) takes a core the other thread spins.
    Measured on 2 cores: ~3x the throughput (docs/benchmarks.md). What is in flight is
    bounded, so memory stays at a few batches of decoded images. Used by indexing
    (`crossmodal.index.pipeline`) and by `embed_image_files`."""
    import torch  # here, not at the top: a search opens collections without torch

    if not chunks:
        return
    threads_before = torch.get_num_threads()
    n_model = max(1, threads_before)

    def embed_batch(futures: list[Future[Loaded]]) -> Embedded:
        return embed([f.result() for f in futures])

    torch.set_num_threads(1)
    try:
        with (
            ThreadPoolExecutor(max_workers=n_decode, thread_name_prefix="decode") as decoders,
            ThreadPoolExecutor(max_workers=n_model, thread_name_prefix="embed") as embedders,
        ):
            decoding = deque([decoders.submit(load, i) for i in c] for c in chunks[: n_model + 1])
            next_chunk = len(decoding)
            embedding: deque[Future[Embedded]] = deque()
            while decoding and len(embedding) < n_model:
                embedding.append(embedders.submit(embed_batch, decoding.popleft()))
            while embedding:
                result = embedding.popleft().result()
                if next_chunk < len(chunks):
                    decoding.append([decoders.submit(load, i) for i in chunks[next_chunk]])
                    next_chunk += 1
                if decoding:
                    embedding.append(embedders.submit(embed_batch, decoding.popleft()))
                yield result
    finally:
        torch.set_num_threads(threads_before)


def _run_pipeline(
    paths: Sequence[Path],
    todo: list[int],
    transform: Callable[[Image.Image], object] | None,
    compute: Callable[[list], np.ndarray],
    batch_size: int,
    desc: str,
    show_progress: bool,
    flip: bool,
    on_batch: Callable[[dict[int, np.ndarray]], None] | None = None,
    draft_size: int | None = None,
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Embed the files at `todo` with decoding overlapped (`overlapped_batches`). `on_batch`
    sees each batch's vectors as soon as they exist (in order), so a cache can persist them
    and an interrupted run loses at most a batch per worker.
    """
    vectors: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    if not todo:
        return vectors, errors

    def load_one(i: int) -> tuple[int, object | None, str | None]:
        try:
            return i, _prepare(paths[i], transform, flip, draft_size), None
        except ImageLoadError as exc:
            return i, None, str(exc)
        except OSError as exc:  # unreadable file: permissions, vanished
            return i, None, f"cannot read: {exc.strerror or exc}"

    def embed(loaded: list) -> tuple[dict[int, np.ndarray], dict[int, str], int]:
        failed = {i: err for i, _, err in loaded if err is not None}
        good = [(i, x) for i, x, err in loaded if err is None]
        done: dict[int, np.ndarray] = {}
        if good:
            out = compute([x for _, x in good])
            done = {i: vec for (i, _), vec in zip(good, out, strict=True)}
        return done, failed, len(loaded)

    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not show_progress)
    n_decode = max(2, min(8, os.cpu_count() or 2))
    chunks = [todo[s : s + batch_size] for s in range(0, len(todo), batch_size)]
    for done, failed, count in overlapped_batches(chunks, load_one, embed, n_decode):
        vectors.update(done)
        errors.update(failed)
        if done and on_batch is not None:
            on_batch(done)
        bar.update(count)
    bar.close()
    return vectors, errors


@dataclass
class _ImageEmbedding:
    """How `embed_image_files` turns decoded images into the vectors it caches."""

    namespace: str  # the cache namespace: a tower or model fingerprint
    transform: Callable[[Image.Image], object] | None
    compute: Callable[[list], np.ndarray]
    draft_size: int | None = None


def _image_embedding(model: Encoder, features_only: bool) -> _ImageEmbedding:
    """Tower features for our dual encoder (heads are cheap), final vectors for any other."""
    import torch

    from crossmodal.models.dual import DualEncoder

    if not isinstance(model, DualEncoder):
        if features_only:
            raise ValueError("features_only needs a crossmodal dual encoder")

        def encode(items: list) -> np.ndarray:
            return model.encode_images(items, batch_size=len(items))

        return _ImageEmbedding(f"image-embeddings:{model.fingerprint}", None, encode)
    dual = model

    def compute(items: list) -> np.ndarray:
        with torch.inference_mode():
            features: np.ndarray = dual.image_features(torch.stack(items)).float().numpy()
            return features

    # a large camera JPEG decodes at 1/2-1/8 scale in the DCT, down to twice the model's
    # input size at least (the indexing pipeline's rule: embeddings move < 0.005 in
    # cosine); Flickr8k-sized images (500 x 375) decode in full as before
    size = int(getattr(dual.image_tower, "image_size", 0))
    return _ImageEmbedding(
        f"image-features:{dual.image_tower_fingerprint()}",
        dual.image_preprocess,
        compute,
        draft_size=2 * size if size else None,
    )


def _file_keys(files: Sequence[Path]) -> tuple[list[str | None], dict[int, str]]:
    """The cache key (content digest) of each file, None with an error for unreadable ones."""
    keys: list[str | None] = []
    errors: dict[int, str] = {}
    for i, p in enumerate(files):
        try:
            keys.append(file_digest(p))
        except OSError as exc:
            keys.append(None)
            errors[i] = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
    return keys, errors


def embed_image_files(
    model: Encoder,
    paths: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    show_progress: bool = True,
    flip: bool = False,
    features_only: bool = False,
) -> ImageBatchResult:
    """Embed image files; corrupt ones are skipped and reported, never fatal.

    With our dual encoder the cached unit is the tower's feature vector (and `features_only`
    returns those instead of projected embeddings); with other encoders it is the final vector.
    """
    import torch

    from crossmodal.models.dual import DualEncoder

    files = [Path(p) for p in paths]
    dual = model if isinstance(model, DualEncoder) else None
    how = _image_embedding(model, features_only)
    namespace = how.namespace + (":flip" if flip else "")
    cache = FeatureCache(cache_dir, namespace) if cache_dir is not None else None
    keys, errors = _file_keys(files)
    hits = cache.get_many([k for k in keys if k]) if cache else {}
    todo = [i for i, k in enumerate(keys) if k is not None and k not in hits]

    def persist(batch: dict[int, np.ndarray]) -> None:
        if cache is not None:
            cache.put_many((keys[i], v) for i, v in batch.items())  # type: ignore[misc]  # keys[i] is a str for every computed i

    computed, failed = _run_pipeline(
        files,
        todo,
        how.transform,
        how.compute,
        batch_size,
        "embedding images",
        show_progress,
        flip,
        on_batch=persist,
        draft_size=how.draft_size,
    )
    errors.update(failed)
    if cache:
        cache.close()
    ok = np.array([i not in errors for i in range(len(files))], dtype=bool)
    # (a file without a key is in `errors`, so `ok[i]` implies `key is not None`)
    rows = [
        computed[i] if i in computed else hits[key]
        for i, key in enumerate(keys)
        if ok[i] and key is not None
    ]
    dim = model.dim
    if dual is not None:
        assert dual.image_tower is not None
        dim = dual.image_tower.feature_dim
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    if dual is not None and not features_only and len(vectors):
        with torch.inference_mode():
            vectors = dual.project_images(torch.from_numpy(vectors)).numpy()
    failures = [(files[i], errors[i]) for i in sorted(errors)]
    return ImageBatchResult(vectors=vectors, ok=ok, failures=failures)


def embed_texts(
    model: Encoder,
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    show_progress: bool = True,
    features_only: bool = False,
    multilingual: bool | None = None,
) -> np.ndarray:
    """Embed texts with a cache; for the dual encoder the cache holds text-tower features.

    `multilingual=None` routes each text as the model would (CJK -> multilingual tower);
    True/False forces one tower for all texts (used when training the multilingual head).
    """
    import torch

    from crossmodal.models.dual import DualEncoder

    texts = list(texts)
    if not isinstance(model, DualEncoder):
        if features_only:
            raise ValueError("features_only needs a crossmodal dual encoder")
        namespace = f"text-embeddings:{model.fingerprint}"
        cache = FeatureCache(cache_dir, namespace) if cache_dir is not None else None
        return _cached_texts(
            texts,
            cache,
            lambda chunk: model.encode_texts(chunk, batch_size=len(chunk)),
            batch_size,
            show_progress,
            model.dim,
        )
    routes = model.route_texts(texts) if multilingual is None else [multilingual] * len(texts)
    out: np.ndarray | None = None
    for route in (False, True):
        idx = [i for i, r in enumerate(routes) if r == route]
        if not idx:
            continue
        tower = model.multilingual_tower if route else model.text_tower
        assert tower is not None
        namespace = f"text-features:{model.text_tower_fingerprint(route)}"
        cache = FeatureCache(cache_dir, namespace) if cache_dir is not None else None

        def compute(chunk: list[str], route: bool = route) -> np.ndarray:
            with torch.inference_mode():
                return model.text_features(chunk, route).float().numpy()

        feats = _cached_texts(
            [texts[i] for i in idx],
            cache,
            compute,
            batch_size,
            show_progress,
            tower.feature_dim,
        )
        if not features_only:
            with torch.inference_mode():
                feats = model.project_texts(torch.from_numpy(feats), route).numpy()
                if route and multilingual is None and model.gloss_weight > 0:
                    # as encode_texts does: Chinese queries blended with their gloss
                    feats = model.blend_glosses([texts[i] for i in idx], feats)
        if out is None:
            out = np.zeros((len(texts), feats.shape[1]), np.float32)
        out[idx] = feats
    if out is None:
        return np.zeros((0, model.dim), np.float32)
    return out


def _cached_texts(
    texts: list[str],
    cache: FeatureCache | None,
    compute: Callable[[list[str]], np.ndarray],
    batch_size: int,
    show_progress: bool,
    dim: int,
) -> np.ndarray:
    keys = [text_digest(t) for t in texts]
    hits = cache.get_many(keys) if cache else {}
    todo = list(dict.fromkeys(i for i, k in enumerate(keys) if k not in hits))
    seen: dict[str, int] = {}
    todo = [i for i in todo if seen.setdefault(keys[i], i) == i]
    new: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(todo), desc="embedding texts", unit="text", disable=not show_progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        vecs = compute([texts[i] for i in chunk])
        batch = {keys[i]: v for i, v in zip(chunk, vecs, strict=True)}
        new.update(batch)
        if cache:
            cache.put_many(batch.items())
        bar.update(len(chunk))
    bar.close()
    if cache:
        cache.close()
    table = {**hits, **new}
    if not texts:
        return np.zeros((0, dim), np.float32)
    return np.stack([table[k] for k in keys]).astype(np.float32)


__all__ = [
    "FeatureCache",
    "ImageBatchResult",
    "default_cache_dir",
    "embed_image_files",
    "embed_texts",
    "file_digest",
    "l2_normalize",
    "text_digest",
]
