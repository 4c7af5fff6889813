"""The catalogue's SQLite schema, its migrations and the types of its rows.

`SCHEMA_VERSION` plus an ordered list of migrations, each taking a catalogue from version i to
i + 1; `Catalog.ensure_version` (catalog.py) runs the ones a file has not seen, in one
transaction, on open. Columns are described here, beside the SQL that makes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypedDict

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TEXT_KINDS",
    "FailureRow",
    "ImageRow",
    "TextRow",
]

#: Bump with every schema change, and append the migration that gets there to MIGRATIONS.
SCHEMA_VERSION = 2

TEXT_KINDS = ("caption", "annotation")


class ImageRow(TypedDict):
    id: int
    root_id: int
    relpath: str
    hash: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    indexed_at: float


class TextRow(TypedDict):
    id: int
    image_id: int
    kind: str
    text: str
    created_at: float


class FailureRow(TypedDict):
    root_id: int
    relpath: str
    size: int
    mtime_ns: int
    reason: str
    failed_at: float


def _run_script(con: sqlite3.Connection, script: str) -> None:
    """Statements one by one: `executescript` would COMMIT the migration's transaction first."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            con.execute(statement)


def _to_v1(con: sqlite3.Connection) -> None:
    _run_script(
        con,
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- folders that were indexed; image paths are stored relative to one of them so that a
        -- whole photo library can move (re-index it from its new place: files are re-pathed
        -- by content hash, not re-embedded)
        CREATE TABLE roots (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            added_at REAL NOT NULL
        );
        -- AUTOINCREMENT: ids are never reused, so an id held by a web page or a FAISS cache can
        -- never point at another photo later
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            root_id INTEGER NOT NULL REFERENCES roots(id),
            relpath TEXT NOT NULL,
            hash TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            width INTEGER,
            height INTEGER,
            indexed_at REAL NOT NULL,
            vector BLOB NOT NULL,
            UNIQUE (root_id, relpath)
        );
        CREATE INDEX images_hash ON images(hash);
        CREATE TABLE texts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('caption', 'annotation')),
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX texts_image ON texts(image_id);
        -- files that could not be decoded, so that they are not retried every run unless they
        -- change (size or mtime)
        CREATE TABLE failures (
            root_id INTEGER NOT NULL REFERENCES roots(id),
            relpath TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            reason TEXT NOT NULL,
            failed_at REAL NOT NULL,
            PRIMARY KEY (root_id, relpath)
        );
        """,
    )


def _add_photo_facts(con: sqlite3.Connection) -> None:
    """What the search filters read (crossmodal/index/facts.py): NULL in rows indexed before
    this version until the next index run fills them from the files' headers."""
    _run_script(
        con,
        """
        -- when the photo was taken, local wall-clock "YYYY-MM-DD HH:MM:SS" (sortable text),
        -- its UTC offset ("+02:00") when the camera wrote one, and where the date came from:
        -- 'exif' (DateTimeOriginal / DateTime) or 'file' (the modification time)
        ALTER TABLE images ADD COLUMN taken TEXT;
        ALTER TABLE images ADD COLUMN taken_offset TEXT;
        ALTER TABLE images ADD COLUMN taken_source TEXT
            CHECK (taken_source IS NULL OR taken_source IN ('exif', 'file'));
        ALTER TABLE images ADD COLUMN camera_make TEXT;
        ALTER TABLE images ADD COLUMN camera_model TEXT;
        -- signed degrees (south and west negative); both NULL without a GPS position
        ALTER TABLE images ADD COLUMN gps_lat REAL;
        ALTER TABLE images ADD COLUMN gps_lon REAL;
        -- from the content (Pillow's format: 'jpg', 'png', ...), not the file's suffix
        ALTER TABLE images ADD COLUMN file_type TEXT;
        CREATE INDEX images_taken ON images(taken);
        """,
    )


#: MIGRATIONS[i] takes a catalogue from schema version i to i + 1 (0 = empty file).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_to_v1, _add_photo_facts]
assert len(MIGRATIONS) == SCHEMA_VERSION
