"""The SQL and row builders SQLite's and PostgreSQL's catalogues share (catalog_sql.py):
one filter rule written once gives both dialects' SQL; the SQLite side runs it here (the
PostgreSQL side runs in tests/index/test_pg_store.py against a real server)."""

from __future__ import annotations

import sqlite3

import numpy as np

from crossmodal.index.catalog_sql import (
    POSTGRES,
    SQLITE,
    TEXT_INSERT_COLS,
    description_arrays,
    description_texts,
    dialect_of,
    insert_values,
    person_texts,
    shown_texts,
)
from crossmodal.index.descriptions import Description
from crossmodal.index.filters import filter_sql
from crossmodal.search_filter import parse_filter


def test_one_filter_rule_in_both_dialects() -> None:
    flt = parse_filter(camera="Pixel", folder="b/c", types="png,webp", gps=True)
    lite, lite_args = filter_sql(flt, {1: "/photos"}, SQLITE)
    pg, pg_args = filter_sql(flt, {1: "/photos"}, POSTGRES)
    assert lite_args == pg_args  # the same values, bound in the same order
    assert "?" not in pg and "%s" not in lite
    assert lite.count("?") == pg.count("%s") == len(lite_args)
    assert "instr(" in lite and "strpos(" in pg
    assert "CAST(i.relpath AS BLOB)" in lite and "substring(i.relpath from 1 for %s)" in pg
    assert filter_sql(parse_filter(), {}, POSTGRES) == ("TRUE", [])
    assert filter_sql(parse_filter(), {}, SQLITE) == ("1", [])
    nowhere = parse_filter(folder="/elsewhere", base="/")
    assert filter_sql(nowhere, {1: "/photos"}, POSTGRES)[0] == "FALSE"


def test_dialect_of_a_catalogue() -> None:
    class Pg:
        SQL_DIALECT = POSTGRES

    assert dialect_of(object()) is SQLITE and dialect_of(Pg()) is POSTGRES
    assert POSTGRES.marks(3) == "%s,%s,%s" and SQLITE.marks(2) == "?,?"


def test_rows_written_and_read_back() -> None:
    """The rows a text insert writes, through SQLite, and what is read back from them."""
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE TABLE texts (id INTEGER PRIMARY KEY, image_id, kind, text, created_at, vector, "
        "source, by_person, lang, confidence, terms)"
    )
    vectors = np.eye(3, dtype=np.float32)
    rows = person_texts(7, "annotation", ["Max at grandma's farm"], vectors[:1], None)
    rows += description_texts(
        8, [Description("金毛寻回犬", "tag", "breed", "zh", 0.9)], vectors[1:2]
    )
    for row in rows:
        con.execute(
            f"INSERT INTO texts({TEXT_INSERT_COLS}) VALUES ({SQLITE.marks(10)})",
            insert_values(row, 1.5),
        )
    stored = con.execute("SELECT image_id, source, by_person, lang, terms FROM texts").fetchall()
    assert stored == [
        (7, "user", 1, None, "max at grandma s farm"),
        (8, "breed", 0, "zh", "金毛 毛寻 寻回 回犬"),
    ]
    ids, owners, kinds, found = description_arrays(
        con.execute("SELECT id, image_id, kind, vector FROM texts ORDER BY id"), 3
    )
    assert ids.tolist() == [1, 2] and owners.tolist() == [7, 8]
    assert kinds.tolist() == ["annotation", "tag"]
    assert np.array_equal(found, vectors[:2])
    assert description_arrays([], 3)[3].shape == (0, 3)


def test_the_text_a_result_shows() -> None:
    firsts = {1: {"tag": "dog", "auto_caption": "a dog"}, 2: {"annotation": "Max", "caption": "c"}}
    assert shown_texts(firsts) == {1: "a dog", 2: "c"}
    assert shown_texts({3: {"tag": "dog"}}) == {}
