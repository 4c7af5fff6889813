"""The catalogue of a collection in PostgreSQL: `Catalog`'s methods over a database.

`PgCatalog` answers every method `Collection` and `crossmodal.index` call on the SQLite
`Catalog` (catalog.py), with the same arguments and results, so the facade, the index run and
the web app work unchanged on either. Each method is one or a few SQL statements: a new
catalogue feature is added here by writing its statements once more in PostgreSQL's dialect.
Until then, `Catalog` methods this class lacks refuse with one line (`__getattr__`), never an
`AttributeError` from deep inside a command.

Transactions work as in SQLite's `Catalog.transaction`: one connection per object, guarded
by a lock, `BEGIN … COMMIT` by hand (nested calls join the outer one). Every vector row is
written with its catalogue row in one transaction, as in SQLite, and with its pgvector
`embedding` once `PgStoreCache` has made that column (`embedder`), so a kill -9 at any
instant leaves one committed state whose search index agrees with it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from crossmodal.errors import CollectionError
from crossmodal.index.catalog import Catalog, fs_bytes, vector_blob
from crossmodal.index.catalog_sql import POSTGRES
from crossmodal.index.pg_connection import (
    ChangeProbe,
    DatabasePath,
    connect,
    first_line,
    shown_url,
    vector_text,
)
from crossmodal.index.pg_schema import PG_MIGRATIONS, PG_SCHEMA_VERSION
from crossmodal.index.pg_texts import PgTextTable, valid_ids
from crossmodal.index.schema import FailureRow, ImageRow

__all__ = ["PgCatalog"]

#: advisory lock keys (per database and schema): schema set-up, writer, embedding column
SCHEMA_LOCK = "crossmodal:schema"
_PATH_COLUMNS = frozenset(("relpath", "path", "reason"))
_IMAGE_COLS = "id, root_id, relpath, hash, size, mtime_ns, width, height, indexed_at"
Embedder = Callable[[str, np.ndarray], np.ndarray]


def _path(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape")


def _image_row(r: dict[str, Any]) -> ImageRow:
    return ImageRow(**{**r, "relpath": _path(r["relpath"])})  # type: ignore[typeddict-item]  # the columns of ImageRow


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    """A lost or refused connection -> one line naming the database (a bug of ours raises)."""

    @functools.wraps(method)
    def wrapper(self: PgCatalog, *args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return method(self, *args, **kwargs)
        except psycopg.OperationalError as exc:
            raise CollectionError(f"database {self.url_shown}: {first_line(exc)}") from None

    return wrapper


class PgCatalog(PgTextTable):
    """One connection to a PostgreSQL database; thread-safe like `Catalog` (one lock). The
    methods of its texts are in pg_texts.py."""

    #: the dialect of the SQL that facts.py and filters.py share with SQLite (catalog_sql.py)
    SQL_DIALECT = POSTGRES

    def __init__(self, url: str, connect_timeout: float = 10) -> None:
        self.url = url
        self.url_shown = shown_url(url)
        #: what messages and `Collection.path` name (no folder: the database is the collection)
        self.path = DatabasePath(self.url_shown)
        self.path.url = self.url_shown
        self._con = connect(url, self.url_shown, int(connect_timeout))
        self._lock = threading.RLock()
        self._depth = 0
        #: table -> rows as the store keeps them; set by PgStoreCache once `embedding` exists
        self.embedders: dict[str, Embedder] = {}
        self.ensure_version()

    # ---- feature gaps -----------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        """A `Catalog` method not written for PostgreSQL yet: refuse with one line."""
        if not name.startswith("_") and callable(getattr(Catalog, name, None)):

            def missing(*_args: Any, **_kwargs: Any) -> Any:
                raise CollectionError(
                    f"{name.replace('_', ' ')} is not available for a collection in PostgreSQL "
                    f"yet ({self.url_shown}); use a collection folder (--collection) for it / "
                    "PostgreSQL 集合暂不支持此功能"
                )

            return missing
        raise AttributeError(name)

    # ---- SQL helpers (lock held by the caller or taken here) --------------------------------
    def _exec(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        with self._lock:
            return self._con.execute(sql, args)

    def _dicts(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._lock, self._con.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, args)
            rows: list[dict[str, Any]] = cur.fetchall()
        return rows

    def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        row = self._exec(sql, args).fetchone()
        return None if row is None else row[0]

    def fetch_dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of SQL shared with SQLite (catalog_sql.py) as dicts, in one snapshot; paths
        (bytea here) decoded as SQLite's catalogue decodes them."""
        with self.snapshot():
            rows = self._dicts(sql, args)
        for row in rows:
            for name in _PATH_COLUMNS.intersection(row):
                if row[name] is not None:
                    row[name] = _path(row[name])
        return rows

    def fetch_values(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The first column of the rows of SQL shared with SQLite, in one snapshot."""
        with self.snapshot():
            return [r[0] for r in self._exec(sql, args).fetchall()]

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """`sql` once per row of arguments, in one transaction."""
        with self.transaction(), self._lock, self._con.cursor() as cur:
            cur.executemany(sql, list(rows))

    def advisory_xact_lock(self, name: str) -> None:
        """Inside a transaction: wait for the lock `name` of this database and schema."""
        self._exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || %s))", (name,))

    # ---- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        if self._one("SELECT to_regclass('meta')") is None:
            return 0
        value = self._one("SELECT value FROM meta WHERE key='schema_version'")
        return int(value) if value else 0

    def ensure_version(self) -> None:
        """Run the migrations this database has not seen, in order, in one transaction."""
        import psycopg

        try:
            with self.transaction():
                self.advisory_xact_lock(SCHEMA_LOCK)
                version = self.schema_version()
                if version > PG_SCHEMA_VERSION:
                    raise CollectionError(
                        f"{self.url_shown} was written by a newer crossmodal (schema {version}, "
                        f"this one reads up to {PG_SCHEMA_VERSION}): upgrade crossmodal"
                    )
                if version < PG_SCHEMA_VERSION:
                    self._create_vector_extension()
                for step in range(version, PG_SCHEMA_VERSION):
                    with self._lock, self._con.cursor() as cur:
                        PG_MIGRATIONS[step](cur)
                if version != PG_SCHEMA_VERSION:
                    self.set_meta("schema_version", str(PG_SCHEMA_VERSION))
        except psycopg.Error as exc:
            raise CollectionError(
                f"{self.url_shown} cannot hold a crossmodal collection: {first_line(exc)}"
            ) from None

    def _create_vector_extension(self) -> None:
        import psycopg

        try:
            self._exec("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise CollectionError(
                f"database {self.url_shown} has no pgvector extension and this user cannot add "
                f"it ({first_line(exc)}): install pgvector on the server, or have its owner "
                "run CREATE EXTENSION vector"
            ) from None

    # ---- transactions -----------------------------------------------------------------------
    @contextmanager
    def transaction(self, begin: str = "BEGIN") -> Iterator[Any]:
        """BEGIN … COMMIT (ROLLBACK on error); nested calls join the outer one."""
        import psycopg

        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._con
                finally:
                    self._depth -= 1
                return
            self._con.execute(begin)
            self._depth = 1
            try:
                yield self._con
            except BaseException:
                self._depth = 0
                with contextlib.suppress(psycopg.Error):  # a lost connection refuses it too
                    self._con.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._con.execute("COMMIT")
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    self._con.execute("ROLLBACK")
                raise

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read transaction: every query inside sees one committed state."""
        with self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as con:
            yield con

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._con.close()

    # ---- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key=%s", (key,))
        return default if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta(key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def delete_meta(self, key: str) -> None:
        self._exec("DELETE FROM meta WHERE key=%s", (key,))

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._exec("SELECT key, value FROM meta").fetchall()}

    def generation(self, table: str) -> int:
        """Counter bumped by every committed change to the vectors of `images` or `texts`."""
        return int(self.get_meta(f"{table}_generation", "0") or 0)

    def bump_generation(self, table: str) -> int:
        with self.transaction():
            value = self.generation(table) + 1
            self.set_meta(f"{table}_generation", str(value))
        return value

    def change_count(self) -> int:
        """Bumped by every statement that changed any table (a web page cache's key)."""
        return int(self._one("SELECT n FROM change_count"))

    def version_probe(self) -> ChangeProbe:
        """What a web server asks before answering from its page cache: a number that changes
        with every commit anyone makes (SQLite's `PRAGMA data_version`), on its own
        connection so that it never waits behind this one's transaction."""
        return ChangeProbe(self.url, self.url_shown)

    def database_bytes(self) -> int:
        return int(self._one("SELECT pg_database_size(current_database())"))

    # ---- roots ------------------------------------------------------------------------------
    def roots(self) -> dict[int, str]:
        return {int(i): _path(p) for i, p in self._exec("SELECT id, path FROM roots").fetchall()}

    def add_root(self, path: str) -> int:
        with self.transaction():
            self._exec(
                "INSERT INTO roots(path, added_at) VALUES (%s, %s) ON CONFLICT (path) DO NOTHING",
                (fs_bytes(path), time.time()),
            )
            return int(self._one("SELECT id FROM roots WHERE path=%s", (fs_bytes(path),)))

    def merge_root(self, child_id: int, parent_id: int, prefix: str) -> int:
        """Re-home the rows of root `child_id` under `parent_id` (see `Catalog.merge_root`)."""
        head = fs_bytes(prefix + "/")
        with self.transaction():
            for table in ("images", "failures"):
                # SQLite's UPDATE OR IGNORE: rows the parent already has stay with the child
                self._exec(
                    f"UPDATE {table} AS c SET root_id=%s, relpath=%s || c.relpath "
                    f"WHERE c.root_id=%s AND NOT EXISTS (SELECT 1 FROM {table} p "
                    "WHERE p.root_id=%s AND p.relpath = %s || c.relpath)",
                    (parent_id, head, child_id, parent_id, head),
                )
            left = [r[0] for r in self._exec("SELECT id FROM images WHERE root_id=%s", (child_id,))]
            self.delete_images(left)
            self._exec("DELETE FROM failures WHERE root_id=%s", (child_id,))
            self._exec("DELETE FROM roots WHERE id=%s", (child_id,))
        return len(left)

    # ---- images -----------------------------------------------------------------------------
    def images_under(self, root_id: int, prefix: str = "") -> dict[str, ImageRow]:
        sql, args = _under_root(f"SELECT {_IMAGE_COLS} FROM images", root_id, prefix)
        return {(row := _image_row(r))["relpath"]: row for r in self._dicts(sql, args)}

    def get_images(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        rows = self._dicts(
            f"SELECT {_IMAGE_COLS} FROM images WHERE id = ANY(%s)", (valid_ids(ids),)
        )
        return {int(r["id"]): _image_row(r) for r in rows}

    def image_vector(self, image_id: int) -> np.ndarray | None:
        if not valid_ids([image_id]):
            return None
        blob = self._one("SELECT vector FROM images WHERE id=%s", (int(image_id),))
        return None if blob is None else np.frombuffer(bytes(blob), dtype=np.float32).copy()

    def image_at(self, root_id: int, relpath: str) -> ImageRow | None:
        rows = self._dicts(
            f"SELECT {_IMAGE_COLS} FROM images WHERE root_id=%s AND relpath=%s",
            (root_id, fs_bytes(relpath)),
        )
        return _image_row(rows[0]) if rows else None

    def image_vectors(self, ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, their vectors) of these images, in the order of `ids`."""
        found = {
            int(i): bytes(blob)
            for i, blob in self._exec(
                "SELECT id, vector FROM images WHERE id = ANY(%s)", (valid_ids(ids),)
            ).fetchall()
        }
        order = [int(i) for i in ids if int(i) in found]
        blob = b"".join(found[i] for i in order)
        return np.array(order, np.int64), np.frombuffer(blob, np.float32).reshape(-1, dim)

    def _embedding(self, table: str, vector: np.ndarray) -> str | None:
        embed = self.embedders.get(table)
        return None if embed is None else vector_text(embed(table, vector[None])[0])

    def insert_image(
        self,
        root_id: int,
        relpath: str,
        digest: str,
        size: int,
        mtime_ns: int,
        width: int | None,
        height: int | None,
        vector: np.ndarray,
    ) -> int:
        row = (root_id, fs_bytes(relpath), digest, size, mtime_ns, width, height, time.time())
        with self.transaction():
            return int(
                self._one(
                    "INSERT INTO images(root_id, relpath, hash, size, mtime_ns, width, height, "
                    "indexed_at, vector, embedding) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector) RETURNING id",
                    (*row, vector_blob(vector), self._embedding("images", vector)),
                )
            )

    def replace_image(
        self,
        image_id: int,
        digest: str,
        size: int,
        mtime_ns: int,
        width: int | None,
        height: int | None,
        vector: np.ndarray,
    ) -> None:
        """New content at the same path: same id (annotations stay), new vector."""
        with self.transaction():
            self._exec(
                "UPDATE images SET hash=%s, size=%s, mtime_ns=%s, width=%s, height=%s, "
                "indexed_at=%s, vector=%s, embedding=%s::vector WHERE id=%s",
                (
                    digest, size, mtime_ns, width, height, time.time(), vector_blob(vector),
                    self._embedding("images", vector), image_id,
                ),
            )  # fmt: skip

    def touch_image(self, image_id: int, size: int, mtime_ns: int) -> None:
        self._exec("UPDATE images SET size=%s, mtime_ns=%s WHERE id=%s", (size, mtime_ns, image_id))

    def move_image(
        self, image_id: int, root_id: int, relpath: str, size: int, mtime_ns: int
    ) -> None:
        self._exec(
            "UPDATE images SET root_id=%s, relpath=%s, size=%s, mtime_ns=%s WHERE id=%s",
            (root_id, fs_bytes(relpath), size, mtime_ns, image_id),
        )

    def delete_images(self, ids: Sequence[int]) -> list[int]:
        """Delete images and their texts; returns the ids of the texts that went with them."""
        wanted = valid_ids(ids)
        with self.transaction():
            text_ids = [
                int(r[0])
                for r in self._exec("SELECT id FROM texts WHERE image_id = ANY(%s)", (wanted,))
            ]
            self._exec("DELETE FROM texts WHERE image_id = ANY(%s)", (wanted,))
            self._exec("DELETE FROM images WHERE id = ANY(%s)", (wanted,))
        return text_ids

    def count(self, table: str) -> int:
        assert table in ("images", "texts", "failures", "roots")
        return int(self._one(f"SELECT count(*) FROM {table}"))

    def ids(self, table: str) -> np.ndarray:
        assert table in ("images", "texts")
        rows = self._exec(f"SELECT id FROM {table} ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], np.int64)

    def quick_check(self) -> list[str]:
        """[]: the server keeps its own files sound; a lost connection raises instead."""
        self._one("SELECT 1")
        return []

    def load_vectors(self, table: str, dim: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(generation, ids, vectors) of `images` or `texts`, read in one snapshot."""
        assert table in ("images", "texts")
        with self.snapshot():
            generation = self.generation(table)
            rows = self._exec(f"SELECT id, vector FROM {table} ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows], np.int64)
        vectors = np.empty((len(rows), dim), np.float32)
        for i, (_, blob) in enumerate(rows):
            vectors[i] = np.frombuffer(bytes(blob), dtype=np.float32)
        return generation, ids, vectors

    def sample_vectors(self, table: str, n: int, dim: int) -> np.ndarray:
        assert table in ("images", "texts")
        rows = self._exec(
            f"SELECT vector FROM {table} ORDER BY (id * 2654435761) %% 4294967291 LIMIT %s",
            (int(n),),
        ).fetchall()
        out = np.empty((len(rows), dim), np.float32)
        for i, (blob,) in enumerate(rows):
            out[i] = np.frombuffer(bytes(blob), dtype=np.float32)
        return out

    # ---- failures ---------------------------------------------------------------------------
    def failures_under(self, root_id: int, prefix: str = "") -> dict[str, FailureRow]:
        sql, args = _under_root("SELECT * FROM failures", root_id, prefix)
        out: dict[str, FailureRow] = {}
        for r in self._dicts(sql, args):
            relpath = _path(r["relpath"])
            out[relpath] = FailureRow(**{**r, "relpath": relpath, "reason": _path(r["reason"])})  # type: ignore[typeddict-item]  # the columns of FailureRow
        return out

    def set_failure(
        self, root_id: int, relpath: str, size: int, mtime_ns: int, reason: str
    ) -> None:
        self._exec(
            "INSERT INTO failures(root_id, relpath, size, mtime_ns, reason, failed_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (root_id, relpath) DO UPDATE SET "
            "size=EXCLUDED.size, mtime_ns=EXCLUDED.mtime_ns, reason=EXCLUDED.reason, "
            "failed_at=EXCLUDED.failed_at",
            (root_id, fs_bytes(relpath), size, mtime_ns, fs_bytes(reason), time.time()),
        )

    def clear_failures(self, root_id: int, relpaths: Sequence[str]) -> None:
        self._exec(
            "DELETE FROM failures WHERE root_id=%s AND relpath = ANY(%s)",
            (root_id, [fs_bytes(r) for r in relpaths]),
        )

    # ---- whole-collection changes (Collection's SQLite statements, in this dialect) ---------
    def reset_vectors(self) -> None:
        """Forget every image, text and failure and the model (`Collection._reset_vectors`)."""
        with self.transaction():
            for table in ("texts", "images", "failures"):
                self._exec(f"DELETE FROM {table}")
            self._exec(
                "DELETE FROM meta WHERE key IN ('model_name', 'model_fingerprint', 'dim') "
                "OR key LIKE 'pg_embedding.%%'"
            )
            for table in ("images", "texts"):
                self.bump_generation(table)


# every public method turns a lost connection into one line
for _name, _method in [*vars(PgTextTable).items(), *vars(PgCatalog).items()]:
    if callable(_method) and not _name.startswith("_") and _name not in (
        "transaction", "snapshot", "close",
    ):  # fmt: skip
        setattr(PgCatalog, _name, _translating(_method))


def _under_root(select: str, root_id: int, prefix: str) -> tuple[str, tuple[Any, ...]]:
    """`select` narrowed to the rows of one root (below `prefix/` when given), and its args."""
    sql = f"{select} WHERE root_id=%s"
    args: tuple[Any, ...] = (root_id,)
    if prefix:
        head = fs_bytes(prefix + "/")  # compared as bytes, as the names are stored
        sql += " AND substring(relpath from 1 for %s) = %s"
        args += (len(head), head)
    return sql, args
