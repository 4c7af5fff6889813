"""The pieces every dog answer is made of: `Fact` and `Answer`, values and facts in words,
breed names in the answer's language."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossmodal.dogs.knowledge import HEALTH, BreedInfo, KnowledgeBase
from crossmodal.dogs.phrases import GROUP_NAMES, LABELS, SENTENCES, VALUE_WORDS


@dataclass
class Fact:
    """One knowledge-base field an answer rests on (`breed` is the classes.tsv name)."""

    breed: str
    field: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"breed": self.breed, "field": self.field, "value": value}


@dataclass
class Answer:
    """What `answer` returns (and `crossmodal dogs ask --json` prints)."""

    text: str
    lang: str
    intent: str
    breeds: list[str] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "lang": self.lang,
            "intent": self.intent,
            "breeds": list(self.breeds),
            "facts": [f.to_dict() for f in self.facts],
            "sources": list(self.sources),
        }


# ---------------------------------------------------------------------- wording tables
SUIT_RANK = {"good": 2, "ok": 1, "poor": 0}
LEVEL_RANK = {"low": 0, "moderate": 1, "high": 2}
SIZE_RANK = {"toy": 0, "small": 1, "medium": 2, "large": 3, "giant": 4}
TOPIC_FIELD = {"first_time": "first_time_owner"}
#: topics answered from one level / suitability field added for the care questions
CARE_FIELD = {
    "training": "trainability",
    "barking": "barking",
    "heat": "heat_tolerance",
    "cold": "cold_tolerance",
    "cats": "cats",
    "other_dogs": "other_dogs",
    "alone": "alone",
}


def range_text(r: tuple[float, float] | list[float], unit: str, lang: str) -> str:
    low, high = (f"{v:g}" for v in r)
    if lang == "zh":
        unit = {"kg": "公斤", "cm": "厘米"}[unit]
        return f"{low}{unit}" if low == high else f"{low}至{high}{unit}"
    return f"{low} {unit}" if low == high else f"{low}-{high} {unit}"


def value_text(fact: Fact, lang: str) -> str:
    v = fact.value
    if v is None or v == [] or v == ():
        return "not in knowledge base" if lang == "en" else "知识库中无此信息"
    if fact.field == "weight_kg":
        return range_text(v, "kg", lang)
    if fact.field == "height_cm":
        return range_text(v, "cm", lang)
    if fact.field == "lifespan_years":
        return years_text(v, lang)
    if fact.field == "health":
        return health_names(v, lang)
    if fact.field == "recognized":
        return f"{float(v):.2f}"
    if isinstance(v, bool):
        return ("yes" if v else "no") if lang == "en" else ("是" if v else "否")
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if lang == "en" else "、".join(map(str, v))
    if fact.field == "group" and lang == "zh":
        return GROUP_NAMES["zh"].get(str(v), str(v))
    if lang == "zh" and str(v) in VALUE_WORDS["zh"]:
        return VALUE_WORDS["zh"][str(v)]
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "…"


PHOTO_FIELDS = ("recognized", "is_dog", "dog_score")


def _photo_line(facts: list[Fact], kb: KnowledgeBase, lang: str) -> str:
    """'Photo: recognised as Chihuahua (score 0.93).' - what the recogniser said, not the KB."""
    zh = lang == "zh"
    parts = []
    for f in facts:
        if f.field == "recognized":
            name = breed_display(kb, f.breed, lang)
            parts.append(
                f"识别为{name}（置信度{float(f.value):.2f}）"
                if zh
                else f"recognised as {name} (score {float(f.value):.2f})"
            )
        elif f.field == "is_dog" and not f.value:
            score = next((float(g.value) for g in facts if g.field == "dog_score"), None)
            extra = (
                ""
                if score is None
                else (f"（狗的可能性{score:.2f}）" if zh else f" (dog score {score:.2f})")
            )
            parts.append(f"不是狗{extra}" if zh else f"not a dog{extra}")
    if not parts:
        return ""
    return ("照片：" + "，".join(parts) + "。") if zh else ("Photo: " + "; ".join(parts) + ".")


def facts_line(facts: list[Fact], kb: KnowledgeBase, lang: str) -> str:
    """'Facts used (knowledge base): Chihuahua — children: poor.' in the answer's language,
    preceded by what the photo was recognised as, when a photo was given."""
    photo = _photo_line([f for f in facts if f.field in PHOTO_FIELDS], kb, lang)
    kb_line = _kb_line([f for f in facts if f.field not in PHOTO_FIELDS], kb, lang)
    return "\n".join(x for x in (photo, kb_line) if x)


def _kb_line(facts: list[Fact], kb: KnowledgeBase, lang: str) -> str:
    shown = [f for f in facts if f.field not in ("description", "passage")]
    if not shown:
        named = [f for f in facts if f.field in ("description", "passage")]
        if not named:
            return ""
        names = list(dict.fromkeys(breed_display(kb, f.breed, lang) for f in named if f.breed))
        if lang == "zh":
            return "依据（知识库）：" + "、".join(names) + "的条目。"
        return "Facts used (knowledge base): the entries for " + ", ".join(names) + "."
    groups: dict[str, list[Fact]] = {}
    for f in shown:
        groups.setdefault(f.breed, []).append(f)
    parts = []
    for breed, items in groups.items():
        label = breed_display(kb, breed, lang) if breed else ""
        if lang == "zh":
            values = [f"{LABELS['zh'].get(f.field, f.field)}：{value_text(f, lang)}" for f in items]
        else:
            values = [f"{LABELS['en'].get(f.field, f.field)}: {value_text(f, lang)}" for f in items]
        sep = "; " if lang == "en" else "；"
        parts.append((f"{label} — " if label else "") + sep.join(values))
    if lang == "zh":
        return "依据（知识库）：" + "。".join(parts) + "。"
    return "Facts used (knowledge base): " + ". ".join(parts) + "."


def breed_display(kb: KnowledgeBase, breed: str, lang: str) -> str:
    for info in kb.find_all(breed):
        return info.display_name(lang)
    return breed


def breed_name(info: BreedInfo, lang: str, the: bool = True) -> str:
    if lang == "zh":
        return info.name_zh
    return f"the {info.name_en}" if the else info.name_en


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def say(sentence: str, lang: str, info: BreedInfo, **values: str) -> str:
    """One of `phrases.SENTENCES` about a breed, in the answer's language."""
    return SENTENCES[lang][sentence].format(name=capitalise(breed_name(info, lang)), **values)


def years_text(r: tuple[float, float] | list[float], lang: str) -> str:
    low, high = (f"{v:g}" for v in r)
    if lang == "zh":
        return f"{low}年" if low == high else f"{low}至{high}年"
    return f"{low} years" if low == high else f"{low}-{high} years"


def health_names(codes: list[str], lang: str) -> str:
    names = [HEALTH[c][lang == "zh"] for c in codes]
    return "、".join(names) if lang == "zh" else ", ".join(names)
