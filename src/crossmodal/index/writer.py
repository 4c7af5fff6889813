"""The writer lock of a collection and its in-memory vector stores (caches of the catalogue).

One process writes a collection at a time: `WriterLock` is an flock on the folder's `lock`
file, released by the OS when the process dies (even by kill -9); a second writer gets
`CollectionBusy` at once, never a wait. `StoreCache` keeps one vector store per table
("images", "texts"), reloaded or rebuilt whenever the catalogue's generation of that table
is not the one it was built at (another process committed), changed incrementally by a
writer's committed transactions (`VectorChanges`), and saved under its generation so that the
next process loads it instead of rebuilding it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np

from crossmodal.errors import CollectionBusy, CollectionError, CrossmodalError
from crossmodal.index.ann import (
    APPROXIMATE_KINDS,
    SAMPLE_QUERIES,
    ApproximateStore,
    BuildInfo,
    choose_kind,
    load_any_store,
    near_rows,
    new_store,
    with_combinations,
)
from crossmodal.index.catalog import Catalog
from crossmodal.index.store import FlatIPStore, VectorStore
from crossmodal.models.hubness import HubnessCorrection, query_columns, stored_dim

__all__ = [
    "LOCK_FILE",
    "TABLES",
    "StoreCache",
    "VectorChanges",
    "WriterLock",
    "make_folder",
    "remove_new_collection",
]

LOCK_FILE = "lock"
#: the tables that have vectors, and so a store each
TABLES = ("images", "texts")


class WriterLock:
    """The collection's writer lock, reentrant within this object (one per `Collection`)."""

    def __init__(self, folder: Path, guard: threading.RLock) -> None:
        self.folder = folder
        self.depth = 0
        #: the threads of this process take it before the flock (one writer per object)
        self.guard = guard
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it (or the folder
        is read-only: searchable, not writable)."""
        if self.depth:
            self.depth += 1
            return True
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; SQLite still serialises
            self.depth = 1
            return True
        try:
            fh = open(self.folder / LOCK_FILE, "a+")  # noqa: SIM115 -- closed in release
        except OSError:
            return False
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._file, self.depth = fh, 1
        return True

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self._file is not None:
            self._file.close()
            self._file = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One writer per collection; a second one gets `CollectionBusy`, not a wait."""
        with self.guard:
            if not os.access(self.folder, os.W_OK):
                raise CollectionError(f"cannot change collection {self.folder}: it is read-only")
            if not self.try_acquire():
                raise CollectionBusy(
                    f"collection {self.folder} is being changed by another process "
                    "(an index run?): wait for it to finish and try again"
                )
            try:
                yield
            finally:
                self.release()


class VectorChanges:
    """Vector changes made inside one transaction, applied to the stores after it commits."""

    def __init__(self) -> None:
        self.removed: dict[str, list[int]] = {t: [] for t in TABLES}
        self.added: dict[str, tuple[list[int], list[np.ndarray]]] = {t: ([], []) for t in TABLES}
        self.generations: dict[str, int] = {}

    def add(self, table: str, row_id: int, vector: np.ndarray) -> None:
        self.added[table][0].append(row_id)
        self.added[table][1].append(np.asarray(vector, np.float32))

    def of(self, table: str) -> tuple[list[int], list[int], list[np.ndarray]]:
        return self.removed[table], *self.added[table]

    def bump(self, catalog: Catalog) -> None:
        """Inside the transaction: bump the generation of each table whose vectors changed."""
        for table in TABLES:
            if self.removed[table] or self.added[table][0]:
                self.generations[table] = catalog.bump_generation(table)


class StoreCache:
    """The vector store of each table, following the catalogue (see the module's text).

    `dim` and `hubness` are asked when a store is built: they come from the model, which is
    loaded only then (opening a collection for its stats loads none).
    """

    def __init__(
        self,
        folder: Path,
        catalog: Catalog,
        writer: WriterLock,
        dim: Callable[[], int],
        hubness: Callable[[], HubnessCorrection | None],
    ) -> None:
        self.folder = folder
        self.catalog = catalog
        self.writer = writer
        self._dim = dim
        self._hubness = hubness
        self._stores: dict[str, VectorStore] = {}
        self._store_gen: dict[str, int] = {}
        self._saved_gen: dict[str, int] = {}

    # ---- reading ---------------------------------------------------------------------------
    def get(self, table: str) -> VectorStore:
        """The in-memory store of `table`, reloaded when another process committed since."""
        with self.writer.guard:
            generation = self.catalog.generation(table)
            store = self._stores.get(table)
            if store is not None and self._store_gen.get(table) == generation:
                return store
            store = self._load_file(table, generation)
            rebuilt = store is None
            if store is None:  # missing or stale cache: rebuild from the catalogue's vectors
                generation, store = self.build(table)
            self._stores[table] = store
            self._store_gen[table] = generation
            if rebuilt and len(store):
                self.try_save()  # so that the next process loads it instead of rebuilding
            return store

    def _load_file(self, table: str, generation: int) -> VectorStore | None:
        dim = self.stored_dim()
        setting = self.setting()
        # "auto" takes whichever kind a writer built (it rebuilds when the size calls for
        # another one: `refresh`)
        for kind in ("flat", "hnsw"):
            file = self.file_for(table, generation, kind)
            if not file.is_file():
                continue
            with contextlib.suppress(CollectionError, OSError):
                loaded = load_any_store(file)
                if (
                    loaded.dim == dim
                    and (loaded.kind == setting or setting == "auto")
                    and len(loaded) == self.catalog.count(table)
                ):
                    self._saved_gen[table] = generation
                    return loaded
        return None

    def generation(self, table: str) -> int | None:
        """The catalogue generation the loaded store of `table` is at (None: not loaded)."""
        return self._store_gen.get(table) if table in self._stores else None

    def saved_generation(self, table: str) -> int | None:
        """The generation of `table` whose store file this process loaded or wrote."""
        return self._saved_gen.get(table)

    def load(self, *tables: str) -> None:
        """Load (current) stores before a transaction changes them, so the change can be
        applied to them incrementally after the commit instead of by a rebuild."""
        for table in tables:
            self.get(table)

    def info(self, table: str = "images") -> dict[str, Any]:
        """What the store of `table` is: kind, rows, memory, recall@10 against exact."""
        store = self.get(table)
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

    # ---- building --------------------------------------------------------------------------
    def file_for(self, table: str, generation: int, kind: str = "flat") -> Path:
        # the hubness correction's digest is in the name: a store built with other offsets
        # (another bank, k or weight) is never loaded, only rebuilt from the catalogue
        correction = self._hubness()
        tag = f".h{correction.digest}" if correction is not None else ""
        suffix = ".ann" if kind in APPROXIMATE_KINDS else ".faiss"
        return self.folder / f"{table}.g{generation}{tag}{suffix}"

    def setting(self) -> str:
        return self.catalog.get_meta("store") or "flat"

    def kind_for(self, rows: int) -> str:
        """The store kind for `rows` rows: the collection's setting, or auto's choice."""
        setting = self.setting()
        if setting != "auto":
            return setting
        budget = self.catalog.get_meta("max_index_memory")
        return choose_kind(rows, self.stored_dim(), int(budget) if budget else None)

    def stored_dim(self) -> int:
        return self._dim() if self._hubness() is None else stored_dim(self._dim())

    def rows(self, table: str, vectors: np.ndarray) -> np.ndarray:
        """Catalogue vectors as the store keeps them (with the hubness offset column)."""
        correction = self._hubness()
        return vectors if correction is None else correction.augment(vectors, table)

    def build(
        self, table: str, kind: str | None = None, show_progress: bool = False
    ) -> tuple[int, VectorStore]:
        """(generation, store) built from the catalogue's vectors: the cache rebuilt."""
        generation, ids, vectors = self.catalog.load_vectors(table, self._dim())
        store = new_store(kind or self.kind_for(len(ids)), self.stored_dim())
        rows = self.rows(table, vectors)
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
        dim = self._dim()
        sample = self.catalog.sample_vectors(other, SAMPLE_QUERIES // 2, dim)
        if not len(sample):
            own = self.catalog.sample_vectors(table, SAMPLE_QUERIES // 2, dim)
            sample = near_rows(own, rng)
            sample /= np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-12)
        if not len(sample):
            return None
        sample = with_combinations(sample, rng)
        return sample if self._hubness() is None else query_columns(sample, cross_modal=True)

    # ---- changing (writer lock held) -------------------------------------------------------
    def apply(self, changes: VectorChanges) -> None:
        """Apply a committed transaction's vector changes to the loaded stores."""
        for table in TABLES:
            removed, added_ids, added_vecs = changes.of(table)
            if not (removed or added_ids):
                continue
            store = self._stores.get(table)
            if store is None or table not in changes.generations:
                continue
            store.remove(removed)
            if added_ids:
                store.add(added_ids, self.rows(table, np.stack(added_vecs)))
            self._store_gen[table] = changes.generations[table]

    def forget(self, *patterns: str) -> None:
        """Drop the loaded stores and delete the store files matching `patterns`."""
        self._stores.clear()
        self._store_gen.clear()
        self._saved_gen.clear()
        for pattern in patterns:
            for old in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    old.unlink()

    def save(self) -> None:
        """Write each changed store under its generation; drop older files (lock held)."""
        assert self.writer.depth, "stores are saved only under the writer lock"
        # from a process killed mid-save (or mid-rebuild)
        for leftover in [*self.folder.glob("*.faiss.*.tmp"), *self.folder.glob("*.ann.*.tmp")]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        for table, store in self._stores.items():
            generation = self._store_gen.get(table)
            if generation is None or self._saved_gen.get(table) == generation:
                continue
            if self.catalog.generation(table) != generation:
                continue  # someone committed after us: our copy is not the current state
            file = self.file_for(table, generation, store.kind)
            store.save(file)  # a temporary file renamed into place: never half written
            self._saved_gen[table] = generation
            with self.catalog.transaction():  # for `stats`, which loads no store
                self.catalog.set_meta(f"store_info.{table}", json.dumps(self.info(table)))
            olds = [*self.folder.glob(f"{table}.g*.faiss"), *self.folder.glob(f"{table}.g*.ann")]
            for old in olds:
                if old.name != file.name:
                    with contextlib.suppress(OSError):
                        old.unlink()

    def try_save(self) -> None:
        """Save changed stores if no other process is writing (else that writer will)."""
        with self.writer.guard:
            if not self.writer.try_acquire():
                return
            try:
                with contextlib.suppress(OSError, CrossmodalError):
                    self.save()
            finally:
                self.writer.release()

    def refresh(self, force: bool = False, show_progress: bool = False) -> list[str]:
        """Rebuild (writer lock held) each loaded store whose tombstones or growth call for it,
        or whose kind the collection's size no longer calls for; `force`: every store. The
        catalogue is not touched and the new file replaces the old one atomically, so a
        process killed meanwhile loses nothing: the old file, or the catalogue, still serves.
        Returns the tables rebuilt."""
        assert self.writer.depth, "stores are rebuilt only under the writer lock"
        done = []
        # not forced: only stores this process loaded (a run that changed nothing loads no
        # store, and no model)
        for table in TABLES if force else [t for t in TABLES if t in self._stores]:
            store = self.get(table)
            due = force or (isinstance(store, ApproximateStore) and store.needs_rebuild)
            kind = self.kind_for(len(store))
            if not due and store.kind == kind:
                continue
            generation, fresh = self.build(table, kind, show_progress)
            if generation != self.catalog.generation(table):
                continue  # changed meanwhile (not under our lock?): leave it for next time
            self._stores[table], self._store_gen[table] = fresh, generation
            self._saved_gen.pop(table, None)
            done.append(table)
        self.save()
        return done


def make_folder(path: Path) -> list[Path]:
    """Make the folder of a new collection; returns the folders made, outermost first."""
    if path.exists() and not path.is_dir():
        raise CollectionError(f"cannot create a collection at {path}: it is a file")
    made = [p for p in [*reversed(path.parents), path] if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CollectionError(f"cannot create a collection at {path}: {exc}") from exc
    return made


def remove_new_collection(folder: Path, catalog_files: list[str], made: list[Path]) -> None:
    """Delete a collection just created (its catalogue closed): the catalogue with its SQLite
    journal files, the lock file, and the folders `make_folder` made, if left empty."""
    for name in catalog_files:
        for suffix in ("", "-wal", "-shm", "-journal"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    (folder / LOCK_FILE).unlink(missing_ok=True)
    for made_folder in reversed(made):  # deepest first
        if made_folder.is_dir() and not any(made_folder.iterdir()):
            made_folder.rmdir()
