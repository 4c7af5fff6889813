"""Readable names, in English and Chinese, for the keys a dog answer's facts carry.

A chat or ask reply lists its facts as keys (`golden_retriever · children · good`) so that any
client can word them; the web page words them in the language the reader chose, which may not
be the answer's. These are the tables the answers themselves are worded from (breeds.json and
qa's wording tables), so the page and the answer text name things alike.
"""

from __future__ import annotations

from crossmodal.dogs.knowledge import HEALTH, KnowledgeBase
from crossmodal.dogs.phrases import GROUP_NAMES, LABELS, VALUE_WORDS
from crossmodal.dogs.qa import default_kb

Names = dict[str, dict[str, str]]


def _pairs(table: dict[str, tuple[str, str]]) -> Names:
    return {key: {"en": en, "zh": zh} for key, (en, zh) in table.items()}


def fact_labels(kb: KnowledgeBase | None = None) -> dict[str, Names]:
    """{"breeds", "fields", "values", "groups", "health"}: each key -> {"en": ..., "zh": ...}."""
    kb = kb or default_kb()
    return {
        "breeds": {b.breed: {"en": b.name_en, "zh": b.name_zh} for b in kb.breeds},
        "fields": {key: {"en": en, "zh": LABELS["zh"][key]} for key, en in LABELS["en"].items()},
        "values": {key: {"en": key, "zh": zh} for key, zh in VALUE_WORDS["zh"].items()},
        "groups": {key: {"en": key, "zh": zh} for key, zh in GROUP_NAMES["zh"].items()},
        "health": _pairs(HEALTH),
    }
