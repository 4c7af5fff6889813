"""Vectors searched inside PostgreSQL (pgvector), and the writer lock as an advisory lock.

`PgVectorStore` is a `VectorStore` whose rows are the catalogue's own: a search is
`ORDER BY embedding <#> q LIMIT k` (pgvector's negative inner product) on the `embedding`
column, through its HNSW index on large tables and by an exact scan on small ones (below
`EXACT_ROWS`, or when `k` is past what HNSW's candidate list can give), where it returns what
the embedded exact store does. There is nothing to add, remove, save or rebuild by hand: the
catalogue writes each row's embedding in the transaction that writes the row.

`PgStoreCache` stands where `StoreCache` (writer.py) stands for a collection folder: it types
the `embedding` column to the model's stored width (the vector, plus the hubness offset
column when the model has a correction), fills rows that have none, and builds the HNSW index,
once per database and model, under an advisory lock so that processes on several machines do
it once.

`PgWriterLock` is the collection's writer lock as a PostgreSQL session advisory lock: writers
on any machine take turns (a second writer waits for the first, up to `writer_wait_s()`), and
the server drops the lock of a writer that dies, even by kill -9.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.errors import CollectionBusy, CollectionError
from crossmodal.index.pg_catalog import PgCatalog
from crossmodal.index.pg_connection import connect, vector_text
from crossmodal.index.store import VectorStore, as_ids, as_vectors
from crossmodal.index.writer import TABLES, StoreCache, WriterLock
from crossmodal.models.hubness import HubnessCorrection

__all__ = [
    "EXACT_ROWS",
    "PG_STORE",
    "PgStoreCache",
    "PgVectorStore",
    "PgWriterLock",
    "writer_wait_s",
]

log = logging.getLogger(__name__)

#: the store kind a collection in PostgreSQL records (meta "store")
PG_STORE = "pgvector-hnsw"
#: Up to this many rows a search scans every row (exact, like the embedded store); above it
#: the HNSW index answers. An exact scan of 20k rows takes a few ms in PostgreSQL.
EXACT_ROWS = 20_000
#: HNSW's candidate list per search: at least this, and at least 2 k (pgvector's limit: 1000)
EF_SEARCH = 100
MAX_EF_SEARCH = 1000
WRITER_LOCK = "crossmodal:writer"
EMBEDDING_LOCK = "crossmodal:embedding"


def writer_wait_s() -> float:
    """How long a writer waits for another one ($CROSSMODAL_DB_WRITER_WAIT, default 1 h)."""
    try:
        return float(os.environ.get("CROSSMODAL_DB_WRITER_WAIT", "3600"))
    except ValueError:
        return 3600.0


class PgVectorStore(VectorStore):
    """The `embedding` column of `table`, searched by pgvector (see the module's text)."""

    def __init__(self, catalog: PgCatalog, table: str, dim: int) -> None:
        assert table in TABLES
        self.catalog = catalog
        self.table = table
        self.dim = int(dim)
        #: rows at the generation last seen (`PgStoreCache.get` keeps it current)
        self.rows = 0

    @property
    def kind(self) -> str:
        return PG_STORE

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        """Nothing to do: the catalogue wrote these rows' embeddings with the rows."""

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Nothing to do: deleting the catalogue's rows deleted their embeddings."""
        return 0

    def exact_for(self, k: int) -> bool:
        return self.rows <= EXACT_ROWS or k > MAX_EF_SEARCH

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search(queries, k, None)

    def search_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k among the `allowed` ids (a filtered search): a scan of those rows
        alone, which is what the embedded exact store answers."""
        wanted = [int(i) for i in as_ids(allowed)]
        return self._search(queries, min(int(k), len(wanted)), wanted)

    def _search(
        self, queries: np.ndarray, k: int, allowed: list[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim)
        k = int(k)
        found: list[list[tuple[float, int]]] = []
        if k > 0 and len(q):
            # one snapshot for every query of the batch; the settings last for it alone
            with self.catalog.snapshot():
                if allowed is not None or self.exact_for(k):
                    self.catalog._exec("SET LOCAL enable_indexscan = off")
                else:
                    ef = min(MAX_EF_SEARCH, max(EF_SEARCH, 2 * k))
                    self.catalog._exec(f"SET LOCAL hnsw.ef_search = {ef}")
                subset = "" if allowed is None else "AND id = ANY(%s) "
                sql = (
                    f"SELECT id, embedding <#> %s::vector AS distance FROM {self.table} "
                    f"WHERE embedding IS NOT NULL {subset}ORDER BY distance LIMIT %s"
                )
                for query in q:
                    args = (vector_text(query), *(() if allowed is None else (allowed,)), k)
                    rows = self.catalog._exec(sql, args).fetchall()
                    found.append([(-float(d), int(i)) for i, d in rows])
        width = max((len(f) for f in found), default=0)
        scores = np.full((len(q), width), -np.inf, np.float32)
        ids = np.full((len(q), width), -1, np.int64)
        for row, pairs in enumerate(found):
            for col, (score, row_id) in enumerate(pairs):
                scores[row, col], ids[row, col] = score, row_id
        return scores, ids

    def save(self, path: str | Path) -> None:
        """Nothing to save: the database is the store."""

    @classmethod
    def load(cls, path: str | Path) -> VectorStore:
        raise CollectionError("a PostgreSQL store is opened with its database, not a file")

    def __len__(self) -> int:
        return self.rows


class PgWriterLock(WriterLock):
    """The writer lock as a session advisory lock on a connection of its own."""

    def __init__(self, url: str, shown: str, guard: threading.RLock) -> None:
        super().__init__(Path(shown), guard)
        self.url = url
        self.shown = shown
        self._con: Any = None

    def _connection(self) -> Any:
        if self._con is None or self._con.closed:
            self._con = connect(self.url, self.shown)
        return self._con

    def try_acquire(self) -> bool:
        if self.depth:
            self.depth += 1
            return True
        got = self._connection().execute(
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || %s))", (WRITER_LOCK,)
        )
        if not got.fetchone()[0]:
            return False
        self.depth = 1
        return True

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self._con is not None:
            with contextlib.suppress(Exception):  # a lost connection has dropped it already
                self._con.execute(
                    "SELECT pg_advisory_unlock(hashtext(current_schema() || %s))", (WRITER_LOCK,)
                )

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One writer at a time across machines: a second one waits its turn."""
        with self.guard:
            deadline = time.monotonic() + writer_wait_s()
            told = False
            while not self.try_acquire():
                if time.monotonic() > deadline:
                    raise CollectionBusy(
                        f"collection {self.shown} is being changed by another process (an "
                        "index run?) and stayed so past $CROSSMODAL_DB_WRITER_WAIT seconds: "
                        "try again later"
                    )
                if not told:
                    log.warning("waiting for another writer of %s to finish…", self.shown)
                    told = True
                time.sleep(0.2)
            try:
                yield
            finally:
                self.release()

    def close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None


class PgStoreCache(StoreCache):
    """The pgvector store of each table (see the module's text)."""

    def __init__(
        self,
        catalog: PgCatalog,
        writer: PgWriterLock,
        dim: Callable[[], int],
        hubness: Callable[[], HubnessCorrection | None],
    ) -> None:
        super().__init__(catalog.path, catalog, writer, dim, hubness)  # type: ignore[arg-type]  # PgCatalog has Catalog's methods
        self.pg = catalog
        self._checked: dict[str, int] = {}

    def get(self, table: str) -> VectorStore:
        """The store of `table`; its embeddings made current when anyone committed since."""
        with self.writer.guard:
            generation = self.pg.generation(table)
            store = self._stores.get(table)
            if store is None or self._checked.get(table) != generation:
                self._ensure_embeddings(table)
                store = self._stores.get(table)
                if store is None or store.dim != self.stored_dim():
                    store = self._stores[table] = PgVectorStore(self.pg, table, self.stored_dim())
                assert isinstance(store, PgVectorStore)
                store.rows = self.pg.count(table)
                self._checked[table] = generation
            self._store_gen[table] = generation
            return store

    def _tag(self) -> str:
        correction = self._hubness()
        return f"{self.stored_dim()}:{correction.digest if correction is not None else '-'}"

    def _ensure_embeddings(self, table: str, force: bool = False) -> None:
        """Type the column to this model's width and fill it, once per database and model;
        then fill rows written without one (by a process that had not typed it yet)."""
        key, tag = f"pg_embedding.{table}", self._tag()
        if force or self.pg.get_meta(key) != tag:
            with self.pg.transaction():
                self.pg.advisory_xact_lock(f"{EMBEDDING_LOCK}:{table}")
                if force or self.pg.get_meta(key) != tag:
                    self._retype(table)
                    self.pg.set_meta(key, tag)
        self.pg.embedders[table] = self.rows
        if self.pg._one(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE embedding IS NULL)"):
            with self.pg.transaction():
                self.pg.advisory_xact_lock(f"{EMBEDDING_LOCK}:{table}")
                self._fill(table)

    def _retype(self, table: str) -> None:
        """Column typed to the stored width, every row's embedding computed, HNSW index made."""
        self.pg._exec(f"DROP INDEX IF EXISTS {table}_embedding_hnsw")
        self.pg._exec(
            f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({self.stored_dim()}) "
            "USING NULL"
        )
        self._fill(table)
        # inner product (`<#>`), as the exact store ranks; m and ef_construction: pgvector's
        # defaults (16, 64)
        self.pg._exec(
            f"CREATE INDEX {table}_embedding_hnsw ON {table} USING hnsw (embedding vector_ip_ops)"
        )

    def _fill(self, table: str, chunk: int = 1000) -> None:
        """Embeddings of the rows that have none, from their vectors (transaction held)."""
        dim = self._dim()
        while True:
            rows = self.pg._exec(
                f"SELECT id, vector FROM {table} WHERE embedding IS NULL ORDER BY id LIMIT %s",
                (chunk,),
            ).fetchall()
            if not rows:
                return
            vectors = np.stack([np.frombuffer(bytes(blob), np.float32) for _, blob in rows])
            stored = self.rows(table, vectors.reshape(-1, dim))
            with self.pg._lock, self.pg._con.cursor() as cur:
                cur.executemany(
                    f"UPDATE {table} SET embedding=%s::vector WHERE id=%s",
                    [(vector_text(v), int(i)) for v, (i, _) in zip(stored, rows, strict=True)],
                )

    # ---- what StoreCache does with files: nothing to do here -------------------------------
    def apply(self, changes: Any) -> None:
        """The rows' embeddings were committed with them: nothing to apply."""

    def load(self, *tables: str) -> None:
        """Type and fill the embedding columns before a transaction writes rows."""
        for table in tables:
            self.get(table)

    def forget(self, *patterns: str) -> None:
        self._stores.clear()
        self._store_gen.clear()
        self._checked.clear()
        self.pg.embedders.clear()

    def info(self, table: str = "images") -> dict[str, Any]:
        store = self.get(table)
        assert isinstance(store, PgVectorStore)
        index = self.pg._one("SELECT to_regclass(%s)", (f"{table}_embedding_hnsw",))
        size = self.pg._one("SELECT pg_relation_size(%s)", (index,)) if index else 0
        exact = store.exact_for(10)
        return {
            "kind": PG_STORE,
            "rows": len(store),
            "exact": exact,  # an exact scan answers (below EXACT_ROWS rows)
            "recall_at_10": 1.0 if exact else None,
            "params": {"exact_below_rows": EXACT_ROWS, "ef_search": f">= {EF_SEARCH}"},
            "memory_bytes": int(size or 0),  # the HNSW index, held by the server
            "built_at": None,
        }

    def save(self) -> None:
        """Record each loaded store's info for `stats` (which loads no model)."""
        if not self.writer.depth:
            return
        for table in list(self._stores):
            self.pg.set_meta(f"store_info.{table}", json.dumps(self.info(table)))

    def try_save(self) -> None:
        """Nothing to save."""

    def refresh(self, force: bool = False, show_progress: bool = False) -> list[str]:
        """`force` (`index --optimize`): every embedding and the HNSW index made again."""
        if not force:
            return []
        for table in TABLES:
            self._ensure_embeddings(table, force=True)
            self._checked.pop(table, None)
        self.save()
        return list(TABLES)
