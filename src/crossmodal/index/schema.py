"""The catalogue's SQLite schema, its migrations and the types of its rows.

`SCHEMA_VERSION` plus an ordered list of migrations, each taking a catalogue from version i to
i + 1; `Catalog.ensure_version` (catalog.py) runs the ones a file has not seen, in one
transaction, on open. Columns are described here, beside the SQL that makes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypedDict

from crossmodal.index.descriptions import DESCRIPTION_KINDS, search_terms

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TEXT_KINDS",
    "FailureRow",
    "ImageRow",
    "TextRow",
]

#: Bump with every schema change, and append the migration that gets there to MIGRATIONS.
SCHEMA_VERSION = 3

TEXT_KINDS = DESCRIPTION_KINDS


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
    source: str
    by_person: int
    lang: str | None
    confidence: float | None


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


_TEXTS_V2 = """
    CREATE TABLE texts_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        kind TEXT NOT NULL
            CHECK (kind IN ('caption', 'annotation', 'tag', 'auto_caption')),
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        vector BLOB NOT NULL,
        -- where it came from: a captions file's name, "user", "imagenet", "breed", "captioner"
        source TEXT NOT NULL DEFAULT '',
        -- 1: a person wrote it (captions, annotations); 0: generated (tags, auto captions)
        by_person INTEGER NOT NULL DEFAULT 1 CHECK (by_person IN (0, 1)),
        lang TEXT,
        -- the generator's probability, for generated texts
        confidence REAL,
        -- the text as the FTS index tokenises it (CJK runs as bigrams: descriptions.py)
        terms TEXT NOT NULL DEFAULT ''
    )
"""

#: the FTS index follows `texts` through triggers, so every writer (salvage included) keeps
#: it in step in the same transaction
_FTS_TRIGGERS = (
    "CREATE TRIGGER texts_fts_insert AFTER INSERT ON texts BEGIN "
    "INSERT INTO texts_fts(rowid, terms) VALUES (new.id, new.terms); END",
    "CREATE TRIGGER texts_fts_delete AFTER DELETE ON texts BEGIN "
    "INSERT INTO texts_fts(texts_fts, rowid, terms) VALUES ('delete', old.id, old.terms); END",
    "CREATE TRIGGER texts_fts_update AFTER UPDATE ON texts BEGIN "
    "INSERT INTO texts_fts(texts_fts, rowid, terms) VALUES ('delete', old.id, old.terms); "
    "INSERT INTO texts_fts(rowid, terms) VALUES (new.id, new.terms); END",
)


def _add_descriptions(con: sqlite3.Connection) -> None:
    """Texts become descriptions: kinds tag and auto_caption, source, by_person, lang,
    confidence, and an FTS5 index of their words. `texts` is rebuilt (copy, drop, rename) for
    its new CHECK; ids and the AUTOINCREMENT counter are kept, so FAISS caches stay valid."""
    row = con.execute("SELECT seq FROM sqlite_sequence WHERE name='texts'").fetchone()
    _run_script(con, _TEXTS_V2)
    con.execute(
        "INSERT INTO texts_v2(id, image_id, kind, text, created_at, vector, source, by_person) "
        "SELECT id, image_id, kind, text, created_at, vector, "
        "CASE kind WHEN 'caption' THEN 'captions' ELSE 'user' END, 1 FROM texts"
    )
    con.execute("DROP TABLE texts")
    con.execute("ALTER TABLE texts_v2 RENAME TO texts")
    if row is not None:
        con.execute("UPDATE sqlite_sequence SET seq=max(seq, ?) WHERE name='texts'", (row[0],))
        if con.execute("SELECT changes()").fetchone()[0] == 0:
            con.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('texts', ?)", (row[0],))
    con.execute("CREATE INDEX texts_image ON texts(image_id)")
    con.execute("CREATE INDEX texts_kind ON texts(kind, image_id)")
    updates = [(search_terms(text), i) for i, text in con.execute("SELECT id, text FROM texts")]
    con.executemany("UPDATE texts SET terms=? WHERE id=?", updates)
    con.execute(
        "CREATE VIRTUAL TABLE texts_fts USING fts5(terms, content='texts', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    con.execute("INSERT INTO texts_fts(texts_fts) VALUES ('rebuild')")
    for trigger in _FTS_TRIGGERS:
        con.execute(trigger)


#: MIGRATIONS[i] takes a catalogue from schema version i to i + 1 (0 = empty file).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _to_v1,
    _add_photo_facts,
    _add_descriptions,
]
assert len(MIGRATIONS) == SCHEMA_VERSION
