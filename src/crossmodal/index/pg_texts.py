"""The `texts` table of a collection in PostgreSQL: captions, annotations, tags, automatic
captions, and their full-text search.

A mixin of `PgCatalog` (pg_catalog.py, which provides the connection, lock, transactions and
the pgvector `embedding` of each row), answering what `TextTable` (catalog_texts.py) answers
for SQLite, with the rows built by the same functions (catalog_sql.py).

Lexical matching: where SQLite runs an FTS5 MATCH ranked by BM25, PostgreSQL matches the
generated `words` tsvector (pg_schema.py, a GIN index) against the OR of the query's terms,
each through `plainto_tsquery` - which parses nothing, so `"`, `*`, `NEAR`, `-`, `:`, `&`,
`|`, `!` or `(` in a query are searched for or dropped, never raise - and ranks by
`ts_rank_cd`. The terms are the ones FTS5 gets (descriptions.search_terms, stop words
dropped: CJK runs as bigrams), so both stores match the same words; the scores differ
(cover density rather than BM25), and hybrid search only uses them relative to the query's
best match.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from crossmodal.index.catalog_sql import (
    TEXT_COLS,
    TEXT_INSERT_COLS,
    NewText,
    TextAdding,
    description_arrays,
    insert_values,
    shown_texts,
)
from crossmodal.index.catalog_texts import HIDDEN_FROM_TEXT_SEARCH, TermMatch, marked_words
from crossmodal.index.descriptions import (
    DESCRIPTION_KINDS,
    STOPWORDS,
    search_terms,
)
from crossmodal.index.pg_schema import TS_CONFIG
from crossmodal.index.schema import TextRow

__all__ = ["MAX_QUERY_TERMS", "PgTextTable", "query_terms", "valid_ids"]

#: terms of a search text matched at most (a pasted paragraph still makes one statement)
MAX_QUERY_TERMS = 64
#: ts_headline marks the matched words as FTS5's highlight() does (catalog_texts.marked_words)
_HEADLINE = "StartSel=\x02, StopSel=\x03, HighlightAll=true"


def query_terms(text: str) -> list[str]:
    """The terms of a search text the lexical match looks for: those of
    `descriptions.fts_query` (FTS5's), once each, stop words left out."""
    terms = [t for t in dict.fromkeys(search_terms(text).split()) if t not in STOPWORDS]
    return terms[:MAX_QUERY_TERMS]


def valid_ids(ids: Sequence[int]) -> list[int]:
    """The ids a row can have (a bigint): larger ones name no row."""
    limit = 2**63 - 1
    return [int(i) for i in ids if -limit <= int(i) <= limit]


class PgTextTable(TextAdding):
    """The text methods of `PgCatalog`."""

    _lock: threading.RLock

    def transaction(self, begin: str = "BEGIN") -> AbstractContextManager[Any]:
        raise NotImplementedError  # PgCatalog's

    def _exec(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        raise NotImplementedError  # PgCatalog's

    def _dicts(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError  # PgCatalog's

    def _one(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        raise NotImplementedError  # PgCatalog's

    def _embedding(self, table: str, vector: np.ndarray) -> str | None:
        raise NotImplementedError  # PgCatalog's

    # ---- writing ----------------------------------------------------------------------------
    def _insert(self, rows: list[NewText]) -> list[int]:
        sql = (
            f"INSERT INTO texts({TEXT_INSERT_COLS}, embedding) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector) RETURNING id"
        )
        ids: list[int] = []
        now = time.time()
        with self.transaction():
            for row in rows:
                assert row.kind in DESCRIPTION_KINDS
                embedding = self._embedding("texts", row.vector)
                ids.append(int(self._one(sql, (*insert_values(row, now), embedding))))
        return ids

    def delete_texts(self, image_id: int, kind: str, source: str | None = None) -> list[int]:
        """Delete an image's texts of one kind (and source, when given); returns their ids."""
        sql = "DELETE FROM texts WHERE image_id=%s AND kind=%s"
        args: tuple[Any, ...] = (image_id, kind)
        if source is not None:
            sql += " AND source=%s"
            args += (source,)
        rows = self._exec(sql + " RETURNING id", args).fetchall()
        return sorted(int(r[0]) for r in rows)

    def delete_text_ids(self, image_id: int, text_ids: Sequence[int]) -> list[int]:
        """Delete these texts of one image (others' ids are ignored); returns those deleted."""
        rows = self._exec(
            "DELETE FROM texts WHERE image_id=%s AND id = ANY(%s) RETURNING id",
            (image_id, valid_ids(text_ids)),
        ).fetchall()
        return sorted(int(r[0]) for r in rows)

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
        sql = f"SELECT {TEXT_COLS} FROM texts WHERE image_id = ANY(%s)"
        args: tuple[Any, ...] = (valid_ids(image_ids),)
        if kind is not None:
            sql += " AND kind=%s"
            args += (kind,)
        out: dict[int, list[TextRow]] = {}
        for r in self._dicts(sql + " ORDER BY id", args):
            out.setdefault(int(r["image_id"]), []).append(TextRow(**r))  # type: ignore[typeddict-item]  # the columns of TextRow
        return out

    def first_texts(self, image_ids: Sequence[int]) -> dict[int, str]:
        """image id -> the text a result shows (see `TextTable.first_texts`)."""
        firsts: dict[int, dict[str, str]] = {}
        for image_id, kind, text in self._exec(
            "SELECT image_id, kind, text FROM texts WHERE id IN (SELECT MIN(id) FROM texts "
            "WHERE image_id = ANY(%s) GROUP BY image_id, kind)",
            (valid_ids(image_ids),),
        ).fetchall():
            firsts.setdefault(int(image_id), {})[kind] = text
        return shown_texts(firsts)

    def get_texts(self, ids: Sequence[int]) -> dict[int, TextRow]:
        rows = self._dicts(f"SELECT {TEXT_COLS} FROM texts WHERE id = ANY(%s)", (valid_ids(ids),))
        return {int(r["id"]): TextRow(**r) for r in rows}  # type: ignore[typeddict-item]  # the columns of TextRow

    def count_texts(self) -> dict[str, int]:
        found = dict(self._exec("SELECT kind, count(*) FROM texts GROUP BY kind").fetchall())
        return {kind: int(found.get(kind, 0)) for kind in DESCRIPTION_KINDS}

    def count_generated(self) -> int:
        """Texts of the kinds i2t / t2t leave out (tags): a search over texts asks for more."""
        return int(
            self._one(
                "SELECT count(*) FROM texts WHERE kind = ANY(%s)", (list(HIDDEN_FROM_TEXT_SEARCH),)
            )
        )

    def description_vectors(
        self, image_ids: Sequence[int], dim: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(text ids, their image ids, their kinds, vectors) of these images' texts."""
        rows = self._exec(
            "SELECT id, image_id, kind, vector FROM texts WHERE image_id = ANY(%s) ORDER BY id",
            (valid_ids(image_ids),),
        ).fetchall()
        return description_arrays(rows, dim)

    def lexical_matches(self, text: str, limit: int) -> list[TermMatch]:
        """The texts whose words match a search text's, best first, each with its rank
        (higher is better) and the words that matched (see the module's text)."""
        terms = query_terms(text)
        if not terms:
            return []
        query = " || ".join([f"plainto_tsquery({TS_CONFIG}, %s)"] * len(terms))
        rows = self._exec(
            f"WITH q AS (SELECT {query} AS query), "
            "best AS (SELECT t.id, t.image_id, t.kind, t.terms, "
            "ts_rank_cd(t.words, q.query, 1) AS score FROM texts t, q "
            "WHERE t.words @@ q.query ORDER BY score DESC, t.id LIMIT %s) "
            f"SELECT b.id, b.image_id, b.kind, b.score, "
            f"ts_headline({TS_CONFIG}, b.terms, q.query, %s) "
            "FROM best b, q ORDER BY b.score DESC, b.id",
            (*terms, int(limit), _HEADLINE),
        ).fetchall()
        return [
            TermMatch(int(a), int(b), str(c), float(d), marked_words(e)) for a, b, c, d, e in rows
        ]
