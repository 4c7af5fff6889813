"""`crossmodal check`: is a collection's catalogue sound, and do its FAISS caches agree with it?

Two kinds of damage, two remedies:

- a FAISS cache that fails its checksum, or holds other ids than the catalogue: it is a cache
  (see `crossmodal.index.catalog`), so it is deleted and rebuilt from the catalogue's vectors;
- a damaged SQLite file (`PRAGMA integrity_check` finds problems): every row that can still be
  read is copied, table by table and id range by id range, into a fresh catalogue, which
  replaces it; the damaged file is kept beside it (`catalog.sqlite.damaged-<time>`). Images
  whose rows were lost are still on disk: the next `crossmodal index` of their folder embeds
  them again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossmodal.errors import CollectionError
from crossmodal.index.catalog import Catalog, _decode_text, fs_bytes
from crossmodal.index.store import FlatIPStore

__all__ = ["CheckReport", "check_collection", "salvage_catalog"]

#: rows read per query while salvaging; a range that fails is read again one row at a time
_CHUNK = 256
_TABLES = ("meta", "roots", "images", "texts", "failures")


@dataclass
class CheckReport:
    folder: Path
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.ok and not self.repaired:
            return f"{self.folder}: ok (SQLite integrity check, FAISS checksums, ids agree)"
        parts = []
        if self.problems:
            parts.append("problems: " + "; ".join(self.problems))
        if self.repaired:
            parts.append("repaired: " + "; ".join(self.repaired))
        return f"{self.folder}: " + " | ".join(parts)


def integrity_problems(path: Path) -> list[str]:
    """`PRAGMA integrity_check` of a SQLite file, on a connection of its own ([] = sound)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        con.close()
    return [] if rows == ["ok"] else rows


def cache_problems(catalog: Catalog, folder: Path) -> list[tuple[Path, str]]:
    """(file, what is wrong) for each FAISS cache of the current generations that fails its
    checksum or holds other ids than the catalogue (missing caches are fine: built on open)."""
    found: list[tuple[Path, str]] = []
    for table in ("images", "texts"):
        generation = catalog.generation(table)
        for file in sorted(folder.glob(f"{table}.g{generation}.*faiss")):
            try:
                store = FlatIPStore.load(file)
            except CollectionError as exc:
                found.append((file, str(exc)))
                continue
            ids = catalog.ids(table)
            if not np.array_equal(np.sort(store.ids()), np.sort(ids)):
                found.append((file, f"holds {len(store)} ids, the catalogue {len(ids)} others"))
    return found


def check_collection(folder: Path, repair: bool = False) -> CheckReport:
    """Check (and with `repair`, mend) the collection in `folder`; never raises on damage."""
    from crossmodal.collection import CATALOG_FILE

    report = CheckReport(folder)
    catalog_file = folder / CATALOG_FILE
    if not catalog_file.is_file():
        raise CollectionError(f"no collection at {folder}: nothing to check")
    problems = integrity_problems(catalog_file)
    if problems:
        report.problems.append(f"catalogue {catalog_file}: " + ", ".join(problems[:3]))
        if not repair:
            return report
        kept, lost, damaged = salvage_catalog(catalog_file)
        report.repaired.append(
            f"rebuilt the catalogue from what could be read ({kept} images kept, {lost} lost: "
            f"index their folders again to re-add them; the damaged file is {damaged.name})"
        )
        for cache in folder.glob("*.faiss"):
            with contextlib.suppress(OSError):
                cache.unlink()
        report.repaired.append("deleted the FAISS caches (rebuilt on the next open)")
        report.problems.clear()
        return report
    catalog = Catalog(catalog_file)
    try:
        for file, what in cache_problems(catalog, folder):
            report.problems.append(f"{file.name}: {what}")
            if repair:
                with contextlib.suppress(OSError):
                    file.unlink()
                report.repaired.append(f"deleted {file.name} (rebuilt from the catalogue)")
    finally:
        catalog.close()
    if repair and report.repaired:
        from crossmodal.collection import Collection

        with Collection.open(folder) as col:  # rebuild and save the caches now
            col.rebuild_caches()
        report.problems.clear()
    return report


def salvage_catalog(path: Path) -> tuple[int, int, Path]:
    """Copy every readable row of a damaged catalogue into a new file that replaces it.

    Text is read and written back as its bytes (`fs_bytes`), so names that are not UTF-8
    survive. Returns (images kept, images lost, where the damaged file was moved)."""
    fresh = path.with_name(path.name + ".salvage")
    for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        leftover.unlink(missing_ok=True)
    Catalog(fresh).close()  # the current schema, empty
    old = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    old.text_factory = _decode_text
    new = sqlite3.connect(fresh, isolation_level=None)
    try:
        new.execute("BEGIN")
        new.execute("DELETE FROM meta")
        for table in _TABLES:
            # migrations only append columns: an older file's row fills the first ones
            columns = [r[1] for r in new.execute(f"PRAGMA table_info({table})")]
            for row in _readable_rows(old, table):
                casts = ",".join("CAST(? AS TEXT)" if isinstance(v, str) else "?" for v in row)
                values = [fs_bytes(v) if isinstance(v, str) else v for v in row]
                names = ",".join(columns[: len(row)])
                new.execute(f"INSERT OR IGNORE INTO {table}({names}) VALUES ({casts})", values)
        kept = int(new.execute("SELECT count(*) FROM images").fetchone()[0])
        lost = max(0, _highest_id(old, "images") - kept)
        # texts of lost images, images of lost roots: dropped with them
        new.execute("DELETE FROM texts WHERE image_id NOT IN (SELECT id FROM images)")
        new.execute("DELETE FROM images WHERE root_id NOT IN (SELECT id FROM roots)")
        for table in ("images", "texts"):  # every cache is stale now
            key = f"{table}_generation"
            new.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, "
                "COALESCE((SELECT value FROM meta WHERE key=?), 0) + 1)",
                (key, key),
            )
        new.execute("COMMIT")
    finally:
        old.close()
        new.close()
    damaged = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, damaged)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(fresh, path)
    return kept, lost, damaged


def _highest_id(con: sqlite3.Connection, table: str) -> int:
    """The largest id `table` ever had (its AUTOINCREMENT counter), else its largest rowid."""
    for sql in (
        f"SELECT seq FROM sqlite_sequence WHERE name='{table}'",
        f"SELECT max(rowid) FROM {table}",
    ):
        with contextlib.suppress(sqlite3.DatabaseError):
            row = con.execute(sql).fetchone()
            if row and row[0] is not None:
                return int(row[0])
    return 0


def _readable_rows(con: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    """Every row of `table` that can be read: all at once, else by rowid ranges, else row by
    row in a range that fails."""
    try:
        return con.execute(f"SELECT * FROM {table}").fetchall()
    except sqlite3.DatabaseError:
        pass
    top = _highest_id(con, table)
    rows: list[tuple[object, ...]] = []
    sql = f"SELECT * FROM {table} WHERE rowid BETWEEN ? AND ?"
    for start in range(1, top + 1, _CHUNK):
        try:
            rows += con.execute(sql, (start, start + _CHUNK - 1)).fetchall()
            continue
        except sqlite3.DatabaseError:
            pass
        for rowid in range(start, min(top, start + _CHUNK - 1) + 1):
            with contextlib.suppress(sqlite3.DatabaseError):
                rows += con.execute(sql, (rowid, rowid)).fetchall()
    return rows
