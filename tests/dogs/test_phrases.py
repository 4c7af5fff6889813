"""The wording tables: every phrase exists in both languages, so no answer can fail (or fall
back to English) for want of a Chinese entry."""

from __future__ import annotations

from typing import Any

import pytest

from crossmodal.dogs import phrases


def _keys(table: Any, where: str = "") -> set[str]:
    """The nested key paths of a table (leaves: strings)."""
    if isinstance(table, dict):
        return {f"{where}/{k}{sub}" for k, v in table.items() for sub in _keys(v) or {""}}
    return set()


@pytest.mark.parametrize(
    "name",
    ["EXERCISE", "GROOMING", "SHEDDING", "SUITABILITY", "SIZE_NAMES", "LABELS", "SUIT_PREFIX",
     "NOT_IN_KB", "CARE", "WILD_NOTE", "SENTENCES"],
)  # fmt: skip
def test_each_table_says_everything_in_english_and_chinese(name: str) -> None:
    table = getattr(phrases, name)
    assert set(table) == {"en", "zh"}
    assert _keys(table["en"]) == _keys(table["zh"])
    for lang in ("en", "zh"):
        leaves = [table[lang]] if isinstance(table[lang], str) else list(_leaves(table[lang]))
        assert all(isinstance(x, str) and x.strip() for x in leaves)


def _leaves(table: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in table.values():
        out += _leaves(value) if isinstance(value, dict) else [value]
    return out


def test_row_tables_have_an_english_and_a_chinese_column() -> None:
    for row in phrases.NOVICE_CAVEATS + phrases.CHILD_CAVEATS:
        assert all(isinstance(x, str) and x for x in row[-2:])
    for _attr, en, zh in phrases.KNOWN_TOPICS:
        assert en.isascii() and not zh.isascii()
