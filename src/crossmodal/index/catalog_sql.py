"""What the two catalogues share: SQLite's `Catalog` (catalog.py, catalog_texts.py) and
PostgreSQL's `PgCatalog` (pg_catalog.py, pg_texts.py).

SQL that reads the same in both dialects is written once, with the dialect's placeholder
(`Dialect.mark`: "?" for sqlite3, "%s" for psycopg) and its few differing expressions (a
substring test, a byte-prefix test, true and false); `fetch_dicts` / `execute_many` run it
on either catalogue. The rows a text insert writes and what is read back from them (the
text shown beside a result, the arrays hybrid search scores) are built here once too, so
the two stores cannot drift apart in what they keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from crossmodal.index.descriptions import PERSON_KINDS, Description, search_terms

__all__ = [
    "POSTGRES",
    "SHOWN_KINDS",
    "SQLITE",
    "TEXT_COLS",
    "TEXT_INSERT_COLS",
    "Dialect",
    "NewText",
    "TextAdding",
    "description_arrays",
    "description_texts",
    "dialect_of",
    "execute_many",
    "fetch_dicts",
    "fetch_values",
    "insert_values",
    "person_texts",
    "shown_texts",
    "vector_blob",
]


@dataclass(frozen=True)
class Dialect:
    """The placeholder and the few expressions that differ between SQLite and PostgreSQL."""

    name: str
    mark: str  # a bound parameter
    true: str
    false: str
    contains_sql: str  # "{haystack} holds the next parameter"
    bytes_prefix_sql: str  # "{column}'s first (parameter) bytes equal (parameter)"

    def marks(self, n: int) -> str:
        return ",".join([self.mark] * n)

    def contains(self, haystack: str) -> str:
        return self.contains_sql.format(haystack=haystack)

    def bytes_prefix(self, column: str) -> str:
        return self.bytes_prefix_sql.format(column=column)


SQLITE = Dialect(
    "sqlite", "?", "1", "0", "instr({haystack}, ?) > 0", "substr(CAST({column} AS BLOB), 1, ?) = ?"
)
# paths are bytea in PostgreSQL (pg_schema.py): compared as bytes already
POSTGRES = Dialect(
    "postgresql",
    "%s",
    "TRUE",
    "FALSE",
    "strpos({haystack}, %s) > 0",
    "substring({column} from 1 for %s) = %s",
)


def dialect_of(catalog: Any) -> Dialect:
    """The dialect of a catalogue (`PgCatalog.SQL_DIALECT`; SQLite's `Catalog` has none)."""
    return getattr(catalog, "SQL_DIALECT", SQLITE)


def fetch_dicts(catalog: Any, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of `sql` (written in the catalogue's dialect) as dicts, read in one snapshot."""
    if dialect_of(catalog) is POSTGRES:
        return catalog.fetch_dicts(sql, args)  # type: ignore[no-any-return]
    with catalog.snapshot() as con:
        return [dict(r) for r in con.execute(sql, tuple(args))]


def fetch_values(catalog: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """The first column of the rows of `sql` (no dict per row: a filter may pass millions)."""
    if dialect_of(catalog) is POSTGRES:
        return catalog.fetch_values(sql, args)  # type: ignore[no-any-return]
    with catalog.snapshot() as con:
        return [r[0] for r in con.execute(sql, tuple(args))]


def execute_many(catalog: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """`sql` once per row of arguments, in one transaction."""
    if dialect_of(catalog) is POSTGRES:
        catalog.execute_many(sql, rows)
        return
    with catalog.transaction() as con:
        con.executemany(sql, rows)


# ---- texts ----------------------------------------------------------------------------------
#: what a `TextRow` holds (schema.py)
TEXT_COLS = "id, image_id, kind, text, created_at, source, by_person, lang, confidence"
#: what a text insert writes, in the order of `insert_values`
TEXT_INSERT_COLS = (
    "image_id, kind, text, created_at, vector, source, by_person, lang, confidence, terms"
)
#: texts shown beside a result, in this order of preference
SHOWN_KINDS = ("caption", "annotation", "auto_caption")


class NewText(NamedTuple):
    """One text about to be inserted, with its text-tower vector."""

    image_id: int
    kind: str
    text: str
    source: str
    by_person: int
    lang: str | None
    confidence: float | None
    vector: np.ndarray


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _default_source(kind: str) -> str:
    return {"caption": "captions", "annotation": "user"}.get(kind, kind)


def person_texts(
    image_id: int, kind: str, texts: Sequence[str], vectors: np.ndarray, source: str | None
) -> list[NewText]:
    """Texts a person wrote (captions from a file, annotations), taken as they are."""
    return [
        NewText(image_id, kind, text, source or _default_source(kind), 1, None, None, vec)
        for text, vec in zip(texts, vectors, strict=True)
    ]


def description_texts(
    image_id: int, descriptions: Sequence[Description], vectors: np.ndarray
) -> list[NewText]:
    """Checked descriptions (any kind) with their vectors."""
    return [
        NewText(
            image_id, d.kind, d.text, d.source, int(bool(d.by_person)), d.lang,
            None if d.confidence is None else float(d.confidence), v,
        )
        for d, v in zip(descriptions, vectors, strict=True)
    ]  # fmt: skip


def insert_values(row: NewText, now: float) -> tuple[Any, ...]:
    """The values of TEXT_INSERT_COLS for one new text; `terms` are what the lexical index
    keeps (CJK as bigrams: descriptions.search_terms)."""
    return (
        row.image_id, row.kind, row.text, now, vector_blob(row.vector), row.source,
        row.by_person, row.lang, row.confidence, search_terms(row.text),
    )  # fmt: skip


def shown_texts(firsts: dict[int, dict[str, str]]) -> dict[int, str]:
    """image id -> the text a result shows, from each image's first text of each kind."""
    out: dict[int, str] = {}
    for image_id, kinds in firsts.items():
        shown = next((kinds[k] for k in SHOWN_KINDS if k in kinds), None)
        if shown is not None:
            out[image_id] = shown
    return out


def description_arrays(
    rows: Iterable[tuple[int, int, str, bytes]], dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(text ids, image ids, kinds, vectors) of (id, image id, kind, vector blob) rows, as
    `description_vectors` returns them."""
    text_ids: list[int] = []
    owners: list[int] = []
    kinds: list[str] = []
    blobs: list[bytes] = []
    for row_id, image_id, kind, blob in rows:
        text_ids.append(int(row_id))
        owners.append(int(image_id))
        kinds.append(str(kind))
        blobs.append(bytes(blob))
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)
    return (
        np.array(text_ids, np.int64),
        np.array(owners, np.int64),
        np.array(kinds, object),
        vectors,
    )


class TextAdding:
    """How both catalogues add texts: rows built here, written by the store's `_insert`."""

    def _insert(self, rows: list[NewText]) -> list[int]:
        raise NotImplementedError  # TextTable's (SQLite), PgTextTable's (PostgreSQL)

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
        return self._insert(person_texts(image_id, kind, texts, vectors, source))

    def add_descriptions(
        self, image_id: int, descriptions: Sequence[Description], vectors: np.ndarray
    ) -> list[int]:
        """Checked descriptions (any kind) with their text vectors; returns their ids."""
        return self._insert(description_texts(image_id, descriptions, vectors))
