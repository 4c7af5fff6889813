"""A `SearchFilter` as SQL over the catalogue, and the ids it lets through.

Filtered search is: the ids of the rows that pass (one SELECT on `images`, joined to `texts`
for text results), then the vector store's `search_subset` over those ids, which scores them
directly when they are few and otherwise searches the index with a FAISS `IDSelector`
(crossmodal/index/store.py, ann.py): the top k of the passing rows, whatever the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.index.catalog import Catalog, fs_bytes
from crossmodal.search_filter import SearchFilter

__all__ = ["allowed_ids", "filter_sql", "filtered_search"]


def filter_sql(flt: SearchFilter, roots: dict[int, str]) -> tuple[str, list[Any]]:
    """(condition on `images` aliased `i`, its arguments); "1" when the filter is empty."""
    where: list[str] = []
    args: list[Any] = []
    if flt.taken_from is not None:
        where.append("i.taken >= ?")
        args.append(flt.taken_from)
    if flt.taken_until is not None:
        where.append("i.taken < ?")
        args.append(flt.taken_until)
    if flt.camera:
        # SQLite's lower() folds ASCII only: Python folds the term, SQL the (ASCII) names
        where.append(
            "instr(lower(coalesce(i.camera_make, '') || ' ' || coalesce(i.camera_model, '')), ?)"
            " > 0"
        )
        args.append(flt.camera.lower())
    if flt.gps is True or flt.within is not None:
        where.append("i.gps_lat IS NOT NULL AND i.gps_lon IS NOT NULL")
    elif flt.gps is False:
        where.append("(i.gps_lat IS NULL OR i.gps_lon IS NULL)")
    if flt.within is not None:
        south, west, north, east = flt.within
        where.append("i.gps_lat BETWEEN ? AND ? AND i.gps_lon BETWEEN ? AND ?")
        args += [south, north, west, east]
    if flt.types:
        where.append(f"i.file_type IN ({','.join('?' * len(flt.types))})")
        args += list(flt.types)
    if flt.min_size is not None:
        where.append("i.size >= ?")
        args.append(flt.min_size)
    if flt.max_size is not None:
        where.append("i.size <= ?")
        args.append(flt.max_size)
    if flt.folder is not None:
        sql, more = _folder_sql(flt.folder, roots)
        where.append(sql)
        args += more
    return (" AND ".join(where) or "1"), args


def _under(prefix: str) -> tuple[str, list[Any]]:
    """Rows whose relpath starts with `prefix/` (compared as bytes, like `_under_root`)."""
    head = fs_bytes(prefix.rstrip("/") + "/")
    return "substr(CAST(i.relpath AS BLOB), 1, ?) = ?", [len(head), head]


def _folder_sql(folder: str, roots: dict[int, str]) -> tuple[str, list[Any]]:
    """Photos under `folder`: absolute (compared as given, never through links, like
    `Collection.remove`), or relative to every indexed folder."""
    if not os.path.isabs(folder):
        return _under(folder)
    target = Path(folder)
    parts: list[str] = []
    args: list[Any] = []
    for root_id, root in roots.items():
        top = Path(root)
        if target == top or top.is_relative_to(target):
            parts.append("i.root_id = ?")
            args.append(root_id)
        elif target.is_relative_to(top):
            sql, more = _under(target.relative_to(top).as_posix())
            parts.append(f"(i.root_id = ? AND {sql})")
            args += [root_id, *more]
    return ("(" + " OR ".join(parts) + ")") if parts else "0", args


def allowed_ids(catalog: Catalog, flt: SearchFilter, target: str) -> np.ndarray:
    """Ids of the rows of `target` ("images" or "texts") that pass, ascending."""
    where, args = filter_sql(flt, catalog.roots())
    if target == "images":
        sql = f"SELECT i.id FROM images i WHERE {where}"
    else:
        sql = f"SELECT t.id FROM texts t JOIN images i ON i.id = t.image_id WHERE {where}"
    return catalog.matching_ids(sql, args)


def filtered_search(
    catalog: Catalog, store: Any, flt: SearchFilter, target: str, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best rows of `target` that pass `flt`, per query (the query
    rows already carry the hubness column when the store has one)."""
    allowed = allowed_ids(catalog, flt, target)
    if not len(allowed):
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores, ids = store.search_subset(queries, k, allowed)
    return scores, ids
