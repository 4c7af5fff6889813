"""A gallery on disk: index a photo folder incrementally, search it four ways.

A collection is one folder:

    catalog.sqlite        rows of images and texts, with their vectors (the source of truth)
    images.g<N>.faiss     exact inner-product index of image vectors, as of generation N
                          (images.g<N>.ann: an approximate one, HNSW or IVF-PQ)
    texts.g<N>.faiss      the same for caption / annotation vectors
    lock                  held (flock) by the one process that is changing the collection

Vectors are committed to SQLite in the same transaction as their rows, batch by batch, and the
FAISS files are caches rebuilt whenever their generation is not the catalogue's (see
`crossmodal.index.catalog`), so an indexing run killed at any moment - even with `kill -9` -
and started again ends with every file indexed exactly once.

Search directions: t2i (text -> images), i2i (image -> images), i2t (image -> captions and
annotations), t2t (text -> captions and annotations). Queries may combine several texts and
images with weights ("a dog" + beach.jpg - "snow"); their vectors are summed and renormalised.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from crossmodal.data import is_image_file, load_image, read_captions_file
from crossmodal.errors import CollectionError, CrossmodalError, ImageLoadError
from crossmodal.fsnames import shown
from crossmodal.index.ann import (
    ALL_KINDS,
    APPROXIMATE_KINDS,
    SAMPLE_QUERIES,
    ApproximateStore,
    BuildInfo,
    choose_kind,
    load_any_store,
    near_rows,
    new_store,
    parse_memory,
    with_combinations,
)
from crossmodal.index.catalog import Catalog, ImageRow, database_error
from crossmodal.index.pipeline import file_sha1, iter_embedded_batches
from crossmodal.index.store import FlatIPStore, VectorStore
from crossmodal.models.base import Encoder
from crossmodal.models.hubness import HubnessCorrection, query_columns, stored_dim

# parse_query lives in a light module so the CLI can check a query without importing torch
from crossmodal.search_options import parse_query

__all__ = [
    "MODES",
    "Collection",
    "ImageRecord",
    "IndexFailure",
    "IndexReport",
    "QueryItem",
    "SearchHit",
    "default_collection_path",
    "parse_query",
]

CATALOG_FILE = "catalog.sqlite"
LOCK_FILE = "lock"
DEFAULT_MODEL = "default"
MODES = ("auto", "t2i", "i2i", "i2t", "t2t")
#: modes whose query and results are of different kinds (the hubness correction applies)
CROSS_MODAL = ("t2i", "i2t")
_TABLES = ("images", "texts")
#: Text query vectors a collection keeps: an app or a notebook asks the same queries again
#: (paging, refining "a dog +beach"), and each costs a text-tower forward (~5-10 ms on CPU).
QUERY_CACHE_SIZE = 256

#: One query term: a text, a PIL image, or the path of an image file.
QueryItem: TypeAlias = str | Path | Image.Image


def default_collection_path() -> Path:
    """$CROSSMODAL_COLLECTION, else $XDG_DATA_HOME/crossmodal/default (~/.local/share/...)."""
    env = os.environ.get("CROSSMODAL_COLLECTION")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "crossmodal" / "default"


# ---- results ------------------------------------------------------------------------------
@dataclass
class SearchHit:
    """One result. `kind` is "image" (t2i, i2i) or "text" (i2t, t2t: `text` is the caption or
    annotation found, `path` the image it describes). `id` is always the image's catalogue id."""

    rank: int
    score: float
    id: int
    path: str
    text: str | None = None
    caption: str | None = None
    kind: str = "image"
    text_id: int | None = None
    #: the path inside the indexed folder it was found in
    relpath: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # field by field: `asdict` deep-copies each value, ~10x the time, and a server shapes
        # every hit of every answer (its Python time is taken from the GIL of the forwards)
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "id": self.id,
            "path": shown(self.path),  # JSON: the name as text (the raw one is `self.path`)
            "text": self.text,
            "caption": self.caption,
            "kind": self.kind,
            "text_id": self.text_id,
            "relpath": shown(self.relpath) if self.relpath is not None else None,
        }


@dataclass
class ImageRecord:
    id: int
    path: str
    root: str
    relpath: str
    hash: str
    size: int
    mtime: float
    width: int | None
    height: int | None
    indexed_at: float
    captions: list[str] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)


_ADVICE = (
    ("empty file", "re-copy it from the original, or delete it"),
    ("truncated or corrupt", "the file is damaged: re-copy it from the original"),
    ("not an image", "it is not a picture in a format Pillow reads: convert or move it"),
    ("too large", "downscale it to index it"),
    ("cannot read", "check the file's permissions"),
    ("file not found", "it disappeared during the run"),
    ("not a regular file", "point the index at regular files only"),
    ("dangling symlink", "its target is gone: fix or delete the link"),
    ("symlink loop", "the link points back into its own path: fix or delete it"),
    ("symlinked folder", "links to folders are not followed (they could loop): index the target"),
    ("cannot read folder", "check the folder's permissions"),
)
#: reasons of things the scan skipped (not files that failed to decode): not remembered
_SCAN_REASONS = ("dangling symlink", "symlink loop", "symlinked folder", "cannot read folder")


@dataclass
class IndexFailure:
    """A file that was skipped; `remembered` when it failed on an earlier run and is unchanged."""

    path: str
    reason: str
    remembered: bool = False

    @property
    def message(self) -> str:
        advice = next((a for key, a in _ADVICE if self.reason.startswith(key)), "check the file")
        scanned = self.reason.startswith(_SCAN_REASONS)
        retried = "" if scanned else " (it is retried when it changes)"
        return f"skipping {shown(self.path)}: {shown(self.reason)}; {advice}{retried}."


@dataclass
class IndexReport:
    root: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    moved: int = 0
    unchanged: int = 0
    captions: int = 0
    failed: list[IndexFailure] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    @property
    def images_per_second(self) -> float:
        """Embedded files per second of the embedding phase (decode + model + commit)."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        parts = [
            f"{self.added} added",
            f"{self.updated} updated",
            f"{self.moved} moved",
            f"{self.removed} removed",
            f"{self.unchanged} unchanged",
            f"{len(self.failed)} skipped",
        ]
        if self.captions:
            parts.append(f"{self.captions} captions")
        speed = f", {self.images_per_second:.1f} images/s" if self.embedded else ""
        return f"{shown(self.root)}: " + ", ".join(parts) + f" in {self.seconds:.1f} s{speed}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_second"] = round(self.images_per_second, 2)
        return out


# ---- queries ------------------------------------------------------------------------------
def _is_file(token: str) -> bool:
    try:
        return Path(token).expanduser().is_file()
    except (OSError, ValueError):
        return False


# ---- the collection -----------------------------------------------------------------------
@dataclass
class _Job:
    relpath: str
    path: Path
    size: int
    mtime_ns: int
    image_id: int | None = None  # set when the file replaces an indexed version


class Collection:
    """A gallery folder: open, index, search. Thread-safe for one process's readers and writer.

    Use `Collection.open(path, model=None, create=False)`. `model` is a registry name, a model
    folder or an `Encoder`; by default the model the collection was built with. A collection
    built with one model refuses another (their vectors live in different spaces).
    """

    def __init__(
        self, path: Path, catalog: Catalog, model: str | Encoder | None, rebuild: bool = False
    ) -> None:
        self.path = path
        self.catalog = catalog
        self._lock = threading.RLock()
        self._model: Encoder | None = None
        self._model_spec: str | None = None
        self._stores: dict[str, VectorStore] = {}
        self._store_gen: dict[str, int] = {}
        self._saved_gen: dict[str, int] = {}
        self._lock_file: Any = None
        self._lock_depth = 0
        self._rebuild = rebuild
        # text -> unit vector of recent text queries (OrderedDict as an LRU; its own lock,
        # since `_lock` is held by a writer for a whole index run)
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_lock = threading.Lock()
        if isinstance(model, Encoder):
            self._use_model(model)
        else:
            self._model_spec = model

    # ---- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        model: str | Encoder | None = None,
        create: bool = False,
        store: str | None = None,
        rebuild: bool = False,
        max_index_memory: str | int | None = None,
    ) -> Collection:
        """Open the collection at `path` (default: `default_collection_path()`).

        `create=True` makes it if missing. `store` picks the vector store of a new collection:
        "auto" (the default: exact while that is fast, then the fastest approximate store that
        keeps recall@10 >= 0.95 and fits `max_index_memory`, by the thresholds of
        benchmarks/scale.py), "flat" (exact fp32), "flat-fp16" (every vector scanned, half
        the memory and about twice the speed per query, scores within ~1e-4), "hnsw",
        "hnsw-fp16" or "ivfpq" (crossmodal/index/ann.py). `max_index_memory` ("4G", bytes)
        is a budget for "auto", kept in the catalogue. `rebuild=True`:
        if the collection was built with another model (or another version of this one, as
        when the shipped default is retrained), forget its vectors so that the next `index`
        re-embeds everything, instead of refusing.
        """
        if store is not None and store not in ALL_KINDS:
            raise CollectionError(f"unknown store {store!r}: use one of {', '.join(ALL_KINDS)}")
        budget = parse_memory(str(max_index_memory)) if max_index_memory is not None else None
        path = (
            Path(path).expanduser() if path is not None else default_collection_path()
        ).absolute()
        catalog_file = path / CATALOG_FILE
        if not catalog_file.is_file():
            if not create:
                raise CollectionError(
                    f"no collection at {path}: create it with "
                    f"`crossmodal index DIR --collection {path}`"
                )
            if path.exists() and not path.is_dir():
                raise CollectionError(f"cannot create a collection at {path}: it is a file")
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CollectionError(f"cannot create a collection at {path}: {exc}") from exc
        if isinstance(model, str):
            model = _normalise_model_name(model)
        collection = cls(path, Catalog(catalog_file), model, rebuild)
        recorded_store = collection.catalog.get_meta("store")
        if recorded_store is None:
            collection.catalog.set_meta("store", store or "auto")
        elif store is not None and store != recorded_store:
            raise CollectionError(
                f"collection {path} uses the {recorded_store!r} store, not {store!r}: "
                "index into a new collection to change it"
            )
        if budget is not None and str(budget) != collection.catalog.get_meta("max_index_memory"):
            collection.catalog.set_meta("max_index_memory", str(budget))
        if rebuild and collection.catalog.get_meta("model_fingerprint") is not None:
            _ = collection.model  # compare fingerprints now, before anything is skipped
        elif isinstance(model, str):
            recorded = collection.catalog.get_meta("model_name")
            if recorded is None or recorded != model:
                # load now: a different name may still be the same weights (fingerprints decide)
                _ = collection.model
        return collection

    def close(self) -> None:
        with self._lock:
            self._try_save()
            self.catalog.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r})"

    # ---- the model ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return (
            self.catalog.get_meta("model_name")
            or (self._model.name if self._model is not None else None)
            or self._model_spec
            or DEFAULT_MODEL
        )

    @property
    def model(self) -> Encoder:
        """The encoder (loaded on first use: opening a collection for stats needs none)."""
        with self._lock:
            if self._model is None:
                from crossmodal.models import load_model

                name = self._model_spec or self.catalog.get_meta("model_name") or DEFAULT_MODEL
                self._use_model(load_model(name))
            assert self._model is not None
            return self._model

    def _use_model(self, model: Encoder) -> None:
        fingerprint = model.fingerprint
        recorded = self.catalog.get_meta("model_fingerprint")
        if recorded is not None and recorded != fingerprint:
            name = self.catalog.get_meta("model_name")
            if self._rebuild:
                self._reset_vectors()
                recorded = None
            elif name == model.name:
                raise CollectionError(
                    f"collection {self.path} was built with another version of model {name!r} "
                    f"({recorded}, now {fingerprint}): its vectors no longer match; index "
                    "again with --rebuild to re-embed everything"
                )
            else:
                raise CollectionError(
                    f"collection {self.path} was built with model {name!r} ({recorded}) and "
                    f"cannot be used with model {model.name!r} ({fingerprint}): drop --model "
                    f"to use {name!r}, index into a new collection with --collection, or "
                    "re-embed everything with --rebuild"
                )
        with self._text_cache_lock:
            self._text_cache.clear()  # vectors of another model
        if recorded is None:
            with self.catalog.transaction():
                self.catalog.set_meta("model_name", model.name)
                self.catalog.set_meta("model_fingerprint", fingerprint)
                self.catalog.set_meta("dim", str(model.dim))
                self.catalog.set_meta("created_at", str(time.time()))
        self._model = model

    @property
    def dim(self) -> int:
        recorded = self.catalog.get_meta("dim")
        return int(recorded) if recorded else self.model.dim

    # ---- vector stores (caches of the catalogue) ---------------------------------------------
    def _reset_vectors(self) -> None:
        """Forget every image, text and failure (the model changed): the next index run
        embeds the folders again. Annotations go too: they are only as good as their vectors."""
        with self._writing():
            with self.catalog.transaction() as con:
                for table in ("texts", "images", "failures"):
                    con.execute(f"DELETE FROM {table}")
                for key in ("model_name", "model_fingerprint", "dim"):
                    con.execute("DELETE FROM meta WHERE key=?", (key,))
                for table in _TABLES:
                    self.catalog.bump_generation(table)
            self._stores.clear()
            self._store_gen.clear()
            for old in [*self.path.glob("*.faiss"), *self.path.glob("*.ann")]:
                with contextlib.suppress(OSError):
                    old.unlink()

    def _store_file(self, table: str, generation: int, kind: str = "flat") -> Path:
        # the hubness correction's digest is in the name: a store built with other offsets
        # (another bank, k or weight) is never loaded, only rebuilt from the catalogue
        correction = self._hubness()
        tag = f".h{correction.digest}" if correction is not None else ""
        suffix = ".ann" if kind in APPROXIMATE_KINDS else ".faiss"
        return self.path / f"{table}.g{generation}{tag}{suffix}"

    def _store_setting(self) -> str:
        return self.catalog.get_meta("store") or "flat"

    def _kind_for(self, rows: int) -> str:
        """The store kind for `rows` rows: the collection's setting, or auto's choice."""
        setting = self._store_setting()
        if setting != "auto":
            return setting
        budget = self.catalog.get_meta("max_index_memory")
        return choose_kind(rows, self._stored_dim(), int(budget) if budget else None)

    def _stored_dim(self) -> int:
        return self.dim if self._hubness() is None else stored_dim(self.dim)

    def _build_store(
        self, table: str, kind: str | None = None, show_progress: bool = False
    ) -> tuple[int, VectorStore]:
        """(generation, store) built from the catalogue's vectors: the cache rebuilt."""
        generation, ids, vectors = self.catalog.load_vectors(table, self.dim)
        store = new_store(kind or self._kind_for(len(ids)), self._stored_dim())
        rows = self._store_rows(table, vectors)
        if isinstance(store, ApproximateStore):
            store.build(ids, rows, self._sample_queries(table), show_progress=show_progress)
        else:
            store.add(ids, rows)
        return generation, store

    def _sample_queries(self, table: str) -> np.ndarray | None:
        """Queries to tune an approximate store on: vectors of the other table (captions for
        images, images for captions), else the table's own rows moved by noise; as
        cross-modal queries (with a 1 in the hubness column, like the searches that use it)."""
        other = "texts" if table == "images" else "images"
        rng = np.random.default_rng(0)
        sample = self.catalog.sample_vectors(other, SAMPLE_QUERIES // 2, self.dim)
        if not len(sample):
            own = self.catalog.sample_vectors(table, SAMPLE_QUERIES // 2, self.dim)
            sample = near_rows(own, rng)
            sample /= np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-12)
        if not len(sample):
            return None
        sample = with_combinations(sample, rng)
        return sample if self._hubness() is None else query_columns(sample, cross_modal=True)

    def store_info(self, table: str = "images") -> dict[str, Any]:
        """What the store of `table` is: kind, rows, memory, recall@10 against exact."""
        store = self._store(table)
        if isinstance(store, ApproximateStore):
            info = asdict(store.info)
            info.update(rows=len(store), memory_bytes=store.memory_bytes())
            info.update(disk_bytes=store.disk_bytes(), tombstones=store.tombstones)
            return info
        assert isinstance(store, FlatIPStore)
        per_row = (2 if store.kind == "flat-fp16" else 4) * store.dim + 8
        return asdict(BuildInfo(store.kind, len(store), 0.0, recall_at_10=1.0)) | {
            "memory_bytes": per_row * len(store),
            "built_at": None,
        }

    def _hubness(self) -> HubnessCorrection | None:
        """The model's hubness correction (crossmodal/models/hubness.py): when there is one,
        every stored row carries its offset as one extra coordinate."""
        return self.model.hubness

    def _store_rows(self, table: str, vectors: np.ndarray) -> np.ndarray:
        correction = self._hubness()
        return vectors if correction is None else correction.augment(vectors, table)

    def _store(self, table: str) -> VectorStore:
        """The in-memory store of `table`, reloaded when another process committed since."""
        with self._lock:
            generation = self.catalog.generation(table)
            store = self._stores.get(table)
            if store is not None and self._store_gen.get(table) == generation:
                return store
            dim = self._stored_dim()
            store = None
            setting = self._store_setting()
            # "auto" takes whichever kind a writer built (it rebuilds when the size calls
            # for another one: `_refresh_stores`)
            for file in (
                self._store_file(table, generation, "flat"),
                self._store_file(table, generation, "hnsw"),
            ):
                if store is not None or not file.is_file():
                    continue
                with contextlib.suppress(CollectionError, OSError):
                    loaded = load_any_store(file)
                    if (
                        loaded.dim == dim
                        and (loaded.kind == setting or setting == "auto")
                        and len(loaded) == self.catalog.count(table)
                    ):
                        store = loaded
                        self._saved_gen[table] = generation
            rebuilt = store is None
            if store is None:  # missing or stale cache: rebuild from the catalogue's vectors
                generation, store = self._build_store(table)
            self._stores[table] = store
            self._store_gen[table] = generation
            if rebuilt and len(store):
                self._try_save()  # so that the next process loads it instead of rebuilding
            return store

    def rebuild_caches(self) -> None:
        """Build every FAISS cache again from the catalogue's vectors and save it."""
        with self._writing():
            self._stores.clear()
            self._store_gen.clear()
            self._saved_gen.clear()
            for old in self.path.glob("*.faiss"):
                with contextlib.suppress(OSError):
                    old.unlink()
            for table in _TABLES:
                self._store(table)
            self._save_stores()

    def _load_stores(self, *tables: str) -> None:
        """Load (current) stores before a transaction changes them, so the change can be
        applied to them incrementally after the commit instead of by a rebuild."""
        for table in tables:
            self._store(table)

    def _save_stores(self) -> None:
        """Write each changed store under its generation; drop older files (lock held)."""
        assert self._lock_depth, "stores are saved only under the writer lock"
        # from a process killed mid-save (or mid-rebuild)
        for leftover in [*self.path.glob("*.faiss.*.tmp"), *self.path.glob("*.ann.*.tmp")]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        for table, store in self._stores.items():
            generation = self._store_gen.get(table)
            if generation is None or self._saved_gen.get(table) == generation:
                continue
            if self.catalog.generation(table) != generation:
                continue  # someone committed after us: our copy is not the current state
            file = self._store_file(table, generation, store.kind)
            store.save(file)  # a temporary file renamed into place: never half written
            self._saved_gen[table] = generation
            with self.catalog.transaction():  # for `stats`, which loads no store
                self.catalog.set_meta(f"store_info.{table}", json.dumps(self.store_info(table)))
            for old in [*self.path.glob(f"{table}.g*.faiss"), *self.path.glob(f"{table}.g*.ann")]:
                if old.name != file.name:
                    with contextlib.suppress(OSError):
                        old.unlink()

    def _refresh_stores(self, force: bool = False, show_progress: bool = False) -> list[str]:
        """Rebuild (writer lock held) each loaded store whose tombstones or growth call for it,
        or whose kind the collection's size no longer calls for; `force`: every store. The
        catalogue is not touched and the new file replaces the old one atomically, so a
        process killed meanwhile loses nothing: the old file, or the catalogue, still serves.
        Returns the tables rebuilt."""
        assert self._lock_depth, "stores are rebuilt only under the writer lock"
        done = []
        # not forced: only stores this process loaded (a run that changed nothing loads no
        # store, and no model)
        for table in _TABLES if force else [t for t in _TABLES if t in self._stores]:
            store = self._store(table)
            due = force or (isinstance(store, ApproximateStore) and store.needs_rebuild)
            kind = self._kind_for(len(store))
            if not due and store.kind == kind:
                continue
            generation, fresh = self._build_store(table, kind, show_progress)
            if generation != self.catalog.generation(table):
                continue  # changed meanwhile (not under our lock?): leave it for next time
            self._stores[table], self._store_gen[table] = fresh, generation
            self._saved_gen.pop(table, None)
            done.append(table)
        self._save_stores()
        return done

    def optimize(self, show_progress: bool = True) -> dict[str, dict[str, Any]]:
        """Rebuild the vector stores from the catalogue (`crossmodal index --optimize`):
        tombstones dropped, the search effort tuned again, the kind the size calls for.
        Returns `store_info` of each table."""
        with self._writing():
            self._refresh_stores(force=True, show_progress=show_progress)
            return {table: self.store_info(table) for table in _TABLES}

    def _commit_changes(self, changes: _Changes) -> None:
        """Apply a committed transaction's vector changes to the loaded stores."""
        for table in _TABLES:
            removed, added_ids, added_vecs = changes.of(table)
            if not (removed or added_ids):
                continue
            store = self._stores.get(table)
            if store is None or table not in changes.generations:
                continue
            store.remove(removed)
            if added_ids:
                store.add(added_ids, self._store_rows(table, np.stack(added_vecs)))
            self._store_gen[table] = changes.generations[table]

    def _acquire(self) -> bool:
        """Take the collection's writer lock (an flock on `lock`, released by the OS when the
        process dies, even by kill -9) without waiting; reentrant within this object."""
        if self._lock_depth:
            self._lock_depth += 1
            return True
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; SQLite still serialises
            self._lock_depth = 1
            return True
        try:
            fh = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 -- closed in _release
        except OSError:  # a read-only collection: searchable, not writable
            return False
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._lock_file, self._lock_depth = fh, 1
        return True

    def _release(self) -> None:
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer per collection; a second one gets a CollectionError, not a wait."""
        with self._lock:
            if not os.access(self.path, os.W_OK):
                raise CollectionError(f"cannot change collection {self.path}: it is read-only")
            if not self._acquire():
                raise CollectionError(
                    f"collection {self.path} is being changed by another process "
                    "(an index run?): wait for it to finish and try again"
                )
            try:
                yield
            finally:
                self._release()

    def _try_save(self) -> None:
        """Save changed stores if no other process is writing (else that writer will)."""
        with self._lock:
            if not self._acquire():
                return
            try:
                with contextlib.suppress(OSError, CrossmodalError):
                    self._save_stores()
            finally:
                self._release()

    # ---- indexing ---------------------------------------------------------------------------
    def index(
        self,
        directory: str | Path,
        captions: str | Path | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
        only: Iterable[str] | None = None,
        retry_failed: bool = False,
    ) -> IndexReport:
        """Bring the collection up to date with `directory` (recursively); returns what changed.

        New files are embedded, changed ones re-embedded, deleted ones removed, moved ones (same
        content) re-pathed without embedding. Undecodable files are reported and remembered,
        and not retried until they change (or `retry_failed`). `captions` (captions.tsv,
        captions.json, a Flickr8k token file) attaches texts to images by file name, for
        i2t / t2t search. `only` restricts the run to these file names (or relative paths).
        """
        if batch_size < 1:
            raise CrossmodalError(f"batch size must be at least 1 (got {batch_size})")
        started = time.perf_counter()
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            raise CollectionError(
                f"{directory} is not a folder: give the folder of photos to index"
            )
        # as given (made absolute), not resolved: a folder reached through a link is indexed
        # under the link's path, and a link and its target are two entries
        folder = Path(os.path.abspath(folder))
        caption_map = read_captions_file(captions) if captions is not None else None
        only_set = {str(o).strip() for o in only if str(o).strip()} if only is not None else None
        report = IndexReport(root=str(folder))
        with self._writing():
            # a run must not add to (and report success on) a damaged file: one read of
            # every page first (~0.1 s per 100 MB)
            damage = self.catalog.quick_check()
            if damage:
                raise database_error(self.catalog.path, sqlite3.DatabaseError(damage[0]))
            root_id, prefix = self._root_for(folder)
            root_path = Path(self.catalog.roots()[root_id])
            files, skipped = _scan(folder, root_path, only_set, show_progress)
            report.failed += skipped
            rows = self.catalog.images_under(root_id, prefix)
            failures = self.catalog.failures_under(root_id, prefix)

            jobs: list[_Job] = []
            stat_changed: list[tuple[_Job, ImageRow]] = []
            new: list[_Job] = []
            for rel, (path, size, mtime_ns) in files.items():
                row = rows.get(rel)
                job = _Job(rel, path, size, mtime_ns)
                if row is not None:
                    if row["size"] == size and row["mtime_ns"] == mtime_ns:
                        report.unchanged += 1
                    else:
                        stat_changed.append((job, row))
                    continue
                failed = failures.get(rel)
                if (
                    failed is not None
                    and not retry_failed
                    and failed["size"] == size
                    and failed["mtime_ns"] == mtime_ns
                ):
                    report.failed.append(IndexFailure(str(path), failed["reason"], True))
                    continue
                new.append(job)

            # a folder that could not be listed still holds its files: its rows stay
            unread = tuple(
                (Path(f.path).relative_to(root_path).as_posix() + "/").removeprefix("./")
                for f in skipped
                if f.reason.startswith("cannot read folder")
                and Path(f.path).is_relative_to(root_path)
            )
            missing = [
                row
                for rel, row in rows.items()
                if rel not in files
                and not (unread and (rel + "/").startswith(unread))
                and (only_set is None or not (root_path / rel).exists())
            ]
            # a moved file has the same size and hash as a missing row: hash only those
            by_size: dict[int, list[ImageRow]] = {}
            for row in missing:
                by_size.setdefault(row["size"], []).append(row)
            candidates = [j for j in new if j.size in by_size]
            digests = _hash_all([j.path for j in candidates] + [j.path for j, _ in stat_changed])
            moves: list[tuple[_Job, ImageRow]] = []
            for job in candidates:
                digest = digests.get(job.path)
                match = next(
                    (r for r in by_size[job.size] if digest is not None and r["hash"] == digest),
                    None,
                )
                if match is not None:
                    by_size[job.size].remove(match)
                    moves.append((job, match))
            moved_paths = {job.relpath for job, _ in moves}
            jobs = [j for j in new if j.relpath not in moved_paths]
            touched: list[tuple[_Job, ImageRow]] = []
            for job, row in stat_changed:
                if digests.get(job.path) == row["hash"]:
                    touched.append((job, row))
                else:
                    job.image_id = row["id"]
                    jobs.append(job)
            moved_ids = {row["id"] for _, row in moves}
            gone = [row["id"] for row in missing if row["id"] not in moved_ids]

            # moves, deletions and stat refreshes first, in one transaction
            if moves or gone or touched:
                self._load_stores(*(_TABLES if gone else ()))
                with self.catalog.transaction():
                    changes = _Changes()
                    for job, row in moves:
                        self.catalog.move_image(
                            row["id"], root_id, job.relpath, job.size, job.mtime_ns
                        )
                    for job, row in touched:
                        self.catalog.touch_image(row["id"], job.size, job.mtime_ns)
                    if gone:
                        changes.removed["texts"] += self.catalog.delete_images(gone)
                        changes.removed["images"] += gone
                    changes.bump(self.catalog)
                self._commit_changes(changes)
            report.moved, report.removed = len(moves), len(gone)
            report.unchanged += len(touched)
            stale = [rel for rel in failures if rel not in files and only_set is None]
            if stale:
                self.catalog.clear_failures(root_id, stale)

            jobs.sort(key=lambda j: j.relpath)
            embed_started = time.perf_counter()
            try:
                # the model is loaded only when there is something to embed: a run that finds
                # nothing new (a nightly cron job) takes a second, not a model load
                self._embed_jobs(root_id, jobs, caption_map, batch_size, show_progress, report)
                if caption_map is not None:
                    self._sync_captions(
                        root_id, prefix, caption_map, batch_size, report, show_progress
                    )
            finally:
                report.embed_seconds = time.perf_counter() - embed_started
                self._save_stores()
            self._refresh_stores(show_progress=show_progress)
        report.seconds = time.perf_counter() - started
        return report

    def _root_for(self, folder: Path) -> tuple[int, str]:
        """(root id, path prefix inside it) for an indexed folder, in one transaction.

        A folder inside an indexed root belongs to that root (no second copy of its photos);
        a folder holding indexed roots absorbs them (their rows are re-pathed, not re-embedded).
        """
        with self.catalog.transaction():
            roots = self.catalog.roots()
            containing = [
                (rid, Path(r)) for rid, r in roots.items() if folder.is_relative_to(Path(r))
            ]
            if containing:
                root_id, top = min(containing, key=lambda item: len(item[1].parts))
                prefix = "" if folder == top else folder.relative_to(top).as_posix()
            else:
                root_id, top, prefix = self.catalog.add_root(str(folder)), folder, ""
            for child_id, child in roots.items():
                child_path = Path(child)
                if child_id != root_id and child_path.is_relative_to(top):
                    dropped = self.catalog.merge_root(
                        child_id, root_id, child_path.relative_to(top).as_posix()
                    )
                    if dropped:  # duplicates of rows the parent has: their vectors went too
                        for table in _TABLES:
                            self.catalog.bump_generation(table)
        return root_id, prefix

    def _embed_jobs(
        self,
        root_id: int,
        jobs: list[_Job],
        caption_map: dict[str, list[str]] | None,
        batch_size: int,
        show_progress: bool,
        report: IndexReport,
    ) -> None:
        if not jobs:
            return
        model = self.model
        self._load_stores(*_TABLES)
        bar = tqdm(total=len(jobs), desc="indexing", unit="img", disable=not show_progress)
        try:

            def captions_of(index: int) -> list[str]:
                return (caption_map or {}).get(jobs[index].path.name, [])

            batches = iter_embedded_batches(
                model,
                [j.path for j in jobs],
                batch_size=batch_size,
                on_progress=bar.update,
                texts_for=captions_of if caption_map is not None else None,
            )
            for loaded, vectors, text_vecs in batches:
                ok = [x for x in loaded if x.error is None]
                # (position in ok, captions), in the order their vectors are in text_vecs
                texts = [(n, found) for n, x in enumerate(ok) if (found := captions_of(x.index))]
                changes = _Changes()
                with self.catalog.transaction():
                    owner: dict[int, int] = {}
                    for n, x in enumerate(ok):
                        job = jobs[x.index]
                        assert x.digest is not None
                        if job.image_id is not None:
                            self.catalog.replace_image(
                                job.image_id,
                                x.digest,
                                job.size,
                                job.mtime_ns,
                                x.width,
                                x.height,
                                vectors[n],
                            )
                            image_id = job.image_id
                            changes.removed["images"].append(image_id)
                            report.updated += 1
                        else:
                            image_id = self.catalog.insert_image(
                                root_id,
                                job.relpath,
                                x.digest,
                                job.size,
                                job.mtime_ns,
                                x.width,
                                x.height,
                                vectors[n],
                            )
                            report.added += 1
                        owner[n] = image_id
                        changes.add("images", image_id, vectors[n])
                    start = 0
                    for n, found in texts:
                        vecs = text_vecs[start : start + len(found)]
                        start += len(found)
                        changes.removed["texts"] += self.catalog.delete_texts(owner[n], "caption")
                        for tid, vec in zip(
                            self.catalog.add_texts(owner[n], "caption", found, vecs),
                            vecs,
                            strict=True,
                        ):
                            changes.add("texts", tid, vec)
                        report.captions += len(found)
                    if ok:
                        self.catalog.clear_failures(root_id, [jobs[x.index].relpath for x in ok])
                    for x in loaded:
                        if x.error is None:
                            continue
                        job = jobs[x.index]
                        assert x.error is not None
                        if job.image_id is not None:  # the new version of an indexed file is bad
                            changes.removed["texts"] += self.catalog.delete_images([job.image_id])
                            changes.removed["images"].append(job.image_id)
                            report.removed += 1
                        self.catalog.set_failure(
                            root_id, job.relpath, job.size, job.mtime_ns, x.error
                        )
                        report.failed.append(IndexFailure(str(job.path), x.error))
                    changes.bump(self.catalog)
                self._commit_changes(changes)
        finally:
            bar.close()

    def _sync_captions(
        self,
        root_id: int,
        prefix: str,
        caption_map: dict[str, list[str]],
        batch_size: int,
        report: IndexReport,
        show_progress: bool,
    ) -> None:
        """Give already-indexed images the captions the file lists for them, if they differ."""
        rows = self.catalog.images_under(root_id, prefix)
        have = self.catalog.texts_of([r["id"] for r in rows.values()], "caption")
        todo = [
            (row["id"], caption_map[name])
            for rel, row in rows.items()
            if (name := rel.rsplit("/", 1)[-1]) in caption_map
            and have.get(row["id"], []) != caption_map[name]
        ]
        per_batch = max(1, batch_size)
        if not todo:
            return
        _ = self.model  # loaded before the first transaction, not inside it
        self._load_stores("texts")
        bar = tqdm(total=len(todo), desc="captions", unit="img", disable=not show_progress)
        for start in range(0, len(todo), per_batch):
            chunk = todo[start : start + per_batch]
            flat = [t for _, ts in chunk for t in ts]
            vectors = self.model.encode_texts(flat)
            changes = _Changes()
            with self.catalog.transaction():
                offset = 0
                for image_id, found in chunk:
                    vecs = vectors[offset : offset + len(found)]
                    offset += len(found)
                    changes.removed["texts"] += self.catalog.delete_texts(image_id, "caption")
                    for tid, vec in zip(
                        self.catalog.add_texts(image_id, "caption", found, vecs), vecs, strict=True
                    ):
                        changes.add("texts", tid, vec)
                    report.captions += len(found)
                changes.bump(self.catalog)
            self._commit_changes(changes)
            bar.update(len(chunk))
        bar.close()

    # ---- other changes ----------------------------------------------------------------------
    def remove(self, paths: Iterable[str | Path]) -> int:
        """Forget these files, or everything under these folders; returns images removed."""
        removed = 0
        with self._writing():
            roots = self.catalog.roots()
            for given in paths:
                # compared as given (absolute), never through links: `links/a.jpg` is not
                # its target's row
                target = Path(os.path.abspath(Path(given).expanduser()))
                for root_id, root in roots.items():
                    root_path = Path(root)
                    if not (target == root_path or target.is_relative_to(root_path)):
                        continue
                    rel = target.relative_to(root_path).as_posix() if target != root_path else ""
                    rows = self.catalog.images_under(root_id, "")
                    ids = [
                        r["id"]
                        for key, r in rows.items()
                        if not rel or key == rel or key.startswith(rel + "/")
                    ]
                    if ids:
                        self._load_stores(*_TABLES)
                        changes = _Changes()
                        with self.catalog.transaction():
                            changes.removed["texts"] += self.catalog.delete_images(ids)
                            changes.removed["images"] += ids
                            changes.bump(self.catalog)
                        self._commit_changes(changes)
                        removed += len(ids)
            self._save_stores()
        return removed

    def remove_ids(self, ids: Iterable[int]) -> int:
        """Forget the images with these ids (unknown ids are ignored); returns images removed."""
        with self._writing():
            found = list(self.catalog.get_images([int(i) for i in ids]))
            if found:
                self._load_stores(*_TABLES)
                changes = _Changes()
                with self.catalog.transaction():
                    changes.removed["texts"] += self.catalog.delete_images(found)
                    changes.removed["images"] += found
                    changes.bump(self.catalog)
                self._commit_changes(changes)
                self._save_stores()
        return len(found)

    def annotate(self, image_id: int, text: str) -> int:
        """Attach a text to an image (found by t2t / i2t search); returns the text's id."""
        text = (text or "").strip()
        if not text:
            raise CrossmodalError("empty annotation: give the text to attach")
        self._row(image_id)
        vector = self.model.encode_texts([text])[0]
        with self._writing():
            self._load_stores("texts")
            changes = _Changes()
            with self.catalog.transaction():
                (text_id,) = self.catalog.add_texts(image_id, "annotation", [text], vector[None])
                changes.add("texts", text_id, vector)
                changes.bump(self.catalog)
            self._commit_changes(changes)
            self._save_stores()
        return text_id

    # ---- reading ----------------------------------------------------------------------------
    def _row(self, image_id: int) -> ImageRow:
        row = self.catalog.get_images([int(image_id)]).get(int(image_id))
        if row is None:
            raise CollectionError(f"no image with id {image_id} in collection {self.path}")
        return row

    def _path_of(self, row: ImageRow, roots: dict[int, str] | None = None) -> str:
        roots = roots if roots is not None else self.catalog.roots()
        return str(Path(roots[row["root_id"]]) / row["relpath"])

    def get(self, image_id: int) -> ImageRecord:
        row = self._row(image_id)
        roots = self.catalog.roots()
        return ImageRecord(
            id=row["id"],
            path=self._path_of(row, roots),
            root=roots[row["root_id"]],
            relpath=row["relpath"],
            hash=row["hash"],
            size=row["size"],
            mtime=row["mtime_ns"] / 1e9,
            width=row["width"],
            height=row["height"],
            indexed_at=row["indexed_at"],
            captions=self.catalog.texts_of([row["id"]], "caption").get(row["id"], []),
            annotations=self.catalog.texts_of([row["id"]], "annotation").get(row["id"], []),
        )

    def __len__(self) -> int:
        return self.catalog.count("images")

    def stats(self) -> dict[str, Any]:
        meta = self.catalog.meta()
        texts = self.catalog.count_texts()
        disk = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return {
            "path": str(self.path),
            "model": meta.get("model_name"),
            "model_fingerprint": meta.get("model_fingerprint"),
            "dim": int(meta["dim"]) if "dim" in meta else None,
            "schema_version": int(meta.get("schema_version", 0)),
            "store": meta.get("store", "flat"),
            "stores": {
                table: json.loads(meta[f"store_info.{table}"])
                for table in _TABLES
                if f"store_info.{table}" in meta
            },
            "images": self.catalog.count("images"),
            "captions": texts["caption"],
            "annotations": texts["annotation"],
            "failed": self.catalog.count("failures"),
            "roots": sorted(self.catalog.roots().values()),
            "disk_bytes": disk,
        }

    # ---- searching --------------------------------------------------------------------------
    def embed_query(
        self,
        text: str | None = None,
        image: Image.Image | str | Path | None = None,
        query: Sequence[tuple[float, QueryItem]] | None = None,
    ) -> tuple[np.ndarray, bool, bool]:
        """(unit query vector, has a text term, has an image term)."""
        terms: list[tuple[float, QueryItem]] = []
        texts: list[tuple[float, str]] = []
        images: list[tuple[float, Image.Image]] = []
        if text is not None and text.strip():
            texts.append((1.0, text.strip()))  # `text=` is text even if a file has that name
        if image is not None:
            terms.append((1.0, image if isinstance(image, Image.Image) else Path(image)))
        terms += [(float(w), item) for w, item in (query or [])]
        for weight, item in terms:
            if isinstance(item, Image.Image):
                images.append((weight, item.convert("RGB")))
            elif isinstance(item, Path) or (isinstance(item, str) and _is_file(item)):
                images.append((weight, _load_query_image(Path(item), self.model)))
            elif isinstance(item, str):
                if item.strip():
                    texts.append((weight, item.strip()))
            else:
                raise CrossmodalError(f"cannot search with a {type(item).__name__}")
        if not texts and not images:
            raise CrossmodalError("empty query: give a text, the path of an image, or both")
        if any(w == 0 for w, _ in [*texts, *images]):
            raise CrossmodalError("a query term has weight 0: drop it or give it a weight")
        vector = np.zeros(self.dim, np.float32)
        with _one_torch_thread():
            self._embed_terms(vector, texts, images)
        norm = float(np.linalg.norm(vector))
        if norm < 1e-6:
            raise CrossmodalError("the query terms cancel out: change their weights")
        return (vector / norm).astype(np.float32), bool(texts), bool(images)

    def _embed_terms(
        self,
        vector: np.ndarray,
        texts: list[tuple[float, str]],
        images: list[tuple[float, Image.Image]],
    ) -> None:
        """Add the weighted query vectors into `vector`."""
        if texts:
            vecs = self._text_vectors([t for _, t in texts])
            vector += np.sum(np.array([w for w, _ in texts], np.float32)[:, None] * vecs, axis=0)
        if images:
            vecs = self.model.encode_query_images([im for _, im in images])
            vector += np.sum(np.array([w for w, _ in images], np.float32)[:, None] * vecs, axis=0)

    def _text_vectors(self, texts: list[str]) -> np.ndarray:
        """`model.encode_texts(texts)`, with recently asked texts from the query cache."""
        found: dict[str, np.ndarray] = {}
        with self._text_cache_lock:
            for text in texts:
                cached = self._text_cache.get(text)
                if cached is not None:
                    self._text_cache.move_to_end(text)
                    found[text] = cached
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            new = np.asarray(self.model.encode_texts(missing), np.float32)
            with self._text_cache_lock:
                for text, row in zip(missing, new, strict=True):
                    found[text] = self._text_cache[text] = row.copy()  # not a view of `new`
                while len(self._text_cache) > QUERY_CACHE_SIZE:
                    self._text_cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def search(
        self,
        text: str | None = None,
        image: Image.Image | str | Path | None = None,
        k: int = 10,
        mode: str = "auto",
        query: Sequence[tuple[float, QueryItem]] | None = None,
    ) -> list[SearchHit]:
        """Nearest images (t2i, i2i) or texts (i2t, t2t) to the combined query, best first.

        `mode="auto"` searches images: t2i for text-only queries, i2i when an image is in it.
        """
        _check_k(k)
        if mode not in MODES:
            raise CrossmodalError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        vector, has_text, has_image = self.embed_query(text, image, query)
        if mode == "auto":
            mode = "i2i" if has_image else "t2i"
        needs_text = mode.startswith("t")
        if needs_text and not has_text:
            raise CrossmodalError(f"mode {mode} searches from text: the query has no text")
        if not needs_text and not has_image:
            raise CrossmodalError(f"mode {mode} searches from an image: the query has no image")
        target = "images" if mode.endswith("i") else "texts"
        return self.search_vector(vector, k, target, cross_modal=mode in CROSS_MODAL)

    def search_by_id(self, image_id: int, k: int = 10, mode: str = "i2i") -> list[SearchHit]:
        """Images like an indexed image (i2i, the image itself left out) or texts for it (i2t)."""
        _check_k(k)
        if mode not in ("i2i", "i2t"):
            raise CrossmodalError(f"search by id takes mode i2i or i2t, not {mode!r}")
        self._row(image_id)
        vector = self.catalog.image_vector(int(image_id))
        assert vector is not None
        if mode == "i2t":
            return self.search_vector(vector, k, target="texts", cross_modal=True)
        hits = [h for h in self.search_vector(vector, k + 1, "images") if h.id != image_id][:k]
        for rank, hit in enumerate(hits, 1):
            hit.rank = rank
        return hits

    def search_vector(
        self, vector: np.ndarray, k: int, target: str = "images", cross_modal: bool = False
    ) -> list[SearchHit]:
        """Nearest rows of `target` ("images" or "texts") to one unit vector; `cross_modal`
        (a text vector searching images, an image vector searching texts) applies the
        model's hubness correction."""
        vectors = np.asarray(vector, np.float32).reshape(1, -1)
        return self.search_vectors(vectors, k, target, cross_modal)[0]

    def search_vectors(
        self, vectors: np.ndarray, k: int, target: str = "images", cross_modal: bool = False
    ) -> list[list[SearchHit]]:
        """`search_vector` for each row of `vectors`, with one index search and one
        catalogue lookup for them all (what a server answering concurrent queries needs:
        per query, the catalogue's lock and queries cost more than the search itself)."""
        _check_k(k)
        store = self._store(target)
        queries = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        if store.dim != self.dim:  # rows carry their hubness offset
            queries = query_columns(queries, cross_modal)
        scores, ids = store.search(queries, k)
        per_query = [
            [(float(s), int(i)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0]
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]
        found = list(dict.fromkeys(i for pairs in per_query for _, i in pairs))
        text_rows = self.catalog.get_texts(found) if target == "texts" else {}
        if target == "texts":
            image_ids = list(dict.fromkeys(r["image_id"] for r in text_rows.values()))
        else:
            image_ids = found
        rows = self.catalog.get_images(image_ids)
        roots = self.catalog.roots()
        firsts = self._first_texts(list(rows))
        paths = {i: self._path_of(row, roots) for i, row in rows.items()}
        out: list[list[SearchHit]] = []
        for pairs in per_query:
            hits: list[SearchHit] = []
            for score, row_id in pairs:
                if target == "texts":
                    text_row = text_rows.get(row_id)
                    image_row = rows.get(text_row["image_id"]) if text_row else None
                    if text_row is None or image_row is None:
                        continue  # deleted by another process since the store was read
                    hits.append(
                        SearchHit(
                            rank=len(hits) + 1,
                            score=score,
                            id=image_row["id"],
                            path=paths[image_row["id"]],
                            text=text_row["text"],
                            caption=firsts.get(image_row["id"]),
                            kind="text",
                            text_id=row_id,
                            relpath=image_row["relpath"],
                        )
                    )
                else:
                    if row_id not in rows:
                        continue
                    hits.append(
                        SearchHit(
                            rank=len(hits) + 1,
                            score=score,
                            id=row_id,
                            path=paths[row_id],
                            caption=firsts.get(row_id),
                            relpath=rows[row_id]["relpath"],
                        )
                    )
            out.append(hits)
        return out

    def _first_texts(self, image_ids: list[int]) -> dict[int, str]:
        """First caption of each image, else its first annotation."""
        return self.catalog.first_texts(image_ids)


class _Changes:
    """Vector changes made inside one transaction, applied to the stores after it commits."""

    def __init__(self) -> None:
        self.removed: dict[str, list[int]] = {t: [] for t in _TABLES}
        self.added: dict[str, tuple[list[int], list[np.ndarray]]] = {t: ([], []) for t in _TABLES}
        self.generations: dict[str, int] = {}

    def add(self, table: str, row_id: int, vector: np.ndarray) -> None:
        self.added[table][0].append(row_id)
        self.added[table][1].append(np.asarray(vector, np.float32))

    def of(self, table: str) -> tuple[list[int], list[int], list[np.ndarray]]:
        return self.removed[table], *self.added[table]

    def bump(self, catalog: Catalog) -> None:
        """Inside the transaction: bump the generation of each table whose vectors changed."""
        for table in _TABLES:
            if self.removed[table] or self.added[table][0]:
                self.generations[table] = catalog.bump_generation(table)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Embed a query on one thread. A single query is too small to gain from two, and when
    the cores are busy (an index run beside a search, say) the second thread's waits turned a
    40 ms query into 250 ms and slowed the FAISS scan after it (docs/benchmarks.md)."""
    import sys

    # [fast-cli] a torch-free query encoder (models/query_bundle.py) runs on one thread
    # already; importing torch here would cost a quick search 3 s
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


def _check_k(k: int) -> None:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise CrossmodalError(f"k must be a positive number of results (got {k})")


def _normalise_model_name(name: str) -> str:
    """Model folders by absolute path, so the name recorded in a collection works from any cwd."""
    name = name.strip() or DEFAULT_MODEL
    if ":" not in name:
        path = Path(name).expanduser()
        if path.exists():
            return str(path.resolve())
    return name


def _load_query_image(path: Path, model: Encoder) -> Image.Image:
    from crossmodal.index.pipeline import _model_input

    _, draft = _model_input(model)
    try:
        return load_image(path, draft_size=draft)
    except ImageLoadError as exc:
        raise ImageLoadError(f"cannot search with {path}: {exc}") from None


def _hash_all(paths: Sequence[Path]) -> dict[Path, str]:
    """path -> SHA-1 of its bytes (files that cannot be read are left out)."""
    if not paths:
        return {}

    def one(p: Path) -> tuple[Path, str | None]:
        try:
            return p, file_sha1(p)
        except OSError:
            return p, None

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="hash") as pool:
        return {p: d for p, d in pool.map(one, paths) if d is not None}


def _scan(
    folder: Path, root: Path, only: set[str] | None, show_progress: bool
) -> tuple[dict[str, tuple[Path, int, int]], list[IndexFailure]]:
    """(relpath (to `root`, posix) -> (path, size, mtime_ns) of the image files under `folder`,
    what was skipped and why).

    Hidden folders (.git, .thumbnails, ...) are left out; links to folders are not followed
    (they could loop) and, like dangling links, link loops and folders that cannot be read,
    are reported as skipped; files are recognised by extension (`is_image_file`).
    """
    found: dict[str, tuple[Path, int, int]] = {}
    skipped: list[IndexFailure] = []
    bar = tqdm(desc="scanning", unit=" files", disable=not show_progress, leave=False)

    def on_error(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else folder
        skipped.append(IndexFailure(str(where), f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error):
        base = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            sub = base / name
            if sub.is_symlink():
                if only is None:
                    skipped.append(IndexFailure(str(sub), _folder_link_reason(sub)))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if not is_image_file(name):
                continue
            path = base / name
            rel = path.relative_to(root).as_posix()
            if only is not None and name not in only and rel not in only:
                continue
            try:
                st = path.stat()
            except OSError as exc:
                skipped.append(IndexFailure(str(path), _stat_reason(path, exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(IndexFailure(str(path), "not a regular file"))
                continue
            found[rel] = (path, st.st_size, st.st_mtime_ns)
            bar.update(1)
    bar.close()
    return found, skipped


def _stat_reason(path: Path, exc: OSError) -> str:
    if path.is_symlink():
        if exc.errno == errno.ELOOP:
            return "symlink loop: the link leads back to itself"
        with contextlib.suppress(OSError):
            return f"dangling symlink: its target {os.readlink(path)} does not exist"
        return "dangling symlink: its target does not exist"
    return f"cannot read: {exc.strerror or exc}"


def _folder_link_reason(link: Path) -> str:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop, on Python < 3.13
        return "symlink loop: the link leads back to itself"
    if Path(os.path.realpath(link.parent)).is_relative_to(target):
        return f"symlink loop: it points back to {target}, a folder above it"
    return f"symlinked folder not followed: {target}"
