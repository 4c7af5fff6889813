"""The terms PostgreSQL's lexical match looks for (pg_texts.query_terms) are FTS5's: both
stores match the same words. What the database does with them (ts_rank_cd, the matched
words, odd query characters, Chinese) runs against a real server, beside the embedded
store, in tests/index/test_pg_store.py."""

from __future__ import annotations

import re

import pytest

from crossmodal.index.descriptions import fts_query
from crossmodal.index.pg_texts import MAX_QUERY_TERMS, query_terms


def _fts_terms(text: str) -> list[str]:
    expression = fts_query(text)
    if expression is None:
        return []
    return [t.replace('""', '"') for t in re.findall(r'"((?:[^"]|"")*)"', expression)]


@pytest.mark.parametrize(
    "text",
    [
        "Max at the farm",
        "一只金毛寻回犬",
        "a golden retriever 金毛 on grass",
        'a"b* NEAR(c -d) e:f & g | !h (',
        "the of a",
        "",
        "Dogs, dogs and DOGS",
    ],
)
def test_the_same_terms_as_fts5(text: str) -> None:
    assert query_terms(text) == _fts_terms(text)


def test_no_operator_reaches_the_query() -> None:
    for term in query_terms('"x" * NEAR - : & | ! ( ) \' \\'):
        assert re.fullmatch(r"\w+", term), term


def test_a_pasted_paragraph_makes_a_bounded_query() -> None:
    words = " ".join(f"word{i}" for i in range(500))
    assert len(query_terms(words)) == MAX_QUERY_TERMS
