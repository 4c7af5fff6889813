"""A `SearchFilter` as SQL over the catalogue, and the ids it lets through.

Filtered search is: the ids of the rows that pass (one SELECT on `images`, joined to `texts`
for text results), then the vector store's `search_subset` over those ids, which scores them
directly when they are few and otherwise searches the index with a FAISS `IDSelector`
(crossmodal/index/store.py, ann.py): the top k of the passing rows, whatever the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from crossmodal.index import store as store_module
from crossmodal.index.catalog import Catalog, fs_bytes
from crossmodal.index.catalog_sql import SQLITE, Dialect, dialect_of, fetch_values
from crossmodal.index.catalog_texts import HIDDEN_FROM_TEXT_SEARCH
from crossmodal.index.results import SearchHit, hits_of
from crossmodal.index.store import as_ids, as_vectors, top_k_of
from crossmodal.search_filter import SearchFilter

if TYPE_CHECKING:
    from crossmodal.index.ann import ApproximateStore

__all__ = [
    "DIRECT_SHARE",
    "allowed_ids",
    "approximate_subset",
    "filter_sql",
    "filtered_hits",
    "filtered_search",
]

#: a filter keeping less than this share of an approximate store's rows is scored exactly
#: (its rows gathered from the store) rather than searched in the graph / cells
DIRECT_SHARE = 0.02


def filter_sql(
    flt: SearchFilter, roots: dict[int, str], dialect: Dialect = SQLITE
) -> tuple[str, list[Any]]:
    """(condition on `images` aliased `i`, its arguments) in SQLite's SQL or PostgreSQL's
    (`dialect`: the same rules, their placeholders and functions); true when it is empty."""
    m = dialect.mark
    where: list[str] = []
    args: list[Any] = []
    if flt.taken_from is not None:
        where.append(f"i.taken >= {m}")
        args.append(flt.taken_from)
    if flt.taken_until is not None:
        where.append(f"i.taken < {m}")
        args.append(flt.taken_until)
    if flt.camera:
        # SQLite's lower() folds ASCII only: Python folds the term, SQL the (ASCII) names
        where.append(
            dialect.contains(
                "lower(coalesce(i.camera_make, '') || ' ' || coalesce(i.camera_model, ''))"
            )
        )
        args.append(flt.camera.lower())
    if flt.gps is True or flt.within is not None:
        where.append("i.gps_lat IS NOT NULL AND i.gps_lon IS NOT NULL")
    elif flt.gps is False:
        where.append("(i.gps_lat IS NULL OR i.gps_lon IS NULL)")
    if flt.within is not None:
        south, west, north, east = flt.within
        where.append(f"i.gps_lat BETWEEN {m} AND {m} AND i.gps_lon BETWEEN {m} AND {m}")
        args += [south, north, west, east]
    if flt.types:
        where.append(f"i.file_type IN ({dialect.marks(len(flt.types))})")
        args += list(flt.types)
    if flt.min_size is not None:
        where.append(f"i.size >= {m}")
        args.append(flt.min_size)
    if flt.max_size is not None:
        where.append(f"i.size <= {m}")
        args.append(flt.max_size)
    if flt.folder is not None:
        sql, more = _folder_sql(flt.folder, roots, dialect)
        where.append(sql)
        args += more
    return (" AND ".join(where) or dialect.true), args


def _under(prefix: str, dialect: Dialect) -> tuple[str, list[Any]]:
    """Rows whose relpath starts with `prefix/` (compared as bytes, like `_under_root`)."""
    head = fs_bytes(prefix.rstrip("/") + "/")
    return dialect.bytes_prefix("i.relpath"), [len(head), head]


def _folder_sql(folder: str, roots: dict[int, str], dialect: Dialect) -> tuple[str, list[Any]]:
    """Photos under `folder`: absolute (compared as given, never through links, like
    `Collection.remove`), or relative to every indexed folder."""
    if not os.path.isabs(folder):
        return _under(folder, dialect)
    target = Path(folder)
    parts: list[str] = []
    args: list[Any] = []
    for root_id, root in roots.items():
        top = Path(root)
        if target == top or top.is_relative_to(target):
            parts.append(f"i.root_id = {dialect.mark}")
            args.append(root_id)
        elif target.is_relative_to(top):
            sql, more = _under(target.relative_to(top).as_posix(), dialect)
            parts.append(f"(i.root_id = {dialect.mark} AND {sql})")
            args += [root_id, *more]
    return ("(" + " OR ".join(parts) + ")") if parts else dialect.false, args


def allowed_ids(catalog: Catalog, flt: SearchFilter, target: str) -> np.ndarray:
    """Ids of the rows of `target` ("images" or "texts") that pass, ascending (texts: those
    a text search shows, so no tags)."""
    where, args = filter_sql(flt, catalog.roots(), dialect_of(catalog))
    if target == "images":
        sql = f"SELECT i.id FROM images i WHERE {where}"
    else:
        hidden = ", ".join(f"'{kind}'" for kind in HIDDEN_FROM_TEXT_SEARCH)  # our constants
        sql = (
            "SELECT t.id FROM texts t JOIN images i ON i.id = t.image_id "
            f"WHERE t.kind NOT IN ({hidden}) AND {where}"
        )
    found = fetch_values(catalog, sql, args)
    return np.array(sorted(found), np.int64)


def filtered_search(
    catalog: Catalog,
    store: Any,
    flt: SearchFilter | None,
    target: str,
    queries: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best rows of `target` that pass `flt` (all rows when it is None
    or empty), per query; the query rows carry the hubness column when the store has one."""
    if flt is None or flt.empty:
        return store.search(queries, k)  # type: ignore[no-any-return]
    allowed = allowed_ids(catalog, flt, target)
    if not len(allowed):
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores, ids = store.search_subset(queries, k, allowed)
    return scores, ids


def approximate_subset(
    store: ApproximateStore, queries: np.ndarray, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`ApproximateStore.search_subset`: top-k among `allowed` ids. Few rows (at most
    `store.DIRECT_ROWS`, or under DIRECT_SHARE of the store) are scored exactly from their
    stored vectors; more are searched in the graph / cells through an `IDSelectorBitmap` of
    their positions, with the effort widened by the share they are (`_params`)."""
    q = as_vectors(queries, store.dim)
    keep = np.isin(store._ids[: store._n], as_ids(allowed))
    positions = np.flatnonzero(keep)
    if not len(positions) or not store._alive:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    share = len(positions) / store._alive
    if len(positions) <= store_module.DIRECT_ROWS or share < DIRECT_SHARE or store.index is None:
        if store.kind == "ivfpq":
            assert store._rows16 is not None
            rows = np.asarray(store._rows16[positions], np.float32)
        else:  # HNSW: the graph's storage holds the rows (float16 ones decoded)
            assert store.index is not None
            rows = store.index.reconstruct_batch(positions)
        return top_k_of(rows, store._ids[positions], q, k)
    k = min(int(k), len(positions))
    bits = np.packbits(keep, bitorder="little")
    subset = (faiss.IDSelectorBitmap(store._n, faiss.swig_ptr(bits)), share)
    if store.kind == "ivfpq":
        scores, found = store._search_ivfpq(q, k, subset)
    else:
        assert store.index is not None
        scores, found = store.index.search(q, k, params=store._params(k, subset))
    del bits  # kept alive until here: the selector points into it
    ids = np.where(found >= 0, store._ids[np.maximum(found, 0)], -1)
    return np.where(ids >= 0, scores, -np.inf).astype(np.float32), ids


def filtered_hits(
    catalog: Catalog,
    store: Any,
    filter: SearchFilter | None,
    target: str,
    queries: np.ndarray,
    k: int,
    offset: int,
) -> list[list[SearchHit]]:
    """The page [offset, offset + k) of hits of each query row among the rows `filter` allows."""
    # i2t / t2t leave tags out (class names, not sentences): ask for more while some are
    hidden = catalog.count_generated() if target == "texts" else 0
    fetch = offset + k
    while True:
        scores, ids = filtered_search(catalog, store, filter, target, queries, fetch)
        per_query = [
            [(float(s), int(i)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0]
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]
        pages = hits_of(catalog, per_query, target)
        if not hidden or fetch >= len(store) or min(map(len, pages)) >= offset + k:
            return [hits[offset : offset + k] for hits in pages]
        fetch = min(len(store), fetch + max(fetch, hidden // 8))
