"""Question answering: the 40-question fixture, intents, languages and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crossmodal.dogs import nlu
from crossmodal.dogs.knowledge import KnowledgeBase
from crossmodal.dogs.qa import Answer, DogQuestionError, answer
from crossmodal.errors import CrossmodalError
from tests.conftest import sample_photo

FIXTURE = Path(__file__).with_name("qa_fixture.json")


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def check(case: dict[str, Any], got: Answer) -> list[str]:
    """What is wrong with an answer to a fixture question (empty list: correct)."""
    problems = []
    if got.lang != case["lang"]:
        problems.append(f"lang {got.lang} != {case['lang']}")
    if case.get("intent") and got.intent != case["intent"]:
        problems.append(f"intent {got.intent} != {case['intent']}")
    missing = [b for b in case.get("breeds", []) if b not in got.breeds]
    if missing:
        problems.append(f"breeds {missing} not in {got.breeds}")
    for want in case.get("facts", []):
        found = [f for f in got.facts if f.breed == want["breed"] and f.field == want["field"]]
        if not found:
            problems.append(f"no fact {want['breed']}.{want['field']}")
            continue
        if "value" in want and not any(_same(f.value, want["value"]) for f in found):
            problems.append(f"{want['breed']}.{want['field']} = {found[0].value!r}")
        if "contains" in want and not any(want["contains"] in (f.value or []) for f in found):
            problems.append(f"{want['breed']}.{want['field']} lacks {want['contains']!r}")
    # the answer must name the facts it rests on
    marker = "Facts used" if case["lang"] == "en" else "依据"
    if got.facts and marker not in got.text:
        problems.append("the answer does not name its facts")
    for snippet in case.get("text_contains", []):
        if snippet not in got.text:
            problems.append(f"text lacks {snippet!r}")
    return problems


def test_fixture_shape() -> None:
    cases = json.loads(FIXTURE.read_text(encoding="utf-8"))["questions"]
    assert len(cases) == 40
    assert sum(c["lang"] == "en" for c in cases) == 20
    assert sum(c["lang"] == "zh" for c in cases) == 20
    assert all(c.get("breeds") or c.get("facts") for c in cases)


def test_fixture_answered_correctly(kb: KnowledgeBase) -> None:
    cases = json.loads(FIXTURE.read_text(encoding="utf-8"))["questions"]
    failures = {}
    for case in cases:
        problems = check(case, answer(case["q"], kb=kb, use_llm=False))
        if problems:
            failures[case["q"]] = problems
    correct = len(cases) - len(failures)
    assert correct / len(cases) >= 0.9, f"{correct}/{len(cases)} correct; wrong: {failures}"


def test_facts_are_named_in_the_text(kb: KnowledgeBase) -> None:
    got = answer("Is a Chihuahua good with kids?", kb=kb, use_llm=False)
    assert "children: poor" in got.text
    got = answer("吉娃娃适合有孩子的家庭吗？", kb=kb, use_llm=False)
    assert got.lang == "zh" and "与孩子相处：差" in got.text


def test_null_field_is_not_guessed(kb: KnowledgeBase) -> None:
    got = answer("How much exercise does a dingo need?", kb=kb, use_llm=False)
    assert got.breeds == ["dingo"]
    assert [f.value for f in got.facts if f.field == "exercise"] == [None]
    assert "not in my knowledge base" in got.text
    zh = answer("澳洲野犬需要多少运动？", kb=kb, use_llm=False)
    assert "没有" in zh.text and zh.facts[0].value is None


@pytest.mark.parametrize(
    "question",
    ["Is a Shiba Inu good with kids?", "Is the Dalmatian good for apartments?", "柴犬掉毛多吗？"],
)
def test_unknown_breed_gets_no_made_up_facts(question: str, kb: KnowledgeBase) -> None:
    got = answer(question, kb=kb, use_llm=False)
    assert got.intent == "unknown_breed"
    assert got.facts == [] and got.breeds == []
    assert "120" in got.text


def test_typo_gets_a_suggestion(kb: KnowledgeBase) -> None:
    got = answer("Is a Chihuahau good with kids?", kb=kb, use_llm=False)
    assert got.intent == "unknown_breed"
    assert "Chihuahua" in got.text and got.facts == []


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_clear_error(question: str) -> None:
    with pytest.raises(DogQuestionError, match="empty"):
        answer(question)
    assert issubclass(DogQuestionError, CrossmodalError)


def test_non_text_question_is_an_error() -> None:
    with pytest.raises(DogQuestionError):
        answer(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("Est-ce que le beagle est bon avec les enfants ?", "fr"),
        ("¿Es el beagle bueno con los niños?", "es"),
        ("Ist ein Beagle gut für Kinder?", "de"),
        ("هل هذا الكلب جيد مع الأطفال؟", "ar"),
        ("このビーグルは子供に優しいですか？", "ja"),
        ("Хороша ли эта собака для детей?", "ru"),
    ],
)
def test_unsupported_languages(question: str, code: str) -> None:
    got = answer(question, use_llm=False)
    assert got.intent == "unsupported_language"
    assert got.lang == code
    assert "Chinese or English" in got.text and "中文或英文" in got.text
    assert got.facts == []


def test_language_detection_ignores_breed_names(kb: KnowledgeBase) -> None:
    q = "Is the Bouvier des Flandres good with kids?"
    spans = [(m.start, m.end) for m in nlu.spot_breeds(q, kb)]
    assert nlu.detect_language(q, spans) == "en"
    assert nlu.detect_language("Golden Retriever适合家养吗") == "zh"
    assert answer("Is 金毛 good with kids?", kb=kb, use_llm=False).lang == "en"


def test_forced_answer_language(kb: KnowledgeBase) -> None:
    got = answer("Is a Pug good with kids?", lang="zh", kb=kb, use_llm=False)
    assert got.lang == "zh" and "巴哥犬" in got.text


def test_breed_spotting(kb: KnowledgeBase) -> None:
    spot = lambda q: [b.breed for m in nlu.spot_breeds(q, kb) for b in m.breeds]  # noqa: E731
    assert spot("German Shepherd or Border Collie?") == ["German_shepherd", "Border_collie"]
    assert spot("Are Golden Retrievers and huskies friendly?") == [
        "golden_retriever",
        "Siberian_husky",
    ]
    assert spot("a dog with a golden coat and curly hair") == []  # lower-case common words
    assert spot("金毛和哈士奇哪个掉毛多") == ["golden_retriever", "Siberian_husky"]
    assert spot("柯基") == ["Pembroke", "Cardigan"]


def test_intents(kb: KnowledgeBase) -> None:
    def intent(q: str) -> str:
        return answer(q, kb=kb, use_llm=False).intent

    assert intent("What breed is this?") == "identify"
    assert intent("这是什么品种的狗？") == "identify"
    assert intent("Beagle vs Pug") == "compare"
    assert intent("What is a Beagle like?") == "temperament"
    assert intent("Which dogs are good with kids?") == "recommend"
    assert intent("Is it good with kids?") == "needs_subject"


def test_identify_without_photo_asks_for_one(kb: KnowledgeBase) -> None:
    got = answer("What breed is this?", kb=kb, use_llm=False)
    assert "photo" in got.text and got.breeds == []


def test_recommendation_filters(kb: KnowledgeBase) -> None:
    got = answer("small dog that doesn't shed, good for apartments", kb=kb, use_llm=False)
    assert got.intent == "recommend" and got.breeds
    for name in got.breeds:
        info = kb.find(name)
        assert info is not None
        assert info.size in ("toy", "small") and info.shedding == "low"
        assert info.apartment == "good"


def test_off_topic_question_is_not_answered_with_dog_facts(kb: KnowledgeBase) -> None:
    got = answer("What is the capital of France?", kb=kb, use_llm=False)
    assert got.intent == "search"
    assert got.facts == []


def test_non_dog_photo_gets_an_honest_answer(kb: KnowledgeBase) -> None:
    got = answer("What breed is this?", image=sample_photo("china"), kb=kb, use_llm=False)
    assert got.intent == "identify"
    assert "doesn't look like a dog" in got.text and got.breeds == []
    zh = answer("它适合家养吗？", image=sample_photo("china"), kb=kb, use_llm=False)
    assert "不像狗" in zh.text and zh.breeds == []


def test_photo_is_the_subject(dogs_root: Path, kb: KnowledgeBase) -> None:
    photo = dogs_root / "images" / "n02085620_10074.jpg"  # a Chihuahua
    got = answer("Is it good with kids?", image=photo, kb=kb, use_llm=False)
    assert got.breeds == ["Chihuahua"] and got.intent == "children"
    assert any(f.field == "recognized" for f in got.facts)
    assert any(f.field == "children" and f.value == "poor" for f in got.facts)
    ident = answer("这是什么品种？", image=photo, kb=kb, use_llm=False)
    assert ident.intent == "identify" and "吉娃娃" in ident.text
    # a breed named in the question wins over the photo
    other = answer("Is a Great Dane good with kids?", image=photo, kb=kb, use_llm=False)
    assert other.breeds == ["Great_Dane"]


def test_answer_to_dict_is_json(kb: KnowledgeBase) -> None:
    got = answer("How big is a Great Dane?", kb=kb, use_llm=False).to_dict()
    text = json.dumps(got, ensure_ascii=False)
    assert set(got) == {"text", "lang", "intent", "breeds", "facts", "sources"}
    assert '"weight_kg"' in text and got["facts"][1]["value"] == [50.0, 80.0]
