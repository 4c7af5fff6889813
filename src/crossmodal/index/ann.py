"""Approximate vector stores (FAISS HNSW, OPQ + IVF-PQ) and the choice of a store by size.

Past a few hundred thousand rows an exact scan costs tens of milliseconds a query and
4 bytes a coordinate; these stores trade a little recall for much less of both, behind the
same `VectorStore` interface as the exact `FlatIPStore`:

- "hnsw": `IndexHNSWFlat` (a proximity graph over float32 rows, exact scores of what it
  finds); "hnsw-fp16": `IndexHNSWSQ` with float16 rows, half the memory.
- "ivfpq": an OPQ rotation, an inverted file of `nlist` cells and product-quantised codes of
  `PQ_BYTES` bytes; the `RERANK * k` best candidates are re-scored exactly from float16
  copies of the rows, which live in the store file and are memory-mapped (on disk, in the
  page cache), not in the process's memory.

FAISS's graph and inverted lists cannot delete cheaply, so `remove` leaves a tombstone (the
row's id set to -1, its position skipped by an `IDSelectorBitmap` during search) and
`needs_rebuild` says when enough of them (or of rows added after training) piled up for a
rebuild from the catalogue to pay. Each store also tunes its search effort (HNSW's
`efSearch`, IVF's `nprobe`) at build time on sample queries, to the least that reaches
`TARGET_RECALL` against an exact scan, and records that recall (`info`).

A store file is one safetensors file (the serialised FAISS index, the ids, the float16 rows,
a JSON description), written to a temporary name and renamed into place: a process killed
while writing leaves the old file whole.
"""

from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from crossmodal.errors import CollectionError
from crossmodal.index.store import (
    FlatIPStore,
    VectorStore,
    as_ids,
    as_rows,
    as_vectors,
    replacing,
)

__all__ = [
    "ALL_KINDS",
    "APPROXIMATE_KINDS",
    "ApproximateStore",
    "BuildInfo",
    "choose_kind",
    "exact_top_k",
    "load_any_store",
    "near_rows",
    "new_store",
    "parse_memory",
    "recall_at",
    "with_combinations",
]

APPROXIMATE_KINDS = ("hnsw", "hnsw-fp16", "ivfpq")
#: what `--store` takes: the exact stores, the approximate ones, and "auto" (chosen by size)
ALL_KINDS = ("auto", "flat", "flat-fp16", *APPROXIMATE_KINDS)

#: HNSW graph degree (links per node on the base layer: 2 * HNSW_M) and build effort
HNSW_M = 32
#: 40, not 80: the build ran at ~1,100 rows/s at 80 on two busy cores (15 min a million
#: rows), and the recall lost is won back by the efSearch tuned at build time
EF_CONSTRUCTION = 40
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
#: bytes of one product-quantised code; with its 8-byte IVF label and the 8-byte catalogue
#: id that makes 64 bytes a row in memory
PQ_BYTES = 48
#: OPQ training effort. FAISS's defaults (50 rotation/codebook alternations, 40 k-means
#: rounds for the first codebooks, 65k rows) took minutes on 2 cores; re-ranking the shortlist
#: from float16 rows makes up for a rougher rotation (recall in docs/benchmarks.md)
OPQ_ITERATIONS = 10
OPQ_FIRST_PQ_ITERATIONS = 10
OPQ_TRAIN = 20_000
NPROBE_STEPS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: shortlist of PQ candidates re-scored from the float16 rows: RERANK * k, at least MIN_SHORTLIST
RERANK = 10
MIN_SHORTLIST = 100
#: below this many rows IVF-PQ cannot be trained well: the store answers by an exact scan of
#: its float16 rows until a rebuild finds enough
MIN_TRAIN = 10_000
#: training sample of the OPQ rotation, the coarse quantiser and the PQ codebooks, at most
#: TRAIN_PER_CELL rows per IVF cell; k-means rounds of the cells (FAISS's default: 25)
MAX_TRAIN = 200_000
TRAIN_PER_CELL = 50
KMEANS_ITERATIONS = 10
#: the search effort is tuned to the least that reaches this recall@10 against exact
TARGET_RECALL = 0.95
SAMPLE_QUERIES = 400
#: rebuild when this share of the positions are tombstones, or when the rows have grown this
#: many times past what the IVF cells were trained on
REBUILD_DEAD_SHARE = 0.2
REBUILD_GROWTH = 4.0
#: thresholds of `--store auto`, written by benchmarks/scale.py (see docs/benchmarks.md)
THRESHOLDS_FILE = Path(__file__).with_name("auto_store.json")


@dataclass
class BuildInfo:
    """What a build found: recorded in the store file and shown by `crossmodal stats`."""

    kind: str
    rows: int
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    recall_at_10: float | None = None
    sample_queries: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0
    built_at: float = field(default_factory=time.time)


def exact_top_k(
    rows: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row positions) of the exact top k by inner product, `rows` read in chunks."""
    queries = np.asarray(queries, np.float32)
    k = min(k, len(rows))
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(rows), chunk):
        part = np.asarray(rows[start : start + chunk], np.float32)
        sims = queries @ part.T
        top = np.argpartition(-sims, min(k, sims.shape[1]) - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + start], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    return best_s, best_i


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of the true top k (rows of `truth`) found among the first k of `found`."""
    if not len(truth):
        return 1.0
    hits = sum(len(np.intersect1d(f[:k], t[:k])) for f, t in zip(found, truth, strict=True))
    return float(hits / (len(truth) * min(k, truth.shape[1])))


def parse_memory(text: str | None) -> int | None:
    """'4G', '512M', '2.5GB', '1000000' -> bytes (None stays None)."""
    if text is None or not str(text).strip():
        return None
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    scale = units.get(value[-1:], 1)
    try:
        amount = float(value[:-1] if value[-1:] in units else value)
    except ValueError:
        raise CollectionError(
            f"cannot read the memory size {text!r}: write it like 4G, 512M or 1.5G"
        ) from None
    if amount <= 0:
        raise CollectionError(f"the index memory budget must be positive (got {text!r})")
    return int(amount * scale)


def bytes_per_row(kind: str, dim: int) -> float:
    """Memory of one row in each store (index + ids), for the budget of `choose_kind`."""
    return {
        "flat": 4 * dim + 8,
        "flat-fp16": 2 * dim + 8,
        # base layer links (2M int32) plus ~1/M of a node on upper layers, level, offset
        "hnsw": 4 * dim + 8 * HNSW_M + 8 + 8 + 8,
        "hnsw-fp16": 2 * dim + 8 * HNSW_M + 8 + 8 + 8,
        "ivfpq": PQ_BYTES + 8 + 8,
    }[kind]


def _thresholds() -> dict[str, Any]:
    try:
        return dict(json.loads(THRESHOLDS_FILE.read_text()))
    except (OSError, ValueError):
        return {}


def choose_kind(rows: int, dim: int, max_memory: int | None = None) -> str:
    """The store `--store auto` uses for `rows` rows of width `dim`.

    Exact below the size where benchmarks/scale.py found an approximate store answering
    faster at recall@10 >= 0.95 (`exact_below` in auto_store.json); above it, the fastest of
    the stores that met that recall there (`by_speed`), among those that fit the budget.
    IVF-PQ is the last resort: it fits any budget the ids fit in.
    """
    found = _thresholds()
    exact_below = int(found.get("exact_below", 200_000))
    by_speed = found.get("by_speed", ["hnsw", "hnsw-fp16", "ivfpq"])
    order: list[str] = [k for k in by_speed if k in ALL_KINDS]
    candidates = (["flat", "flat-fp16"] if rows < exact_below else []) + order + ["ivfpq"]
    for kind in candidates:
        if max_memory is None or bytes_per_row(kind, dim) * max(rows, 1) <= max_memory:
            return kind
    return "ivfpq"


# ---- the approximate store --------------------------------------------------------------
class ApproximateStore(VectorStore):
    """One of `APPROXIMATE_KINDS`; rows are addressed by position, `ids[pos]` is the row's
    catalogue id or -1 (a tombstone)."""

    def __init__(self, dim: int, kind: str, pq_bytes: int = PQ_BYTES) -> None:
        if kind not in APPROXIMATE_KINDS:
            raise CollectionError(f"unknown approximate store {kind!r}")
        self.dim, self._kind = int(dim), kind
        # at least 4 dimensions a sub-quantiser (narrow vectors)
        self.pq_bytes = max(1, min(int(pq_bytes), self.dim // 4))
        self.index: faiss.Index | None = None  # None: ivfpq too small to train (exact scan)
        self._ids = np.zeros(0, np.int64)  # grown by doubling: see _append
        self._n = 0  # positions used
        self._alive = 0
        self._rows16: np.ndarray | None = None  # ivfpq: float16 rows for re-ranking
        self._trained_rows = self._expected_rows = 0
        self._selector: tuple[Any, np.ndarray] | None = None  # (IDSelectorBitmap, its bits)
        self.effort = 64  # efSearch or nprobe, tuned by `build`
        self.info = BuildInfo(kind, 0, 0.0)

    @property
    def kind(self) -> str:
        return self._kind

    # ---- building -----------------------------------------------------------------------
    def _empty_index(self, sample: np.ndarray) -> faiss.Index | None:
        ip = faiss.METRIC_INNER_PRODUCT
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, HNSW_M, ip)
        elif self.kind == "hnsw-fp16":
            index = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, ip)
        else:
            if len(sample) < MIN_TRAIN:
                return None
            # OPQ rotates, and drops the dimensions that do not divide into sub-quantisers
            m = self.pq_bytes
            d_out = self.dim - self.dim % m
            opq = faiss.OPQMatrix(self.dim, m, d_out)
            opq.niter, opq.niter_pq_0 = OPQ_ITERATIONS, OPQ_FIRST_PQ_ITERATIONS
            opq.max_train_points = OPQ_TRAIN
            # 2 sqrt(n) cells (half autofaiss's 4 sqrt(n): the coarse k-means is most of the
            # build on two cores), each with >= 39 training rows
            nlist = max(1, int(min(2 * np.sqrt(self._expected_rows), len(sample) // 39)))
            ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(d_out), d_out, nlist, m, 8, ip)
            ivf.cp.niter = KMEANS_ITERATIONS
            sample = sample[: TRAIN_PER_CELL * nlist]
            index = faiss.IndexPreTransform(opq, ivf)
        if self.kind.startswith("hnsw"):
            faiss.downcast_index(index).hnsw.efConstruction = EF_CONSTRUCTION
        if not index.is_trained:
            index.train(np.ascontiguousarray(sample, np.float32))
        return index

    def build(
        self,
        ids: np.ndarray | list[int],
        vectors: np.ndarray,
        queries: np.ndarray | None = None,
        rows16: np.ndarray | None = None,
        show_progress: bool = False,
    ) -> BuildInfo:
        """Replace the contents with these rows: train, add, tune the search effort on
        `queries` (default: midpoints of random pairs of rows) and measure recall@10."""
        started = time.perf_counter()
        ids_arr = as_ids(ids)
        vecs = vectors if isinstance(vectors, np.memmap) else as_vectors(vectors, self.dim)
        rng = np.random.default_rng(0)
        take = np.sort(rng.choice(len(vecs), min(len(vecs), MAX_TRAIN), replace=False))
        sample = np.asarray(vecs[take], np.float32)
        self._trained_rows = self._expected_rows = len(ids_arr)
        self.index = self._empty_index(sample)
        self._ids, self._n, self._alive, self._selector = np.zeros(0, np.int64), 0, 0, None
        self._rows16 = None
        if self.kind == "ivfpq" and rows16 is not None:
            self._rows16 = rows16  # given (a memory-mapped file): not copied
        chunk = 100_000
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(vecs),
            desc=f"building the {self.kind} index",
            unit="row",
            disable=not show_progress,
        )
        for start in range(0, len(vecs), chunk):
            part = np.ascontiguousarray(vecs[start : start + chunk], np.float32)
            self._append(ids_arr[start : start + chunk], part, copy_rows=rows16 is None)
            bar.update(len(part))
        bar.set_description(f"tuning the {self.kind} search on sample queries")
        bar.close()
        if queries is None:
            queries = near_rows(sample, rng)
        self.info = BuildInfo(self.kind, self._alive, 0.0)
        self._tune(vecs, np.asarray(queries, np.float32))
        self.info.seconds = round(time.perf_counter() - started, 3)
        self.info.memory_bytes, self.info.disk_bytes = self.memory_bytes(), self.disk_bytes()
        return self.info

    def _tune(self, vecs: np.ndarray, queries: np.ndarray) -> None:
        """The least search effort reaching TARGET_RECALL@10 on each half of the sample."""
        queries = queries[:SAMPLE_QUERIES]
        if not len(queries) or not self._alive:
            return
        _, truth_pos = exact_top_k(vecs, queries, 10)
        truth = self._ids[truth_pos]
        steps: tuple[int, ...] = EF_SEARCH_STEPS if self.kind.startswith("hnsw") else NPROBE_STEPS
        if self.index is None:
            steps = (0,)
        elif self.kind == "ivfpq":
            nlist = faiss.extract_index_ivf(self.index).nlist
            steps = (*(s for s in steps if s < nlist), nlist)
        recall = 0.0
        half = len(queries) // 2
        for effort in steps:
            self.effort = effort
            found = self.search(queries, 10)[1]
            # the worse of the two halves: single queries and their sums (`with_combinations`)
            # must each reach the target, not only on average
            recall = min(
                recall_at(found[:half], truth[:half], 10) if half else 1.0,
                recall_at(found[half:], truth[half:], 10),
            )
            if recall >= TARGET_RECALL:
                break
        param = "efSearch" if self.kind.startswith("hnsw") else "nprobe"
        self.info.params = {param: self.effort}
        if self.kind == "ivfpq" and self.index is not None:
            ivf = faiss.extract_index_ivf(self.index)
            self.info.params.update(nlist=ivf.nlist, pq_bytes=self.pq_bytes, rerank=RERANK)
        self.info.recall_at_10, self.info.sample_queries = round(recall, 4), len(queries)

    # ---- the VectorStore interface ------------------------------------------------------
    def _append(self, ids: np.ndarray, vecs: np.ndarray, copy_rows: bool = True) -> None:
        n = len(ids)
        if self._n + n > len(self._ids):
            grown = np.full(max(2 * len(self._ids), self._n + n, 1024), -1, np.int64)
            grown[: self._n] = self._ids[: self._n]
            self._ids = grown
        if self.kind == "ivfpq" and copy_rows:
            rows = self._rows16
            if rows is None or self._n + n > len(rows):
                grown16 = np.zeros((len(self._ids), self.dim), np.float16)
                if rows is not None:
                    grown16[: self._n] = rows[: self._n]
                self._rows16 = rows = grown16
            rows[self._n : self._n + n] = vecs
        if self.index is not None:
            self.index.add(vecs)  # labels are positions, in order
        self._ids[self._n : self._n + n] = ids
        self._n += n
        self._alive += n
        self._selector = None

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids_arr, vecs = as_rows(ids, vectors, self.dim)
        if len(ids_arr):
            if self.index is None and self.kind != "ivfpq":
                self.index = self._empty_index(vecs)
            self._append(ids_arr, vecs)

    def remove(self, ids: np.ndarray | list[int]) -> int:
        ids_arr = as_ids(ids)
        if not len(ids_arr) or not self._alive:
            return 0
        hit = np.flatnonzero(np.isin(self._ids[: self._n], ids_arr))
        self._ids[hit] = -1
        self._alive -= len(hit)
        if len(hit):
            self._selector = None
        return len(hit)

    def _params(self, k: int, subset: tuple[Any, float] | None = None) -> Any:
        """FAISS search parameters: the tombstones skipped, or only a filter's rows searched
        (`subset`: (its IDSelectorBitmap, the share of rows it keeps)). A filter keeping a
        share s of the rows widens the search effort by 1/s, so that about as many passing
        rows are visited as an unfiltered search visits rows."""
        sel, widen = None, 1.0
        if subset is not None:
            sel, widen = subset[0], 1.0 / max(subset[1], 1e-6)
        elif self._alive < self._n:
            if self._selector is None:
                bits = np.packbits(self._ids[: self._n] >= 0, bitorder="little")
                self._selector = (faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bits)), bits)
            sel = self._selector[0]
        if self.kind.startswith("hnsw"):
            ef = min(int(max(self.effort, k) * widen), max(self._n, k))
            return faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
        assert self.index is not None
        nlist = faiss.extract_index_ivf(self.index).nlist
        return faiss.SearchParametersIVF(nprobe=min(int(self.effort * widen), nlist), sel=sel)

    def search_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among `allowed` ids (`crossmodal.index.filters.approximate_subset`)."""
        from crossmodal.index.filters import approximate_subset

        return approximate_subset(self, queries, k, allowed)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim)
        k = min(int(k), self._alive)
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self.kind == "ivfpq":
            scores, positions = self._search_ivfpq(q, k)
        else:
            assert self.index is not None
            scores, positions = self.index.search(q, k, params=self._params(k))
        ids = np.where(positions >= 0, self._ids[np.maximum(positions, 0)], -1)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids

    def _search_ivfpq(
        self, q: np.ndarray, k: int, subset: tuple[Any, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self._rows16 is not None
        if self.index is None:  # too few rows to train: an exact scan of the float16 rows
            alive = np.flatnonzero(self._ids[: self._n] >= 0)
            scores, pos = exact_top_k(self._rows16[alive], q, k)
            return scores, alive[pos]
        pre = self.index
        ivf = faiss.extract_index_ivf(pre)
        want = min(self._alive, max(RERANK * k, MIN_SHORTLIST))
        params = self._params(want, subset)
        _, short = ivf.search(pre.chain.at(0).apply(q), want, params=params)
        scores = np.full((len(q), k), -np.inf, np.float32)
        found = np.full((len(q), k), -1, np.int64)
        for row, (query, cand) in enumerate(zip(q, short, strict=True)):
            cand = cand[cand >= 0]
            exact = np.asarray(self._rows16[np.sort(cand)], np.float32) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)] = exact[best]
            found[row, : len(best)] = np.sort(cand)[best]
        return scores, found

    @property
    def needs_rebuild(self) -> bool:
        """Enough tombstones or untrained growth that a rebuild from the catalogue pays."""
        if self._n and (self._n - self._alive) > REBUILD_DEAD_SHARE * self._n:
            return True
        if self.kind == "ivfpq":
            if self.index is None:
                return self._alive >= MIN_TRAIN
            return self._alive > REBUILD_GROWTH * max(self._trained_rows, 1)
        return False

    @property
    def tombstones(self) -> int:
        return self._n - self._alive

    def ids(self) -> np.ndarray:
        live = self._ids[: self._n]
        return live[live >= 0].copy()

    def memory_bytes(self) -> int:
        """Bytes in process memory: the FAISS index, ids; not the memory-mapped rows."""
        total = 8 * self._n
        index = self.index
        if index is None:
            return total + (2 * self.dim * self._n if self._rows16 is not None else 0)
        if self.kind.startswith("hnsw"):
            inner = faiss.downcast_index(index)
            graph = inner.hnsw
            storage = faiss.downcast_index(inner.storage)
            total += storage.sa_code_size() * storage.ntotal
            total += 4 * graph.neighbors.size() + 8 * graph.offsets.size()
            total += 4 * graph.levels.size()
        else:
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            lists = ivf.invlists
            total += sum(lists.list_size(i) for i in range(ivf.nlist)) * (ivf.code_size + 8)
            total += 4 * ivf.d * ivf.nlist + 4 * ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub
            total += 4 * self.dim * ivf.d  # the OPQ matrix
            if self._rows16 is not None and not isinstance(self._rows16, np.memmap):
                total += self._rows16.nbytes  # until saved and memory-mapped
        return int(total)

    def disk_bytes(self) -> int:
        """Float16 rows read (memory-mapped) for re-ranking."""
        return 2 * self.dim * self._n if self.kind == "ivfpq" else 0

    # ---- files --------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        path = Path(path)
        tensors: dict[str, np.ndarray] = {"ids": np.ascontiguousarray(self._ids[: self._n])}
        if self.index is not None:
            tensors["index"] = faiss.serialize_index(self.index)
        if self._rows16 is not None:
            tensors["rows16"] = np.ascontiguousarray(self._rows16[: self._n])
        meta = {
            "format": "crossmodal-ann-1",
            "kind": self.kind,
            "dim": str(self.dim),
            "effort": str(self.effort),
            "trained_rows": str(self._trained_rows),
            "info": json.dumps(asdict(self.info)),
        }
        with replacing(path) as (fd, tmp):
            os.close(fd)  # safetensors writes by name
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> ApproximateStore:
        path = Path(path)
        try:
            header, data_start = _safetensors_header(path)
            meta = header.pop("__metadata__")
            store = cls(int(meta["dim"]), meta["kind"])
            store.effort, store._trained_rows = int(meta["effort"]), int(meta["trained_rows"])
            store.info = BuildInfo(**json.loads(meta["info"]))

            def tensor(name: str, dtype: type) -> np.ndarray | None:
                spec = header.get(name)
                if spec is None:
                    return None
                start, end = spec["data_offsets"]
                if end == start:
                    return np.zeros(spec["shape"], dtype)
                return np.memmap(
                    path, dtype, "r", offset=data_start + start, shape=tuple(spec["shape"])
                )

            ids = tensor("ids", np.int64)
            assert ids is not None
            store._ids, store._n = np.array(ids), len(ids)
            store._alive = int((store._ids >= 0).sum())
            raw = tensor("index", np.uint8)
            store.index = faiss.deserialize_index(np.array(raw)) if raw is not None else None
            store._rows16 = tensor("rows16", np.float16)  # stays on disk (the page cache)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, AssertionError) as exc:
            raise CollectionError(f"cannot read vector index {path}: {exc}") from exc
        return store

    def __len__(self) -> int:
        return self._alive


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and where its data starts (the format: an
    8-byte little-endian length, that many bytes of JSON, then the tensors' bytes)."""
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > 100_000_000:
            raise ValueError("not a store file (header too long)")
        return json.loads(fh.read(length)), 8 + length


def with_combinations(queries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit queries plus as many normalised sums of two of them: query arithmetic ("a dog" +
    beach.jpg) lands between the clusters single queries come from, where a graph or an
    inverted file needs more search effort; tuning on both keeps those queries' recall."""
    if len(queries) < 2:
        return queries
    a, b = rng.integers(0, len(queries), len(queries)), rng.integers(0, len(queries), len(queries))
    sums = queries[a] + queries[b]
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return np.concatenate([queries, sums]).astype(np.float32)


def near_rows(sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Queries near the data but not in it: random rows moved by noise of half their norm
    (cosine ~0.9 to the row). Callers with real queries (captions of a gallery) pass those."""
    n = min(SAMPLE_QUERIES, len(sample))
    if n == 0:
        return sample[:0]
    rows = sample[rng.integers(0, len(sample), n)]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    noise = rng.standard_normal(rows.shape).astype(np.float32)
    noise *= 0.5 * norms / np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-12)
    return (rows + noise).astype(np.float32)


# ---- factories ----------------------------------------------------------------------------
def new_store(kind: str, dim: int, pq_bytes: int = PQ_BYTES) -> VectorStore:
    """An empty store of `kind` ("flat", "flat-fp16" or one of `APPROXIMATE_KINDS`)."""
    if kind in APPROXIMATE_KINDS:
        return ApproximateStore(dim, kind, pq_bytes=pq_bytes)
    if kind in ("flat", "flat-fp16"):
        return FlatIPStore.of_kind(kind, dim)
    raise CollectionError(f"unknown store {kind!r}: use one of {', '.join(ALL_KINDS)}")


def load_any_store(path: str | Path) -> VectorStore:
    """A store file of either format (FAISS's own for the exact stores, safetensors here)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        return ApproximateStore.load(path)
    return FlatIPStore.load(path)
