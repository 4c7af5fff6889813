"""The care fields of issue 16: 60 new questions answered with the asked field or an honest
"not known", never with a different field stated as if it answered the question."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crossmodal.dogs.knowledge import HEALTH, KnowledgeBase
from crossmodal.dogs.qa import Answer, answer

FIXTURE = Path(__file__).with_name("qa_care_fixture.json")
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["questions"]
PHOTO_FIELDS = {"recognized", "is_dog", "dog_score"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def verdict(case: dict[str, Any], got: Answer) -> str:
    """'right', 'honest' (not known), 'wrong_field' or 'other' (wrong breed, language ...)."""
    if got.lang != case["lang"] or not set(case["breeds"]) <= set(got.breeds):
        return "other"
    kb_facts = [f for f in got.facts if f.field not in PHOTO_FIELDS]
    if case.get("not_known"):
        if got.intent == "not_known" and not kb_facts:
            return "honest"
        return "wrong_field" if kb_facts else "other"
    asked = [f for f in kb_facts if f.field == case["field"] and f.breed in case["breeds"]]
    if asked:
        return "right"
    if got.intent == "not_known":
        return "honest"
    return "wrong_field" if kb_facts else "other"


def test_fixture_shape() -> None:
    assert len(CASES) == 60
    assert sum(c["lang"] == "en" for c in CASES) == 30
    assert sum(c["lang"] == "zh" for c in CASES) == 30
    assert sum(bool(c.get("not_known")) for c in CASES) >= 16


def test_care_questions_answered_with_the_asked_field(kb: KnowledgeBase) -> None:
    results = {c["q"]: verdict(c, answer(c["q"], kb=kb, use_llm=False)) for c in CASES}
    good = sum(v in ("right", "honest") for v in results.values())
    wrong = {q: v for q, v in results.items() if v == "wrong_field"}
    others = {q: v for q, v in results.items() if v not in ("right", "honest")}
    assert not wrong, f"answered a different field: {wrong}"
    assert good / len(CASES) >= 0.9, f"{good}/{len(CASES)} right or honest; missed: {others}"


def test_every_pet_breed_has_the_care_fields(kb: KnowledgeBase) -> None:
    pets = [b for b in kb if not b.is_wild]
    assert len(pets) == 117
    for field in ("lifespan_years", "trainability", "heat_tolerance", "cold_tolerance", "alone"):
        assert all(getattr(b, field) is not None for b in pets), field
    assert sum(bool(b.health) for b in pets) >= 110
    assert all(code in HEALTH for b in pets for code in b.health)
    assert all(b.lifespan_years is None and b.trainability is None for b in kb if b.is_wild)


def test_notes_name_the_sources() -> None:
    raw = json.loads(Path(KnowledgeBase.load().source).read_text(encoding="utf-8"))  # type: ignore[arg-type]
    notes = " ".join(raw["notes"])
    assert "American Kennel Club" in notes and "Kennel Club (UK)" in notes


def test_home_is_its_own_intent_and_corgi_answers_once(kb: KnowledgeBase) -> None:
    got = answer("柯基适合家养吗？", kb=kb, use_llm=False)
    assert got.intent == "home" and got.breeds == ["Pembroke", "Cardigan"]
    assert got.text.count("彭布罗克威尔士柯基犬") >= 1 and got.text.count("卡迪根威尔士柯基犬") >= 1
    assert got.text.startswith("“柯基”指两个犬种")
    assert {f.field for f in got.facts} >= {"apartment", "first_time_owner", "alone"}
    assert "children" not in {f.field for f in got.facts}


def test_issue_examples(kb: KnowledgeBase) -> None:
    def fields(q: str) -> set[str]:
        return {f.field for f in answer(q, kb=kb, use_llm=False).facts}

    assert "lifespan_years" in fields("金毛寻回犬的平均寿命是多少年？")
    assert "trainability" in fields("德国牧羊犬好训练吗？")
    assert "cold_tolerance" in fields("吉娃娃怕冷吗？")
    assert "cats" in fields("哈士奇能和猫一起养吗？")
    assert "trainability" in fields("Is the Afghan hound easy to train?")


def test_missing_field_says_what_is_known(kb: KnowledgeBase) -> None:
    got = answer("How much does a Pomeranian cost?", kb=kb, use_llm=False)
    assert got.intent == "not_known" and got.facts == []
    assert "don't know the price" in got.text and "lifespan" in got.text
    wild = answer("澳洲野犬能活多久？", kb=kb, use_llm=False)
    assert "没有澳洲野犬的寿命信息" in wild.text and "野生动物" in wild.text


def test_novice_answer_gives_its_reasons(kb: KnowledgeBase) -> None:
    got = answer("Would a Tibetan Mastiff suit a first-time owner?", kb=kb, use_llm=False)
    assert "stubborn to train" in got.text
    assert {"first_time_owner", "trainability", "size"} <= {f.field for f in got.facts}
