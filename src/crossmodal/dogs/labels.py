"""Readable names, in English and Chinese, for the keys a dog answer's facts carry.

A chat or ask reply lists its facts as keys (`golden_retriever · children · good`) so that any
client can word them; the web page words them in the language the reader chose, which may not
be the answer's. These are the tables the answers themselves are worded from (breeds.json and
qa's wording tables), so the page and the answer text name things alike.
"""

from __future__ import annotations

from crossmodal.dogs.knowledge import HEALTH, KnowledgeBase
from crossmodal.dogs.qa import _GROUP_ZH, _VALUE_ZH, FIELD_LABELS, default_kb

Names = dict[str, dict[str, str]]


def _pairs(table: dict[str, tuple[str, str]]) -> Names:
    return {key: {"en": en, "zh": zh} for key, (en, zh) in table.items()}


def fact_labels(kb: KnowledgeBase | None = None) -> dict[str, Names]:
    """{"breeds", "fields", "values", "groups", "health"}: each key -> {"en": ..., "zh": ...}."""
    kb = kb or default_kb()
    return {
        "breeds": {b.breed: {"en": b.name_en, "zh": b.name_zh} for b in kb.breeds},
        "fields": _pairs(FIELD_LABELS),
        "values": {key: {"en": key, "zh": zh} for key, zh in _VALUE_ZH.items()},
        "groups": {key: {"en": key, "zh": zh} for key, zh in _GROUP_ZH.items()},
        "health": _pairs(HEALTH),
    }
