"""The SQLite catalogue of a collection: one row per indexed image, its texts, and its vector.

Crash safety: every vector lives in SQLite (float32 blob) in the same row - and so the same
transaction - as the file it describes. The FAISS files beside the catalogue are caches that can
always be rebuilt from it: each is named after the catalogue's *generation* counter (one for
image vectors, one for text vectors) at the time it was written, the counter is bumped in every
transaction that changes vectors, and a store whose file does not carry the current generation
is rebuilt from the blobs on open. So a process killed at any point (even `kill -9`, mid-batch)
leaves a catalogue that is one of its committed states, and vectors that agree with it.

SQLite runs in WAL mode with `synchronous=NORMAL`: a killed process loses nothing committed; a
power cut may lose the last few commits but never corrupts the file.

The schema is versioned like rclip's `db.py`: `SCHEMA_VERSION` plus an ordered list of
migrations, each taking a catalogue from version i to i + 1, run in one transaction on open
(`Catalog.ensure_version`). The tables, the migrations and the row types are in `schema.py`.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.errors import CatalogBusy, CollectionError
from crossmodal.index.catalog_texts import TextTable, vector_blob
from crossmodal.index.catalog_texts import chunks as _chunks
from crossmodal.index.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    FailureRow,
    ImageRow,
    TextRow,
)

__all__ = [
    "MAX_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Catalog",
    "CatalogDamaged",
    "FailureRow",
    "ImageRow",
    "TextRow",
    "fs_bytes",
]

#: Largest row id SQLite can hold (a signed 64-bit integer); larger ids name no row.
MAX_ID = 2**63 - 1


def fs_bytes(text: str) -> bytes:
    """A path (or a message naming one) as the bytes the OS gave, for `CAST(? AS TEXT)`.

    A file name that is not UTF-8 reaches Python with its odd bytes as lone surrogates
    (surrogateescape), which the sqlite3 module refuses to bind as text; bound as these bytes
    and cast, it is stored byte for byte, and `_decode_text` gives back the same `str`.
    """
    return text.encode("utf-8", "surrogateescape")


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class CatalogDamaged(CollectionError):
    """The SQLite file is damaged (or not one): one line naming it and the repair command."""


def database_error(path: Path, exc: sqlite3.Error) -> CollectionError:
    """A sqlite3 error -> one line that names the file and what to do."""
    folder = path.parent
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return CatalogBusy(
            f"catalogue {path} is busy ({exc}): another process is writing it; try again"
        )
    return CatalogDamaged(
        f"catalogue {path} is damaged ({exc}): run `crossmodal check --collection {folder} "
        "--repair`"
    )


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug of ours, not the file's
        except sqlite3.DatabaseError as exc:
            raise database_error(self.path, exc) from None

    return wrapper


def _valid_ids(ids: Sequence[int]) -> list[int]:
    """The ids a row can have: SQLite cannot even bind an integer past 64 bits."""
    return [int(i) for i in ids if -MAX_ID <= int(i) <= MAX_ID]


class Catalog(TextTable):
    """One SQLite file; every method is safe to call from several threads (one lock). The
    methods of its texts are in catalog_texts.py."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._con = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._con.row_factory = sqlite3.Row
            self._con.text_factory = _decode_text
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise CollectionError(f"cannot open catalogue {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._depth = 0
        self.ensure_version()

    # ---- schema ---------------------------------------------------------------------------
    def schema_version(self) -> int:
        try:
            row = self._con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table: an empty (new) file
            return 0
        return int(row[0]) if row else 0

    def ensure_version(self) -> None:
        """Run the migrations this file has not seen, in order, in one transaction."""
        try:
            with self.transaction():
                version = self.schema_version()
                if version > SCHEMA_VERSION:
                    raise CollectionError(
                        f"{self.path} was written by a newer crossmodal (catalogue schema "
                        f"{version}, this one reads up to {SCHEMA_VERSION}): upgrade crossmodal"
                    )
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](self._con)
                if version != SCHEMA_VERSION:
                    self.set_meta("schema_version", str(SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            raise CollectionError(f"{self.path} is not a crossmodal catalogue: {exc}") from exc

    # ---- transactions ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._con
                finally:
                    self._depth -= 1
                return
            try:
                self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise database_error(self.path, exc) from None
            self._depth = 1
            try:
                yield self._con
            except BaseException as exc:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):  # a damaged file may refuse it too
                    self._con.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                    exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
                ):
                    raise database_error(self.path, exc) from None
                raise
            self._depth = 0
            try:
                self._con.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._con.execute("ROLLBACK")
                raise database_error(self.path, exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one committed state."""
        with self._lock:
            if self._depth:
                yield self._con
                return
            self._con.execute("BEGIN")
            self._depth = 1
            try:
                yield self._con
            finally:
                self._depth = 0
                self._con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # ---- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta(self) -> dict[str, str]:
        with self._lock:
            return {k: v for k, v in self._con.execute("SELECT key, value FROM meta")}

    def generation(self, table: str) -> int:
        """Counter bumped by every committed change to the vectors of `images` or `texts`."""
        return int(self.get_meta(f"{table}_generation", "0") or 0)

    def bump_generation(self, table: str) -> int:
        with self.transaction():
            value = self.generation(table) + 1
            self.set_meta(f"{table}_generation", str(value))
        return value

    # ---- roots ----------------------------------------------------------------------------
    def roots(self) -> dict[int, str]:
        with self._lock:
            return {r[0]: r[1] for r in self._con.execute("SELECT id, path FROM roots")}

    def add_root(self, path: str) -> int:
        with self.transaction():
            self._con.execute(
                "INSERT OR IGNORE INTO roots(path, added_at) VALUES (CAST(? AS TEXT), ?)",
                (fs_bytes(path), time.time()),
            )
            return int(
                self._con.execute(
                    "SELECT id FROM roots WHERE path=CAST(? AS TEXT)", (fs_bytes(path),)
                ).fetchone()[0]
            )

    def merge_root(self, child_id: int, parent_id: int, prefix: str) -> int:
        """Re-home the rows of root `child_id` under `parent_id`, paths prefixed with `prefix/`.

        Rows the parent already has for the same file are dropped from the child (with their
        texts); returns how many were dropped.
        """
        with self.transaction():
            for table in ("images", "failures"):
                self._con.execute(
                    f"UPDATE OR IGNORE {table} SET root_id=?, "
                    "relpath=CAST(? AS TEXT) || '/' || relpath WHERE root_id=?",
                    (parent_id, fs_bytes(prefix), child_id),
                )
            left = [
                r[0]
                for r in self._con.execute("SELECT id FROM images WHERE root_id=?", (child_id,))
            ]
            self.delete_images(left)
            self._con.execute("DELETE FROM failures WHERE root_id=?", (child_id,))
            self._con.execute("DELETE FROM roots WHERE id=?", (child_id,))
        return len(left)

    # ---- images ---------------------------------------------------------------------------
    _IMAGE_COLS = "id, root_id, relpath, hash, size, mtime_ns, width, height, indexed_at"

    def images_under(self, root_id: int, prefix: str = "") -> dict[str, ImageRow]:
        """relpath -> row for the images of one root (below `prefix/` when given)."""
        sql, args = _under_root(f"SELECT {self._IMAGE_COLS} FROM images", root_id, prefix)
        with self._lock:
            return {r["relpath"]: ImageRow(**dict(r)) for r in self._con.execute(sql, args)}  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns

    def get_images(self, ids: Sequence[int]) -> dict[int, ImageRow]:
        out: dict[int, ImageRow] = {}
        with self._lock:
            for chunk in _chunks(_valid_ids(ids)):
                marks = ",".join("?" * len(chunk))
                for r in self._con.execute(
                    f"SELECT {self._IMAGE_COLS} FROM images WHERE id IN ({marks})", tuple(chunk)
                ):
                    out[r["id"]] = ImageRow(**dict(r))  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns
        return out

    def image_vector(self, image_id: int) -> np.ndarray | None:
        if not _valid_ids([image_id]):
            return None
        with self._lock:
            row = self._con.execute("SELECT vector FROM images WHERE id=?", (image_id,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def image_at(self, root_id: int, relpath: str) -> ImageRow | None:
        with self._lock:
            r = self._con.execute(
                f"SELECT {self._IMAGE_COLS} FROM images WHERE root_id=? AND "
                "relpath=CAST(? AS TEXT)",
                (root_id, fs_bytes(relpath)),
            ).fetchone()
        return None if r is None else ImageRow(**dict(r))  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns

    def image_vectors(self, ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, their vectors) of these images, in the order of `ids`."""
        found: dict[int, bytes] = {}
        with self._lock:
            for chunk in _chunks(_valid_ids(ids)):
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._con.execute(
                        f"SELECT id, vector FROM images WHERE id IN ({marks})", tuple(chunk)
                    ).fetchall()
                )
        order = [int(i) for i in ids if int(i) in found]
        blob = b"".join(found[i] for i in order)
        return np.array(order, np.int64), np.frombuffer(blob, np.float32).reshape(-1, dim)

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
        with self.transaction():
            cur = self._con.execute(
                "INSERT INTO images(root_id, relpath, hash, size, mtime_ns, width, height, "
                "indexed_at, vector) VALUES (?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?)",
                (
                    root_id,
                    fs_bytes(relpath),
                    digest,
                    size,
                    mtime_ns,
                    width,
                    height,
                    time.time(),
                    vector_blob(vector),
                ),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]  # set after an INSERT

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
            self._con.execute(
                "UPDATE images SET hash=?, size=?, mtime_ns=?, width=?, height=?, indexed_at=?, "
                "vector=? WHERE id=?",
                (digest, size, mtime_ns, width, height, time.time(), vector_blob(vector), image_id),
            )

    def touch_image(self, image_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new stat (a `touch`, a copy that kept the bytes)."""
        with self.transaction():
            self._con.execute(
                "UPDATE images SET size=?, mtime_ns=? WHERE id=?", (size, mtime_ns, image_id)
            )

    def move_image(
        self, image_id: int, root_id: int, relpath: str, size: int, mtime_ns: int
    ) -> None:
        with self.transaction():
            self._con.execute(
                "UPDATE images SET root_id=?, relpath=CAST(? AS TEXT), size=?, mtime_ns=? "
                "WHERE id=?",
                (root_id, fs_bytes(relpath), size, mtime_ns, image_id),
            )

    def delete_images(self, ids: Sequence[int]) -> list[int]:
        """Delete images and their texts; returns the ids of the texts that went with them."""
        text_ids: list[int] = []
        with self.transaction():
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                text_ids += [
                    r[0]
                    for r in self._con.execute(
                        f"SELECT id FROM texts WHERE image_id IN ({marks})", tuple(chunk)
                    )
                ]
                self._con.execute(f"DELETE FROM texts WHERE image_id IN ({marks})", tuple(chunk))
                self._con.execute(f"DELETE FROM images WHERE id IN ({marks})", tuple(chunk))
        return text_ids

    def count(self, table: str) -> int:
        assert table in ("images", "texts", "failures", "roots")
        with self._lock:
            return int(self._con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def ids(self, table: str) -> np.ndarray:
        """Every row id of `images` or `texts`, ascending."""
        assert table in ("images", "texts")
        with self._lock:
            rows = self._con.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], np.int64)

    def quick_check(self) -> list[str]:
        """SQLite's `PRAGMA quick_check` ([] = sound): reads every page once (~0.1 s per
        100 MB), without the index cross-checks of `integrity_check`."""
        with self._lock:
            rows = [r[0] for r in self._con.execute("PRAGMA quick_check(5)")]
        return [] if rows == ["ok"] else rows

    def load_vectors(self, table: str, dim: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(generation, ids, vectors) of `images` or `texts`, read in one snapshot."""
        assert table in ("images", "texts")
        with self.snapshot() as con:
            generation = self.generation(table)
            n = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            ids = np.empty(n, np.int64)
            vectors = np.empty((n, dim), np.float32)
            i = 0
            for row_id, blob in con.execute(f"SELECT id, vector FROM {table} ORDER BY id"):
                ids[i] = row_id
                vectors[i] = np.frombuffer(blob, dtype=np.float32)
                i += 1
        return generation, ids[:i], vectors[:i]

    def sample_vectors(self, table: str, n: int, dim: int) -> np.ndarray:
        """Up to `n` vectors of `table`, drawn at random (the same draw each time)."""
        assert table in ("images", "texts")
        with self._lock:
            rows = self._con.execute(
                f"SELECT vector FROM {table} ORDER BY (id * 2654435761) % 4294967291 LIMIT ?",
                (int(n),),
            ).fetchall()
        out = np.empty((len(rows), dim), np.float32)
        for i, (blob,) in enumerate(rows):
            out[i] = np.frombuffer(blob, dtype=np.float32)
        return out

    # ---- failures -------------------------------------------------------------------------
    def failures_under(self, root_id: int, prefix: str = "") -> dict[str, FailureRow]:
        sql, args = _under_root("SELECT * FROM failures", root_id, prefix)
        with self._lock:
            return {r["relpath"]: FailureRow(**dict(r)) for r in self._con.execute(sql, args)}  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns

    def set_failure(
        self, root_id: int, relpath: str, size: int, mtime_ns: int, reason: str
    ) -> None:
        with self.transaction():
            self._con.execute(
                "INSERT OR REPLACE INTO failures(root_id, relpath, size, mtime_ns, reason, "
                "failed_at) VALUES (?, CAST(? AS TEXT), ?, ?, CAST(? AS TEXT), ?)",
                (root_id, fs_bytes(relpath), size, mtime_ns, fs_bytes(reason), time.time()),
            )

    def clear_failures(self, root_id: int, relpaths: Sequence[str]) -> None:
        with self.transaction():
            self._con.executemany(
                "DELETE FROM failures WHERE root_id=? AND relpath=CAST(? AS TEXT)",
                [(root_id, fs_bytes(r)) for r in relpaths],
            )


# every public method turns a damaged or busy file into one line (`database_error`)
for _name, _method in [*vars(TextTable).items(), *vars(Catalog).items()]:
    if (
        callable(_method)
        and not _name.startswith("_")
        and _name
        not in (
            "transaction",
            "snapshot",
            "close",
        )
    ):
        setattr(Catalog, _name, _translating(_method))


def _under_root(select: str, root_id: int, prefix: str) -> tuple[str, tuple[Any, ...]]:
    """`select` narrowed to the rows of one root (below `prefix/` when given), and its args."""
    sql = f"{select} WHERE root_id=?"
    args: tuple[Any, ...] = (root_id,)
    if prefix:
        # compared as bytes: a name that is not UTF-8 is stored as its raw bytes
        head = fs_bytes(prefix + "/")
        sql += " AND substr(CAST(relpath AS BLOB), 1, ?) = ?"
        args += (len(head), head)
    return sql, args


def integrity_line(damage: list[str]) -> str:
    """One line of what SQLite's integrity check found (its report spans lines, under a
    "*** in database main ***" header): the first finding and how many more there are."""
    found = [line for text in damage for line in text.splitlines() if not line.startswith("***")]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (found[0] if found else "integrity check failed") + more
