"""The names the web page words a dog answer's facts with (crossmodal.dogs.labels)."""

from __future__ import annotations

from crossmodal.dogs.knowledge import HEALTH
from crossmodal.dogs.labels import fact_labels
from crossmodal.dogs.phrases import LABELS
from crossmodal.dogs.qa import default_kb


def test_every_breed_field_and_health_code_has_both_names() -> None:
    labels = fact_labels()
    kb = default_kb()
    assert set(labels["breeds"]) == {b.breed for b in kb.breeds}
    assert labels["breeds"]["golden_retriever"] == {"en": "Golden Retriever", "zh": "金毛寻回犬"}
    assert set(labels["fields"]) == set(LABELS["en"]) and set(labels["health"]) == set(HEALTH)
    assert labels["values"]["good"] == {"en": "good", "zh": "好"}
    assert labels["groups"]["toy"]["zh"] == "玩赏犬"  # not the size "toy" (超小型)
    for table in labels.values():
        for names in table.values():
            assert set(names) == {"en", "zh"} and all(v.strip() for v in names.values())
