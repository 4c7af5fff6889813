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

import contextlib
import hashlib
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from crossmodal.errors import CollectionError

#: First bytes of a store file, then the BLAKE2b digest of the FAISS serialisation after them.
MAGIC = b"CMFAISS1"
DIGEST_SIZE = 16

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

#: From this many rows, one exact (fp32) query is answered in two stages (a float16 scan in two
#: halves on two threads, then exact scores of the candidates: `_two_stage_search`).
TWO_STAGE_ROWS = 20_000
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


def _scan_half(
    half: faiss.Index, query: np.ndarray, k: int, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k approximate scores of one half of the float16 copy, as global row positions."""
    scores, positions = half.search(query, k)
    ok = positions[0] >= 0
    return scores[0][ok], positions[0][ok] + start


#: A filtered search over at most this many rows scores them directly (gathered from the
#: index) instead of searching the whole index with a selector.
DIRECT_ROWS = 4096


def top_k_of(
    rows: np.ndarray, row_ids: np.ndarray, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (scores, ids) of the k best `rows` (ids `row_ids`) for each query, best first."""
    k = min(int(k), len(rows))
    if k <= 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    scores = q @ np.asarray(rows, np.float32).T
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, best, axis=1).astype(np.float32), row_ids[best]


#: relative rounding of float16 (round to nearest, 10 fraction bits), with a margin for the
#: float32 sums
_FP16_ROUNDING = 2.0**-11 * 1.01


# the path is set through FAISS's global threshold: one search at a time sets and uses it
_PATH_LOCK = threading.Lock()
_LOOP, _BLAS = 2**31 - 1, 0

__all__ = [
    "DIRECT_ROWS",
    "SEQUENTIAL_QUERIES",
    "STORE_KINDS",
    "FlatIPStore",
    "VectorStore",
    "as_ids",
    "as_vectors",
    "top_k_of",
]


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[tuple[int, str]]:
    """(fd, name) of a new temporary file beside `path` that replaces `path` when the block
    ends, and is removed when it raises: a reader never sees a half-written store."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def as_rows(
    ids: np.ndarray | list[int], vectors: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """`add`'s arguments checked: int64 ids, one per float32 row of width `dim`."""
    ids_arr = as_ids(ids)
    vecs = as_vectors(vectors, dim)
    if len(ids_arr) != len(vecs):
        raise ValueError(f"{len(ids_arr)} ids for {len(vecs)} vectors")
    return ids_arr, vecs


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

    @property
    @abstractmethod
    def kind(self) -> str:
        """ "flat", "flat-fp16", "hnsw", "hnsw-fp16" or "ivfpq"."""

    @abstractmethod
    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None: ...

    @abstractmethod
    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Drop these ids (unknown ones are ignored); returns how many were removed."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`search` among the rows whose ids are in `allowed` only (a filtered search):
        `k' = min(k, rows allowed)` columns, best first. This fallback asks `search` for
        more until k allowed rows come back; the stores override it with FAISS selectors."""
        q = as_vectors(queries, self.dim)
        wanted = as_ids(allowed)
        k = min(int(k), len(wanted), len(self))
        want = max(4 * k, 64)
        while True:
            scores, ids = self.search(q, want)
            keep = np.isin(ids, wanted)
            if want >= len(self) or keep.sum(axis=1).min() >= k:
                break
            want *= 4
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for row in range(len(q)):
            chosen = np.flatnonzero(keep[row])[:k]
            out_s[row, : len(chosen)], out_i[row, : len(chosen)] = (
                scores[row, chosen],
                ids[row, chosen],
            )
        return out_s, out_i

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
    per vector; from `TWO_STAGE_ROWS` rows a single query scans a float16 copy first and
    re-scores its candidates exactly (`_two_stage_search`: the same answer as a full scan,
    about 3x faster; the copy adds 2 * dim bytes per vector once such a query has run).
    `precision="fp16"` (kind "flat-fp16"): `IndexScalarQuantizer(QT_fp16)`, still
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
        # exact stores only: a float16 copy of the rows in two halves, built on the first
        # large single-query search (see `_two_stage_search`), kept in step by add/remove
        self._shadow: list[faiss.IndexScalarQuantizer] | None = None
        self._shadow_lock = threading.Lock()  # concurrent searches build it once
        self._max_norm = 0.0

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
        ids_arr, vecs = as_rows(ids, vectors, self.dim)
        if len(ids_arr):
            self.index.add_with_ids(vecs, ids_arr)
            if self._shadow is not None:  # new rows come last: the second half's end
                self._shadow[1].add(vecs)
                self._max_norm = max(self._max_norm, float(np.linalg.norm(vecs, axis=1).max()))

    def remove(self, ids: np.ndarray | list[int]) -> int:
        ids_arr = as_ids(ids)
        if not len(ids_arr) or not len(self):
            return 0
        if self._shadow is not None:
            # FAISS compacts every part keeping the order of the rows left, so the halves
            # stay aligned with the exact rows if they drop the same positions
            gone = np.flatnonzero(np.isin(self._id_view(), ids_arr))
            first = int(self._shadow[0].ntotal)
            for half, positions in zip(
                self._shadow, (gone[gone < first], gone[gone >= first] - first), strict=True
            ):
                if len(positions):
                    half.remove_ids(faiss.IDSelectorBatch(positions.astype(np.int64)))
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids_arr)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        few = len(q) < SEQUENTIAL_QUERIES
        if few and len(self) >= TWO_STAGE_ROWS and self.kind == "flat" and _CORES > 1:
            return self._two_stage_search(q, k)
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

    def search_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among `allowed` ids: few rows are gathered and scored directly; more,
        through one scan of the rows with an `IDSelectorBitmap` of their positions (a bit
        test per row: the selector on catalogue ids, a hash lookup per row, was twice as
        slow as the unfiltered scan)."""
        q = as_vectors(queries, self.dim)
        id_view = self._id_view()
        keep = np.isin(id_view, as_ids(allowed))
        positions = np.flatnonzero(keep)
        inner = faiss.downcast_index(self.index.index)
        if len(positions) <= DIRECT_ROWS:
            rows = inner.reconstruct_batch(positions) if len(positions) else q[:0]
            return top_k_of(rows, id_view[positions], q, k)
        k = min(int(k), len(positions))
        bits = np.packbits(keep, bitorder="little")
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bits)))
        few = len(q) < SEQUENTIAL_QUERIES
        with _PATH_LOCK:  # as `search`: the loop on this thread for a few queries, else BLAS
            faiss.cvar.distance_compute_blas_threshold = _LOOP if few else _BLAS
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1 if few else before)
            try:
                scores, found = inner.search(q, k, params=params)
            finally:
                faiss.omp_set_num_threads(before)
        del bits  # kept alive until here: the selector points into it
        return scores, np.where(found >= 0, id_view[np.maximum(found, 0)], -1)

    def _rows_view(self) -> np.ndarray:
        inner = faiss.downcast_index(self.index.index)
        rows: np.ndarray = faiss.rev_swig_ptr(inner.get_xb(), len(self) * self.dim)
        return rows.reshape(-1, self.dim)

    def _id_view(self) -> np.ndarray:
        ids: np.ndarray = faiss.rev_swig_ptr(self.index.id_map.data(), len(self))
        return ids

    def _shadow_halves(self) -> list[faiss.IndexScalarQuantizer]:
        with self._shadow_lock:
            return self._build_shadow()

    def _build_shadow(self) -> list[faiss.IndexScalarQuantizer]:
        if self._shadow is None:
            rows = self._rows_view()
            cut = len(rows) // 2
            halves = []
            for part in (rows[:cut], rows[cut:]):
                half = faiss.IndexScalarQuantizer(
                    self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
                )
                half.add(np.ascontiguousarray(part))
                halves.append(half)
            self._max_norm = float(np.linalg.norm(rows, axis=1).max()) if len(rows) else 0.0
            self._shadow = halves
        return self._shadow

    def _two_stage_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of single queries, reading half the bytes of a full scan.

        A single query over 100k rows is bound by memory bandwidth (211 MB at 528 floats a
        row). Stage one scans a float16 copy of the rows, in two halves on two threads (the
        GIL is released in FAISS), for the best k + 32 candidates; stage two scores those
        exactly from the float32 rows. float16 rounds each coordinate within a relative
        2**-11, so an approximate score is within eps = 2**-11 * |q| * max|row| of the exact
        one (Cauchy-Schwarz): when the weakest candidate's approximate score plus eps is below
        the k-th exact score, no row outside the candidates can belong in the top k, and the
        answer is exactly the full scan's. Otherwise the candidate list grows and stage one
        runs again (rare: it takes near-ties at the k-th place). The copy costs half the
        exact rows' memory, built on the first such search.
        """
        halves = self._shadow_halves()
        rows, ids, n = self._rows_view(), self._id_view(), len(self)
        first = int(halves[0].ntotal)
        pool = _scan_pool()
        scores = np.empty((len(q), k), np.float32)
        found = np.empty((len(q), k), np.int64)
        for row, query in enumerate(q):
            eps = _FP16_ROUNDING * float(np.linalg.norm(query)) * self._max_norm + 1e-6
            want = min(n, k + 32)
            while True:
                with _PATH_LOCK:  # the single-query loop, not BLAS
                    faiss.cvar.distance_compute_blas_threshold = _LOOP
                    parts = [
                        pool.submit(_scan_half, half, query[None], min(want, half.ntotal), start)
                        for half, start in ((halves[0], 0), (halves[1], first))
                        if half.ntotal
                    ]
                    got = [p.result() for p in parts]
                approx = np.concatenate([g[0] for g in got])
                positions = np.concatenate([g[1] for g in got])
                keep = np.argsort(-approx, kind="stable")[:want]
                approx, positions = approx[keep], positions[keep]
                exact = rows[positions] @ query
                best = np.argsort(-exact, kind="stable")[:k]
                if len(positions) >= n or approx[-1] + eps < exact[best[-1]]:
                    break
                want = min(n, want * 4)
            scores[row], found[row] = exact[best], ids[positions[best]]
        return scores, found

    def ids(self) -> np.ndarray:
        """Every id in the store (insertion order)."""
        ids: np.ndarray = faiss.vector_to_array(self.index.id_map)
        return ids.astype(np.int64)

    def save(self, path: str | Path) -> None:
        """FAISS's serialisation behind a header of `MAGIC` and its BLAKE2b digest."""
        path = Path(path)
        payload = faiss.serialize_index(self.index)  # a uint8 numpy array
        digest = hashlib.blake2b(payload.data, digest_size=DIGEST_SIZE).digest()
        with replacing(path) as (fd, _), os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + digest)
            fh.write(payload.data)

    @classmethod
    def load(cls, path: str | Path) -> FlatIPStore:
        """The store saved at `path`; `CollectionError` when the file is damaged in any way
        (its digest is checked before FAISS reads a byte: FAISS itself only notices damage
        that changes the file's structure, not its vectors)."""
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise CollectionError(f"cannot read vector index {path}: {exc}") from exc
        head = len(MAGIC) + DIGEST_SIZE
        payload = data[head:]
        digest = hashlib.blake2b(payload.data, digest_size=DIGEST_SIZE).digest()
        if data[: len(MAGIC)].tobytes() != MAGIC or data[len(MAGIC) : head].tobytes() != digest:
            raise CollectionError(f"vector index {path} is damaged (checksum mismatch)")
        try:
            index = faiss.deserialize_index(payload)
        except RuntimeError as exc:  # FAISS reports a damaged file as a RuntimeError
            raise CollectionError(f"cannot read vector index {path}: {exc}") from exc
        return cls(index.d, index)

    def __len__(self) -> int:
        return int(self.index.ntotal)
