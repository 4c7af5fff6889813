"""The `texts` table of a catalogue: captions, annotations, tags and automatic captions.

A mixin of `Catalog` (catalog.py), kept apart so each module reads in one sitting. Every
text row is a description of one image (descriptions.py says what the columns mean); the
`texts_fts` FTS5 index follows the table through triggers (schema.py), so a row and its
words are committed together.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import numpy as np

from crossmodal.index.catalog_sql import (
    TEXT_COLS,
    TEXT_INSERT_COLS,
    NewText,
    TextAdding,
    description_arrays,
    insert_values,
    shown_texts,
    vector_blob,
)
from crossmodal.index.descriptions import (
    DESCRIPTION_KINDS,
    GENERATED_KINDS,
    fts_query,
    is_cjk,
)
from crossmodal.index.schema import TextRow

__all__ = ["TermMatch", "TextTable", "chunks", "marked_words", "vector_blob"]


def chunks(items: Sequence[Any], size: int = 900) -> Iterator[Sequence[Any]]:
    # SQLite limits the number of bound parameters per statement (999 in old builds)
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TextTable(TextAdding):
    """The text methods of `Catalog` (which provides the connection, lock and transactions)."""

    _con: sqlite3.Connection
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Catalog's

    # ---- writing ----------------------------------------------------------------------------
    def _insert(self, rows: list[NewText]) -> list[int]:
        ids: list[int] = []
        now = time.time()
        with self.transaction():
            for row in rows:
                assert row.kind in DESCRIPTION_KINDS
                cur = self._con.execute(
                    f"INSERT INTO texts({TEXT_INSERT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    insert_values(row, now),
                )
                ids.append(int(cur.lastrowid))  # type: ignore[arg-type]  # set after an INSERT
        return ids

    def delete_texts(self, image_id: int, kind: str, source: str | None = None) -> list[int]:
        """Delete an image's texts of one kind (and source, when given); returns their ids."""
        where = "image_id=? AND kind=?" + (" AND source=?" if source is not None else "")
        args: tuple[Any, ...] = (image_id, kind) + ((source,) if source is not None else ())
        with self.transaction():
            ids = [r[0] for r in self._con.execute(f"SELECT id FROM texts WHERE {where}", args)]
            self._con.execute(f"DELETE FROM texts WHERE {where}", args)
        return ids

    def delete_text_ids(self, image_id: int, text_ids: Sequence[int]) -> list[int]:
        """Delete these texts of one image (others' ids are ignored); returns those deleted."""
        deleted: list[int] = []
        with self.transaction():
            for chunk in chunks(list(text_ids)):
                marks = ",".join("?" * len(chunk))
                where = f"image_id=? AND id IN ({marks})"
                args = (image_id, *chunk)
                deleted += [
                    r[0] for r in self._con.execute(f"SELECT id FROM texts WHERE {where}", args)
                ]
                self._con.execute(f"DELETE FROM texts WHERE {where}", args)
        return deleted

    # ---- reading ----------------------------------------------------------------------------
    def texts_of(self, image_ids: Sequence[int], kind: str | None = None) -> dict[int, list[str]]:
        """image id -> its texts (of one kind, or all), in insertion order."""
        return {
            image_id: [r["text"] for r in rows]
            for image_id, rows in self.descriptions_of(image_ids, kind).items()
        }

    def descriptions_of(
        self, image_ids: Sequence[int], kind: str | None = None
    ) -> dict[int, list[TextRow]]:
        """image id -> its text rows (of one kind, or all), in insertion order."""
        out: dict[int, list[TextRow]] = {}
        with self._lock:
            for chunk in chunks(list(image_ids)):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {TEXT_COLS} FROM texts WHERE image_id IN ({marks})"
                args: tuple[Any, ...] = tuple(chunk)
                if kind is not None:
                    sql += " AND kind=?"
                    args += (kind,)
                for r in self._con.execute(sql + " ORDER BY id", args):
                    out.setdefault(r["image_id"], []).append(TextRow(**dict(r)))  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns
        return out

    def first_texts(self, image_ids: Sequence[int]) -> dict[int, str]:
        """image id -> its first caption, else its first annotation, else its first automatic
        caption (images with none are left out): what a search result shows. One query for
        the first of each kind, rather than every text of every image (a search page needs
        10-160 of them)."""
        firsts: dict[int, dict[str, str]] = {}
        with self._lock:
            for chunk in chunks(list(image_ids)):
                marks = ",".join("?" * len(chunk))
                sql = (
                    "SELECT image_id, kind, text FROM texts WHERE id IN (SELECT MIN(id) FROM "
                    f"texts WHERE image_id IN ({marks}) GROUP BY image_id, kind)"
                )
                for image_id, kind, text in self._con.execute(sql, tuple(chunk)):
                    firsts.setdefault(image_id, {})[kind] = text
        return shown_texts(firsts)

    def get_texts(self, ids: Sequence[int]) -> dict[int, TextRow]:
        out: dict[int, TextRow] = {}
        with self._lock:
            for chunk in chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                for r in self._con.execute(
                    f"SELECT {TEXT_COLS} FROM texts WHERE id IN ({marks})", tuple(chunk)
                ):
                    out[r["id"]] = TextRow(**dict(r))  # type: ignore[typeddict-item]  # sqlite3.Row keys are the columns
        return out

    def count_texts(self) -> dict[str, int]:
        with self._lock:
            found = dict(self._con.execute("SELECT kind, count(*) FROM texts GROUP BY kind"))
        return {kind: int(found.get(kind, 0)) for kind in DESCRIPTION_KINDS}

    def count_generated(self) -> int:
        """Texts of the kinds i2t / t2t leave out (tags): a search over texts asks for more."""
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM texts WHERE kind='tag'").fetchone()
        return int(row[0])

    def description_vectors(
        self, image_ids: Sequence[int], dim: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(text ids, their image ids, their kinds, vectors) of these images' texts."""
        rows: list[tuple[int, int, str, bytes]] = []
        with self._lock:
            for chunk in chunks(list(image_ids)):
                marks = ",".join("?" * len(chunk))
                rows += self._con.execute(
                    "SELECT id, image_id, kind, vector FROM texts "
                    f"WHERE image_id IN ({marks}) ORDER BY id",
                    tuple(chunk),
                ).fetchall()
        return description_arrays(rows, dim)

    def lexical_matches(self, text: str, limit: int) -> list[TermMatch]:
        """The texts whose words match a search text's (FTS5 over `terms`), best first;
        PostgreSQL's catalogue answers the same call with its full-text search."""
        expression = fts_query(text)
        return self.match_terms(expression, limit) if expression else []

    def match_terms(self, expression: str, limit: int) -> list[TermMatch]:
        """The texts matching an FTS5 expression (descriptions.fts_query), best first, each
        with its BM25 score (higher is better) and the words that matched."""
        with self._lock:
            rows = self._con.execute(
                "SELECT t.id, t.image_id, t.kind, -bm25(texts_fts) AS score, "
                "highlight(texts_fts, 0, char(2), char(3)) "
                "FROM texts_fts JOIN texts t ON t.id = texts_fts.rowid "
                "WHERE texts_fts MATCH ? ORDER BY score DESC LIMIT ?",
                (expression, int(limit)),
            ).fetchall()
        return [
            TermMatch(int(a), int(b), str(c), float(d), marked_words(e)) for a, b, c, d, e in rows
        ]


class TermMatch(NamedTuple):
    text_id: int
    image_id: int
    kind: str
    score: float
    words: list[str]


def marked_words(highlighted: str) -> list[str]:
    """The matched tokens of an FTS5 `highlight` (marked by \\x02 ... \\x03), the CJK
    bigrams that follow each other ("金毛", "毛寻") joined back into one word ("金毛寻")."""
    words: list[str] = []
    joinable = False  # the last token was a marked CJK bigram, right before this one
    for part_no, part in enumerate(re.split("[\x02\x03]", highlighted)):
        marked = part_no % 2 == 1
        for token in part.split():
            cjk = len(token) == 2 and all(is_cjk(c) for c in token)
            if marked and cjk and joinable and words[-1].endswith(token[0]):
                words[-1] += token[1]
            elif marked:
                words.append(token)
            joinable = marked and cjk
    return list(dict.fromkeys(words))


#: kinds whose rows i2t / t2t results leave out (names of classes, not sentences)
HIDDEN_FROM_TEXT_SEARCH = tuple(k for k in GENERATED_KINDS if k == "tag")
