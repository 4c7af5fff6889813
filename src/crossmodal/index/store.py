"""Vector stores: ids + unit vectors in, nearest ids out.

`VectorStore` is the small interface the collection talks to, so that an approximate index
(HNSW, IVF-PQ) or a server (pgvector) can replace the default later without touching search
code. The default, `FlatIPStore`, is exact inner-product search (= cosine on unit vectors) with
FAISS, keyed by catalogue ids through `IndexIDMap2`.

A store file is a *cache*: the SQLite catalogue holds every vector as well and is the source of
truth (see `crossmodal.index.catalog`). Files are written atomically (temporary file + rename)
so that a reader never sees half an index.
"""

from __future__ import annotations

import os
import tempfile
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from crossmodal.errors import CollectionError

#: Fewer queries than this are scanned one by one with FAISS's SIMD loop on the calling thread;
#: more, with one BLAS matrix product. Measured on this project's 2-core EPYC at 100k x 512
#: (docs/benchmarks.md, gallery section): one query takes 9-10 ms in the loop on one thread
#: and ~29 ms as a BLAS product (15 ms on two threads); the loop costs ~9 ms per query, the
#: product ~1 ms per extra query, so from about 4 queries on the product wins. FAISS 1.15
#: chooses by the size of the index, not of the batch (`distance_compute_blas_threshold`,
#: 128,000 vectors by default: every batch of a 100k collection looped, 8 queries 80 ms), so
#: the choice is made here, per call. One query's loop is not split over OpenMP threads: that
#: made it 14-15 ms on two idle cores, and 40-56 ms while another process held one.
SEQUENTIAL_QUERIES = 4

#: From this many rows, one exact (fp32) query's scan is split over two threads.
SPLIT_SCAN_ROWS = 20_000
_CORES = os.cpu_count() or 1
_scan_pools: dict[int, ThreadPoolExecutor] = {}


def _scan_pool() -> ThreadPoolExecutor:
    """Per process (a forked child cannot use its parent's threads)."""
    pool = _scan_pools.get(os.getpid())
    if pool is None:
        pool = _scan_pools[os.getpid()] = ThreadPoolExecutor(
            2, thread_name_prefix="scan", initializer=faiss.omp_set_num_threads, initargs=(1,)
        )
    return pool


def _scan(query: np.ndarray, rows: np.ndarray, start: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of `rows` (positions from `start`): FAISS's single-query SIMD loop (its BLAS
    threshold is above one query, so `knn` takes the loop on this thread)."""
    scores, positions = faiss.knn(query, rows, min(k, len(rows)), metric=faiss.METRIC_INNER_PRODUCT)
    return scores[0], positions[0] + start


# the path is set through FAISS's global threshold: one search at a time sets and uses it
_PATH_LOCK = threading.Lock()
_LOOP, _BLAS = 2**31 - 1, 0

__all__ = [
    "SEQUENTIAL_QUERIES",
    "STORE_KINDS",
    "FlatIPStore",
    "VectorStore",
    "as_ids",
    "as_vectors",
]


def as_ids(ids: np.ndarray | list[int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def as_vectors(vectors: np.ndarray, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {arr.shape}")
    return arr


class VectorStore(ABC):
    """Ids (int64) -> float32 vectors of one dimension; inner-product search.

    Contract: `add` takes ids that are not in the store yet (callers `remove` first when they
    replace a vector); `search` returns `(scores, ids)` of shape `(n_queries, k')` with
    `k' = min(k, len(self))`, best first.
    """

    dim: int

    @abstractmethod
    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None: ...

    @abstractmethod
    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Drop these ids (unknown ones are ignored); returns how many were removed."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def save(self, path: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> VectorStore: ...

    @abstractmethod
    def __len__(self) -> int: ...


#: Store kinds a collection can be created with (recorded in its catalogue).
STORE_KINDS = ("flat", "flat-fp16")


class FlatIPStore(VectorStore):
    """Exhaustive inner-product search keyed by catalogue ids (`IndexIDMap2`).

    `precision="fp32"` (the default, kind "flat"): `IndexFlatIP`, exact scores, 4 * dim bytes
    per vector. `precision="fp16"` (kind "flat-fp16"): `IndexScalarQuantizer(QT_fp16)`, still
    every vector scanned but half the bytes: a single query is bound by memory bandwidth, so
    it runs about twice as fast; scores move by ~1e-4, so only near-ties can swap.
    Past a few million rows an approximate store behind the same interface is the way on.
    """

    def __init__(self, dim: int, index: faiss.Index | None = None, precision: str = "fp32") -> None:
        self.dim = int(dim)
        if index is None:
            if precision == "fp32":
                inner = faiss.IndexFlatIP(self.dim)
            elif precision == "fp16":
                inner = faiss.IndexScalarQuantizer(
                    self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
                )
            else:
                raise ValueError(f"precision must be fp32 or fp16, not {precision!r}")
            index = faiss.IndexIDMap2(inner)
        self.index = index

    @classmethod
    def of_kind(cls, kind: str, dim: int) -> FlatIPStore:
        if kind not in STORE_KINDS:
            raise CollectionError(f"unknown store {kind!r}: use one of {', '.join(STORE_KINDS)}")
        return cls(dim, precision="fp16" if kind == "flat-fp16" else "fp32")

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self.index.index)
        return "flat-fp16" if isinstance(inner, faiss.IndexScalarQuantizer) else "flat"

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids_arr = as_ids(ids)
        vecs = as_vectors(vectors, self.dim)
        if len(ids_arr) != len(vecs):
            raise ValueError(f"{len(ids_arr)} ids for {len(vecs)} vectors")
        if len(ids_arr):
            self.index.add_with_ids(vecs, ids_arr)

    def remove(self, ids: np.ndarray | list[int]) -> int:
        ids_arr = as_ids(ids)
        if not len(ids_arr) or not len(self):
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids_arr)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        few = len(q) < SEQUENTIAL_QUERIES
        if few and len(self) >= SPLIT_SCAN_ROWS and self.kind == "flat" and _CORES > 1:
            return self._split_search(q, k)
        with _PATH_LOCK:
            faiss.cvar.distance_compute_blas_threshold = _LOOP if few else _BLAS
            if not few:
                scores, ids = self.index.search(q, k)
                return scores, ids
            # omp_set_num_threads changes the calling thread's setting only: restored after
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                scores, ids = self.index.search(q, k)
            finally:
                faiss.omp_set_num_threads(before)
        return scores, ids

    def _split_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's scan cut in two halves run on two threads (FAISS's SIMD loop over a
        zero-copy view of each half of the stored rows, GIL released), then merged. A single
        query at 100k x 513 is bound by one core's memory bandwidth: 9.7 -> 6.9 ms p50 on two
        idle cores (docs/benchmarks.md). Threads, not OpenMP: a waiting thread sleeps where an
        OpenMP barrier spins, which on a busy machine was worse than one thread."""
        inner = faiss.downcast_index(self.index.index)
        n = len(self)
        rows = faiss.rev_swig_ptr(inner.get_xb(), n * self.dim).reshape(n, self.dim)
        ids = faiss.rev_swig_ptr(self.index.id_map.data(), n)
        cut = n // 2
        pool = _scan_pool()
        scores = np.empty((len(q), k), np.float32)
        found = np.empty((len(q), k), np.int64)
        for row, query in enumerate(q):
            with _PATH_LOCK:  # the loop, not BLAS, for these single queries
                faiss.cvar.distance_compute_blas_threshold = _LOOP
                halves = [
                    pool.submit(_scan, query[None], rows[start:stop], start, k)
                    for start, stop in ((0, cut), (cut, n))
                ]
                parts = [h.result() for h in halves]
            s = np.concatenate([p[0] for p in parts])
            at = np.concatenate([p[1] for p in parts])
            best = np.argsort(-s, kind="stable")[:k]
            scores[row], found[row] = s[best], ids[at[best]]
        return scores, found

    def ids(self) -> np.ndarray:
        """Every id in the store (insertion order)."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> FlatIPStore:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # FAISS reports a damaged file as a RuntimeError
            raise CollectionError(f"cannot read vector index {path}: {exc}") from exc
        return cls(index.d, index)

    def __len__(self) -> int:
        return int(self.index.ntotal)
