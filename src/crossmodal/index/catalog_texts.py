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

from crossmodal.index.descriptions import (
    DESCRIPTION_KINDS,
    GENERATED_KINDS,
    PERSON_KINDS,
    Description,
    is_cjk,
    search_terms,
)
from crossmodal.index.schema import TextRow

__all__ = ["TermMatch", "TextTable", "chunks", "marked_words", "vector_blob"]

#: texts shown beside a result, in this order of preference
_SHOWN_KINDS = ("caption", "annotation", "auto_caption")
_TEXT_COLS = "id, image_id, kind, text, created_at, source, by_person, lang, confidence"


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def chunks(items: Sequence[Any], size: int = 900) -> Iterator[Sequence[Any]]:
    # SQLite limits the number of bound parameters per statement (999 in old builds)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _default_source(kind: str) -> str:
    return {"caption": "captions", "annotation": "user"}.get(kind, kind)


class TextTable:
    """The text methods of `Catalog` (which provides the connection, lock and transactions)."""

    _con: sqlite3.Connection
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Catalog's

    # ---- writing ----------------------------------------------------------------------------
    def add_texts(
        self,
        image_id: int,
        kind: str,
        texts: Sequence[str],
        vectors: np.ndarray,
        source: str | None = None,
    ) -> list[int]:
        """Texts a person wrote (captions from a file, annotations), taken as they are."""
        assert kind in PERSON_KINDS
        rows = [
            (image_id, kind, text, source or _default_source(kind), 1, None, None, vec)
            for text, vec in zip(texts, vectors, strict=True)
        ]
        return self._insert(rows)

    def add_descriptions(
        self, image_id: int, descriptions: Sequence[Description], vectors: np.ndarray
    ) -> list[int]:
        """Checked descriptions (any kind) with their text vectors; returns their ids."""
        rows = [
            (image_id, d.kind, d.text, d.source, int(bool(d.by_person)), d.lang, d.confidence, v)
            for d, v in zip(descriptions, vectors, strict=True)
        ]
        return self._insert(rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> list[int]:
        ids: list[int] = []
        now = time.time()
        with self.transaction():
            for image_id, kind, text, source, by_person, lang, confidence, vec in rows:
                assert kind in DESCRIPTION_KINDS
                cur = self._con.execute(
                    "INSERT INTO texts(image_id, kind, text, created_at, vector, source, "
                    "by_person, lang, confidence, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        image_id, kind, text, now, vector_blob(vec), source, by_person, lang,
                        None if confidence is None else float(confidence), search_terms(text),
                    ),
                )  # fmt: skip
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
                sql = f"SELECT {_TEXT_COLS} FROM texts WHERE image_id IN ({marks})"
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
        out: dict[int, str] = {}
        for image_id, kinds in firsts.items():
            shown = next((kinds[k] for k in _SHOWN_KINDS if k in kinds), None)
            if shown is not None:
                out[image_id] = shown
        return out

    def get_texts(self, ids: Sequence[int]) -> dict[int, TextRow]:
        out: dict[int, TextRow] = {}
        with self._lock:
            for chunk in chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                for r in self._con.execute(
                    f"SELECT {_TEXT_COLS} FROM texts WHERE id IN ({marks})", tuple(chunk)
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
        text_ids: list[int] = []
        owners: list[int] = []
        kinds: list[str] = []
        blobs: list[bytes] = []
        with self._lock:
            for chunk in chunks(list(image_ids)):
                marks = ",".join("?" * len(chunk))
                for row_id, image_id, kind, blob in self._con.execute(
                    "SELECT id, image_id, kind, vector FROM texts "
                    f"WHERE image_id IN ({marks}) ORDER BY id",
                    tuple(chunk),
                ):
                    text_ids.append(row_id)
                    owners.append(image_id)
                    kinds.append(kind)
                    blobs.append(blob)
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)
        return (
            np.array(text_ids, np.int64),
            np.array(owners, np.int64),
            np.array(kinds, object),
            vectors,
        )

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
