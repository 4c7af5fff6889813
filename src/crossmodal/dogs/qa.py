"""Question answering about dog breeds, in Chinese and English: `answer(question, image=None)`.

How an answer is made:

1. the language is detected (Chinese / English; anything else gets a clear "only Chinese and
   English" answer), breed names are spotted (`nlu.spot_breeds`), and the intent is found by
   keyword rules: identify / compare / recommend / one topic (children, apartment, first-time
   owner, size, exercise, grooming, temperament, origin, appearance, lifespan, training,
   barking, health, heat, cold, cats, other dogs, time alone, home) / info / not_known (a field
   the base does not hold: said so, with what is known) / search;
2. the subject is the breed(s) named in the question or, when none is named and a photo is
   given, the breed recognised in the photo (a photo that is not a dog gets an honest answer);
3. the answer is rendered from knowledge-base fields only, and ends with the facts it used.
   A field that is null in the knowledge base is answered "not in my knowledge base";
4. questions no rule covers fall back to text->text retrieval of knowledge-base passages with
   multilingual USE embeddings (`retrieval.py`);
5. optionally, an OpenAI-compatible LLM rewords the draft from the same facts (`llm.py`); the
   facts line is appended after its text, and any failure keeps the rule-based answer.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from crossmodal.dogs import nlu
from crossmodal.dogs.knowledge import (
    _EXERCISE_EN,
    _EXERCISE_ZH,
    _GROOM_EN,
    _GROOM_ZH,
    _SHED_EN,
    _SHED_ZH,
    _SIZE_ZH,
    _SUIT_EN,
    _SUIT_ZH,
    HEALTH,
    BreedInfo,
    KnowledgeBase,
)
from crossmodal.errors import CrossmodalError

__all__ = ["Answer", "DogQuestionError", "Fact", "answer"]

SUPPORTED = ("en", "zh")
UNSUPPORTED_TEXT = (
    "Sorry, I can only answer questions in Chinese or English. 抱歉，我只能回答中文或英文的问题。"
)


class DogQuestionError(CrossmodalError):
    """The question cannot be answered as asked (empty, not text)."""


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
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "children": ("children", "与孩子相处"),
    "apartment": ("apartment", "公寓生活"),
    "first_time_owner": ("first-time owner", "新手饲养"),
    "size": ("size", "体型"),
    "weight_kg": ("weight", "体重"),
    "height_cm": ("height", "肩高"),
    "exercise": ("exercise", "运动需求"),
    "grooming": ("grooming", "打理需求"),
    "shedding": ("shedding", "掉毛"),
    "coat": ("coat", "被毛"),
    "colors": ("colours", "毛色"),
    "temperament": ("temperament", "性格"),
    "origin": ("origin", "原产地"),
    "group": ("group", "类别"),
    "description": ("description", "简介"),
    "recognized": ("recognised in the photo, score", "照片识别结果，置信度"),
    "is_dog": ("is a dog", "是狗"),
    "passage": ("passage", "段落"),
    "lifespan_years": ("lifespan", "寿命"),
    "trainability": ("trainability", "训练难易"),
    "barking": ("barking", "吠叫"),
    "health": ("common health problems", "常见健康问题"),
    "heat_tolerance": ("heat tolerance", "耐热"),
    "cold_tolerance": ("cold tolerance", "耐寒"),
    "cats": ("with cats", "与猫相处"),
    "other_dogs": ("with other dogs", "与其他狗相处"),
    "alone": ("time alone", "独处"),
}
_VALUE_ZH = {
    "good": "好",
    "ok": "一般",
    "poor": "差",
    "low": "低",
    "moderate": "中等",
    "high": "高",
    **_SIZE_ZH,
}
_GROUP_ZH = {
    "toy": "玩赏犬",
    "hound": "猎犬",
    "terrier": "㹴犬",
    "sporting": "运动犬",
    "non-sporting": "非运动犬",
    "working": "工作犬",
    "herding": "牧羊犬",
    "wild canid": "野生犬科动物",
}
_SUIT_RANK = {"good": 2, "ok": 1, "poor": 0}
_LEVEL_RANK = {"low": 0, "moderate": 1, "high": 2}
_SIZE_RANK = {"toy": 0, "small": 1, "medium": 2, "large": 3, "giant": 4}
_TOPIC_FIELD = {"first_time": "first_time_owner"}
#: topics answered from one level / suitability field added for the care questions
_CARE_FIELD = {
    "training": "trainability",
    "barking": "barking",
    "heat": "heat_tolerance",
    "cold": "cold_tolerance",
    "cats": "cats",
    "other_dogs": "other_dogs",
    "alone": "alone",
}
_SUIT_PREFIX = {
    "en": {"good": "Yes.", "ok": "It can work.", "poor": "Not really."},
    "zh": {"good": "适合。", "ok": "可以，但有前提。", "poor": "不太适合。"},
}
_WHAT_EN = {
    "exercise": "exercise needs",
    "grooming": "grooming needs",
    "first-time owner": "suitability for first-time owners",
    "children": "suitability for children",
    "apartment": "suitability for apartments",
}
_NOT_IN_KB = {
    "en": "The {what} of the {name} is not in my knowledge base.",
    "zh": "我的知识库中没有{name}的{what}信息。",
}


def _range_text(r: tuple[float, float] | list[float], unit: str, lang: str) -> str:
    low, high = (f"{v:g}" for v in r)
    if lang == "zh":
        unit = {"kg": "公斤", "cm": "厘米"}[unit]
        return f"{low}{unit}" if low == high else f"{low}至{high}{unit}"
    return f"{low} {unit}" if low == high else f"{low}-{high} {unit}"


def _value_text(fact: Fact, lang: str) -> str:
    v = fact.value
    if v is None or v == [] or v == ():
        return "not in knowledge base" if lang == "en" else "知识库中无此信息"
    if fact.field == "weight_kg":
        return _range_text(v, "kg", lang)
    if fact.field == "height_cm":
        return _range_text(v, "cm", lang)
    if fact.field == "lifespan_years":
        return _years(v, lang)
    if fact.field == "health":
        return _health_names(v, lang)
    if fact.field == "recognized":
        return f"{float(v):.2f}"
    if isinstance(v, bool):
        return ("yes" if v else "no") if lang == "en" else ("是" if v else "否")
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if lang == "en" else "、".join(map(str, v))
    if fact.field == "group" and lang == "zh":
        return _GROUP_ZH.get(str(v), str(v))
    if lang == "zh" and str(v) in _VALUE_ZH:
        return _VALUE_ZH[str(v)]
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "…"


_PHOTO_FIELDS = ("recognized", "is_dog", "dog_score")


def _photo_line(facts: list[Fact], kb: KnowledgeBase, lang: str) -> str:
    """'Photo: recognised as Chihuahua (score 0.93).' - what the recogniser said, not the KB."""
    zh = lang == "zh"
    parts = []
    for f in facts:
        if f.field == "recognized":
            name = _display(kb, f.breed, lang)
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
    photo = _photo_line([f for f in facts if f.field in _PHOTO_FIELDS], kb, lang)
    kb_line = _kb_line([f for f in facts if f.field not in _PHOTO_FIELDS], kb, lang)
    return "\n".join(x for x in (photo, kb_line) if x)


def _kb_line(facts: list[Fact], kb: KnowledgeBase, lang: str) -> str:
    shown = [f for f in facts if f.field not in ("description", "passage")]
    if not shown:
        named = [f for f in facts if f.field in ("description", "passage")]
        if not named:
            return ""
        names = list(dict.fromkeys(_display(kb, f.breed, lang) for f in named if f.breed))
        if lang == "zh":
            return "依据（知识库）：" + "、".join(names) + "的条目。"
        return "Facts used (knowledge base): the entries for " + ", ".join(names) + "."
    groups: dict[str, list[Fact]] = {}
    for f in shown:
        groups.setdefault(f.breed, []).append(f)
    parts = []
    for breed, items in groups.items():
        label = _display(kb, breed, lang) if breed else ""
        if lang == "zh":
            values = [
                f"{FIELD_LABELS.get(f.field, (f.field, f.field))[1]}：{_value_text(f, lang)}"
                for f in items
            ]
        else:
            values = [
                f"{FIELD_LABELS.get(f.field, (f.field, f.field))[0]}: {_value_text(f, lang)}"
                for f in items
            ]
        sep = "; " if lang == "en" else "；"
        parts.append((f"{label} — " if label else "") + sep.join(values))
    if lang == "zh":
        return "依据（知识库）：" + "。".join(parts) + "。"
    return "Facts used (knowledge base): " + ". ".join(parts) + "."


def _display(kb: KnowledgeBase, breed: str, lang: str) -> str:
    for info in kb.find_all(breed):
        return info.display_name(lang)
    return breed


def _name(info: BreedInfo, lang: str, the: bool = True) -> str:
    if lang == "zh":
        return info.name_zh
    return f"the {info.name_en}" if the else info.name_en


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------- topic answers
def _suitability(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    value = getattr(info, field_name)
    facts = [Fact(info.breed, field_name, value)]
    what = FIELD_LABELS[field_name][lang == "zh"]
    if value is None:
        what = _WHAT_EN.get(what, what) if lang == "en" else what
        return _NOT_IN_KB[lang].format(name=_name(info, lang, the=False), what=what), facts
    if lang == "zh":
        text = f"{_SUIT_PREFIX['zh'][value]}{info.name_zh}{_SUIT_ZH[field_name][value]}。"
        if info.is_wild:
            text += f"注意：{info.name_zh}是野生动物，不是宠物。"
    else:
        text = (
            f"{_SUIT_PREFIX['en'][value]} {_cap(_name(info, lang))} {_SUIT_EN[field_name][value]}."
        )
        if info.is_wild:
            text += f" Note: the {info.name_en} is a wild animal, not a pet."
    extra, more = _nuance(info, field_name, lang)
    return text + extra, facts + more


def _size(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    facts = [
        Fact(info.breed, "size", info.size),
        Fact(info.breed, "weight_kg", info.weight_kg),
        Fact(info.breed, "height_cm", info.height_cm),
    ]
    if lang == "zh":
        parts = []
        n = info.name_zh
        parts.append(f"{n}是{_SIZE_ZH[info.size]}犬" if info.size else f"知识库中没有{n}的体型分类")
        parts.append(
            f"体重{_range_text(info.weight_kg, 'kg', 'zh')}"
            if info.weight_kg
            else "知识库中没有它的体重数据"
        )
        parts.append(
            f"肩高{_range_text(info.height_cm, 'cm', 'zh')}"
            if info.height_cm
            else "知识库中没有它的肩高数据"
        )
        return "，".join(parts) + "。", facts
    n = _name(info, "en")
    first = (
        f"{_cap(n)} is a {info.size} {'wild canid' if info.is_wild else 'dog'}"
        if info.size
        else f"{_cap(n)}'s size class is not in my knowledge base"
    )
    bits = []
    bits.append(
        f"it weighs {_range_text(info.weight_kg, 'kg', 'en')}"
        if info.weight_kg
        else "its weight is not in my knowledge base"
    )
    bits.append(
        f"stands {_range_text(info.height_cm, 'cm', 'en')} at the shoulder"
        if info.height_cm
        else "its height is not in my knowledge base"
    )
    return f"{first}: {bits[0]} and {bits[1]}.", facts


def _level(info: BreedInfo, field_name: str, lang: str) -> tuple[str, Fact]:
    value = getattr(info, field_name)
    fact = Fact(info.breed, field_name, value)
    what = FIELD_LABELS[field_name][lang == "zh"]
    if value is None:
        what = _WHAT_EN.get(what, what) if lang == "en" else what
        return _NOT_IN_KB[lang].format(name=_name(info, lang, the=False), what=what), fact
    tables = {
        "exercise": (_EXERCISE_EN, _EXERCISE_ZH),
        "grooming": (_GROOM_EN, _GROOM_ZH),
        "shedding": (_SHED_EN, _SHED_ZH),
    }[field_name]
    if lang == "zh":
        return f"{info.name_zh}{tables[1][value]}。", fact
    return f"{_cap(_name(info, 'en'))} {tables[0][value]}.", fact


def _grooming(info: BreedInfo, lang: str, question: str) -> tuple[str, list[Fact]]:
    shed_first = bool(re.search(r"shed|moult|molt|hypoallergenic|掉毛|脱毛|换毛|过敏", question))
    order = ["shedding", "grooming"] if shed_first else ["grooming", "shedding"]
    texts, facts = [], []
    for f in order:
        t, fact = _level(info, f, lang)
        texts.append(t)
        facts.append(fact)
    coat = info.coat_zh if lang == "zh" else info.coat_en
    facts.append(Fact(info.breed, "coat", coat))
    if coat:
        texts.append(f"被毛：{coat}。" if lang == "zh" else f"Coat: {coat}.")
    return ("" if lang == "zh" else " ").join(texts), facts


def _temperament(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    words = info.temperament_zh if lang == "zh" else info.temperament_en
    fact = Fact(info.breed, "temperament", list(words))
    if not words:
        return _NOT_IN_KB[lang].format(
            name=_name(info, lang, the=False), what=FIELD_LABELS["temperament"][lang == "zh"]
        ), [fact]
    if lang == "zh":
        return f"{info.name_zh}的性格：{'、'.join(words)}。", [fact]
    return f"{_cap(_name(info, 'en'))} is {_join_en(words)}.", [fact]


def _origin(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    value = info.origin_zh if lang == "zh" else info.origin_en
    fact = Fact(info.breed, "origin", value)
    if not value:
        return _NOT_IN_KB[lang].format(
            name=_name(info, lang, the=False), what=FIELD_LABELS["origin"][lang == "zh"]
        ), [fact]
    if lang == "zh":
        return f"{info.name_zh}原产于{value}。", [fact]
    return f"{_cap(_name(info, 'en'))} comes from {value}.", [fact]


def _appearance(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    coat = info.coat_zh if lang == "zh" else info.coat_en
    colors = info.colors_zh if lang == "zh" else info.colors_en
    facts = [Fact(info.breed, "coat", coat), Fact(info.breed, "colors", list(colors))]
    parts = []
    if lang == "zh":
        parts.append(
            f"{info.name_zh}的被毛：{coat}" if coat else f"知识库中没有{info.name_zh}的被毛信息"
        )
        parts.append(f"毛色有{'、'.join(colors)}" if colors else "知识库中没有它的毛色信息")
        return "；".join(parts) + "。", facts
    n = _cap(_name(info, "en"))
    parts.append(f"{n} has a {coat}" if coat else f"{n}'s coat is not in my knowledge base")
    parts.append(
        f"its colours include {_join_en(colors)}"
        if colors
        else "its colours are not in my knowledge base"
    )
    return "; ".join(parts) + ".", facts


# ---------------------------------------------------------------------- care topics
_CARE_EN: dict[str, dict[str, str]] = {
    "trainability": {
        "high": "is easy to train: eager to please and quick to learn",
        "moderate": "is moderately easy to train; it learns well with consistent, reward-based "
        "training",
        "low": "is hard to train: independent or stubborn, it needs patience and consistency",
    },
    "barking": {
        "low": "barks little",
        "moderate": "barks moderately, mostly to alert",
        "high": "barks (or howls) a lot",
    },
    "heat_tolerance": {
        "low": "does not tolerate heat well; keep it cool and calm in hot weather",
        "moderate": "tolerates heat moderately; avoid exercise in the midday heat",
        "high": "copes well with heat",
    },
    "cold_tolerance": {
        "low": "feels the cold; it needs a coat or a warm home in winter",
        "moderate": "tolerates cold moderately",
        "high": "copes well with cold weather",
    },
    "cats": {
        "good": "usually gets on well with cats",
        "ok": "can live with cats, best when raised with them and introduced carefully",
        "poor": "is a poor match for a home with cats; it tends to chase them",
    },
    "other_dogs": {
        "good": "usually gets on well with other dogs",
        "ok": "can live with other dogs with good socialisation",
        "poor": "is often not friendly to other dogs, especially of the same sex",
    },
    "alone": {
        "low": "does not like being left alone and is prone to separation distress",
        "moderate": "can be left alone for a few hours once it is used to it",
        "high": "copes well with time alone",
    },
}
_CARE_ZH: dict[str, dict[str, str]] = {
    "trainability": {
        "high": "容易训练，乐于取悦主人、学得快",
        "moderate": "训练难度中等，坚持用奖励为主的方法训练效果较好",
        "low": "不太好训练，比较独立或固执，需要耐心和一致的规则",
    },
    "barking": {"low": "很少吠叫", "moderate": "吠叫中等，多为示警", "high": "比较爱叫（或嚎叫）"},
    "heat_tolerance": {
        "low": "不耐热，炎热天气要注意降温、减少活动",
        "moderate": "耐热程度中等，避免在正午高温时运动",
        "high": "比较耐热",
    },
    "cold_tolerance": {
        "low": "怕冷，冬天需要穿衣服或待在温暖的室内",
        "moderate": "耐寒程度中等",
        "high": "很耐寒",
    },
    "cats": {
        "good": "通常能和猫和睦相处",
        "ok": "可以和猫一起养，最好从小一起长大并谨慎引见",
        "poor": "不太适合有猫的家庭，容易追猫",
    },
    "other_dogs": {
        "good": "通常能和其他狗友好相处",
        "ok": "社会化良好时可以和其他狗一起生活",
        "poor": "对其他狗常不友好，尤其是同性别的狗",
    },
    "alone": {
        "low": "不喜欢独处，容易出现分离焦虑",
        "moderate": "习惯后可以独自在家几个小时",
        "high": "能很好地适应独处",
    },
}
_WILD_NOTE = {
    "en": " Note: the {name} is a wild animal, not a pet.",
    "zh": "注意：{name}是野生动物，不是宠物。",
}


def _years(r: tuple[float, float] | list[float], lang: str) -> str:
    low, high = (f"{v:g}" for v in r)
    if lang == "zh":
        return f"{low}年" if low == high else f"{low}至{high}年"
    return f"{low} years" if low == high else f"{low}-{high} years"


def _health_names(codes: list[str], lang: str) -> str:
    names = [HEALTH[c][lang == "zh"] for c in codes]
    return "、".join(names) if lang == "zh" else ", ".join(names)


def _not_known(info: BreedInfo, field_name: str, lang: str) -> str:
    what = FIELD_LABELS[field_name][lang == "zh"]
    text = _NOT_IN_KB[lang].format(name=_name(info, lang, the=False), what=what)
    if info.is_wild:
        text += _WILD_NOTE[lang].format(name=info.display_name(lang))
    return text


def _care(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    value = getattr(info, field_name)
    facts = [Fact(info.breed, field_name, value)]
    if value is None:
        return _not_known(info, field_name, lang), facts
    if lang == "zh":
        return f"{info.name_zh}{_CARE_ZH[field_name][value]}。", facts
    return f"{_cap(_name(info, 'en'))} {_CARE_EN[field_name][value]}.", facts


def _lifespan(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    facts = [Fact(info.breed, "lifespan_years", info.lifespan_years)]
    if info.lifespan_years is None:
        return _not_known(info, "lifespan_years", lang), facts
    years = _years(info.lifespan_years, lang)
    if lang == "zh":
        return f"{info.name_zh}的寿命一般为{years}。", facts
    return f"{_cap(_name(info, 'en'))} typically lives {years}.", facts


def _health(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    facts = [Fact(info.breed, "health", list(info.health))]
    if not info.health:
        return _not_known(info, "health", lang), facts
    names = _health_names(list(info.health), lang)
    if lang == "zh":
        return (
            f"{info.name_zh}较常见的健康问题有：{names}。这些是该犬种常被报告的问题，不代表每只狗"
            "都会患病；选购时可以询问父母犬的健康筛查。",
            facts,
        )
    return (
        f"Health problems seen most often in {_name(info, 'en')}: {names}. These are what the "
        "breed is known for, not a diagnosis of any one dog; ask breeders for the parents' "
        "health screening.",
        facts,
    )


#: what makes a breed harder for a novice: (field, value, English, Chinese)
_NOVICE_CAVEATS = [
    ("trainability", "low", "it can be stubborn to train", "训练需要耐心"),
    ("exercise", "high", "it needs a lot of daily exercise", "每天需要大量运动"),
    (
        "size",
        "giant",
        "its size takes space and strength to handle",
        "体型巨大，需要空间和力气控制",
    ),
    ("alone", "low", "it dislikes being left alone", "不喜欢独处"),
    ("barking", "high", "it barks a lot", "比较爱叫"),
    ("grooming", "high", "its coat needs a lot of grooming", "被毛需要大量打理"),
]
#: what matters with young children
_CHILD_CAVEATS = [
    (
        "size",
        "toy",
        "it is small and fragile, so children must handle it gently",
        "体型小而脆弱，孩子需要轻拿轻放",
    ),
    ("size", "giant", "its size can knock over small children", "体型巨大，可能无意中撞倒小孩"),
    ("trainability", "low", "it can be stubborn to train", "训练需要耐心"),
]


def _nuance(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    """Why a breed is or is not easy for a novice / a family: the fields that make it so."""
    if info.is_wild or field_name not in ("first_time_owner", "children"):
        return "", []
    table = _NOVICE_CAVEATS if field_name == "first_time_owner" else _CHILD_CAVEATS
    hits = [(f, en, zh) for f, v, en, zh in table if getattr(info, f) == v]
    if not hits:
        return "", []
    facts = [Fact(info.breed, f, getattr(info, f)) for f, _, _ in hits]
    if lang == "zh":
        return "需要注意：" + "；".join(zh for _, _, zh in hits) + "。", facts
    return " Keep in mind: " + "; ".join(en for _, en, _ in hits) + ".", facts


def _home(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    """'Can I keep it as a pet at home?': apartment, first-time owner, time alone, barking."""
    if info.is_wild:
        text = (
            f"不适合。{info.name_zh}是野生动物，不是宠物，不适合家养。"
            if lang == "zh"
            else f"No. The {info.name_en} is a wild animal, not a pet, and unsuitable for any home."
        )
        return text, [Fact(info.breed, "apartment", info.apartment)]
    fields = ["apartment", "first_time_owner", "alone", "barking"]
    facts = [Fact(info.breed, f, getattr(info, f)) for f in fields]
    parts = []
    for f in fields:
        value = getattr(info, f)
        if value is None:
            continue
        table = (_SUIT_ZH if lang == "zh" else _SUIT_EN).get(f) or (
            _CARE_ZH if lang == "zh" else _CARE_EN
        )[f]
        parts.append(table[value].removeprefix("is ") if lang == "en" else table[value])
    ranks = [_SUIT_RANK.get(v, 1) for v in (info.apartment, info.first_time_owner) if v]
    verdict = min(ranks) if ranks else 1
    if lang == "zh":
        lead = {2: "适合家养。", 1: "可以家养，但要看你的条件。", 0: "不太适合一般家庭饲养。"}[
            verdict
        ]
        body = f"{info.name_zh}" + "，".join(parts) + "。" if parts else ""
        return lead + body, facts
    lead = {
        2: "Yes, it makes a good pet at home.",
        1: "It can, depending on your home.",
        0: "It is not an easy pet for most homes.",
    }[verdict]
    body = f" The {info.name_en}: " + "; ".join(parts) + "." if parts else ""
    return lead + body, facts


def _names(infos: list[BreedInfo], lang: str) -> str:
    if lang == "zh":
        return "和".join(i.name_zh for i in infos)
    return " and the ".join(i.name_en for i in infos)


def _not_held(
    info: BreedInfo, missing: list[tuple[str, str, str]], lang: str, name: str | None = None
) -> str:
    """An honest 'I don't know X for this breed', and what is known instead."""
    known = _known_topics(info, lang)
    name = name or info.display_name(lang)
    if lang == "zh":
        what = "、".join(zh for _, _, zh in missing)
        return (
            f"我的知识库中没有{name}的{what}信息，所以无法回答这一点。"
            f"关于{name}，我知道的有：{'、'.join(known)}。"
        )
    what = " or ".join(en for _, en, _ in missing)
    return (
        f"I don't know the {what} of the {name}: it is not in my knowledge base. "
        f"What I do know about it: {', '.join(known)}."
    )


_KNOWN_TOPICS = [
    ("size", "size", "体型"),
    ("temperament_en", "temperament", "性格"),
    ("exercise", "exercise", "运动需求"),
    ("grooming", "grooming and shedding", "打理和掉毛"),
    ("lifespan_years", "lifespan", "寿命"),
    ("trainability", "training", "训练"),
    ("barking", "barking", "吠叫"),
    ("health", "common health problems", "常见健康问题"),
    ("cold_tolerance", "heat and cold tolerance", "耐热耐寒"),
    ("children", "children", "与孩子相处"),
    ("cats", "cats and other dogs", "与猫和其他狗相处"),
    ("alone", "time alone", "独处"),
    ("origin_en", "origin", "原产地"),
]


def _known_topics(info: BreedInfo, lang: str) -> list[str]:
    return [
        (zh if lang == "zh" else en)
        for attr, en, zh in _KNOWN_TOPICS
        if getattr(info, attr) not in (None, [], ())
    ]


def _info(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    desc = info.description_zh if lang == "zh" else info.description_en
    facts = [
        Fact(info.breed, "description", desc),
        Fact(info.breed, "group", info.group),
        Fact(info.breed, "size", info.size),
        Fact(info.breed, "origin", info.origin_zh if lang == "zh" else info.origin_en),
    ]
    return desc, facts


def _join_en(items: list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def topic_answer(info: BreedInfo, topic: str, lang: str, question: str) -> tuple[str, list[Fact]]:
    """Answer one topic about one breed from its knowledge-base fields."""
    if topic in ("children", "apartment", "first_time"):
        return _suitability(info, _TOPIC_FIELD.get(topic, topic), lang)
    if topic == "size":
        return _size(info, lang)
    if topic == "exercise":
        text, fact = _level(info, "exercise", lang)
        return text, [fact]
    if topic == "grooming":
        return _grooming(info, lang, question)
    if topic == "temperament":
        return _temperament(info, lang)
    if topic == "origin":
        return _origin(info, lang)
    if topic == "appearance":
        return _appearance(info, lang)
    if topic == "lifespan":
        return _lifespan(info, lang)
    if topic == "health":
        return _health(info, lang)
    if topic == "home":
        return _home(info, lang)
    if topic in _CARE_FIELD:
        return _care(info, _CARE_FIELD[topic], lang)
    return _info(info, lang)


# ---------------------------------------------------------------------- comparison
_COMPARE_FIELDS: dict[str, list[str]] = {
    "children": ["children"],
    "apartment": ["apartment"],
    "first_time": ["first_time_owner"],
    "size": ["size", "weight_kg", "height_cm"],
    "exercise": ["exercise"],
    "grooming": ["grooming", "shedding"],
    "temperament": ["temperament"],
    "origin": ["origin"],
    "appearance": ["coat", "colors"],
    "lifespan": ["lifespan_years"],
    "training": ["trainability"],
    "barking": ["barking"],
    "health": ["health"],
    "heat": ["heat_tolerance"],
    "cold": ["cold_tolerance"],
    "cats": ["cats"],
    "other_dogs": ["other_dogs"],
    "alone": ["alone"],
    "home": ["apartment", "first_time_owner", "alone", "barking"],
}
_DEFAULT_COMPARE = [
    "size",
    "weight_kg",
    "exercise",
    "grooming",
    "shedding",
    "apartment",
    "children",
    "first_time_owner",
    "temperament",
]


def _field_value(info: BreedInfo, name: str, lang: str) -> Any:
    if name == "health":
        return list(info.health)
    if name in ("temperament", "colors"):
        return list(getattr(info, f"{name}_{lang}"))
    if name in ("coat", "origin"):
        return getattr(info, f"{name}_{lang}")
    return getattr(info, name)


def _compare(
    infos: list[BreedInfo], topics: list[str], lang: str, header: str | None = None
) -> tuple[str, list[Fact]]:
    fields: list[str] = []
    for t in topics:
        for f in _COMPARE_FIELDS.get(t, []):
            if f not in fields:
                fields.append(f)
    if not fields:
        fields = list(_DEFAULT_COMPARE)
    facts: list[Fact] = []
    lines = []
    names = [i.display_name(lang) for i in infos]
    if header is None:
        header = (" 与 ".join(names) + "的比较：") if lang == "zh" else " vs ".join(names) + ":"
    for f in fields:
        cells = []
        for info in infos:
            fact = Fact(info.breed, f, _field_value(info, f, lang))
            facts.append(fact)
            cells.append(_value_text(fact, lang))
        label = FIELD_LABELS[f][lang == "zh"]
        sep = " / "
        lines.append(
            f"- {label}: {sep.join(cells)}" if lang == "en" else f"- {label}：{sep.join(cells)}"
        )
    verdicts = [v for f in fields if (v := _verdict(infos, f, lang))]
    text = header + "\n" + "\n".join(lines)
    if verdicts:
        text += "\n" + (" ".join(verdicts) if lang == "en" else "".join(verdicts))
    return text, facts


def _verdict(infos: list[BreedInfo], f: str, lang: str) -> str:
    """One sentence saying which breed is better / more for an ordered field (two breeds)."""
    if len(infos) != 2:
        return ""
    a, b = infos
    va, vb = getattr(a, f, None), getattr(b, f, None)
    if va is None or vb is None:
        return ""
    na, nb = a.display_name(lang), b.display_name(lang)
    if f in ("children", "apartment", "first_time_owner"):
        ra, rb = _SUIT_RANK[va], _SUIT_RANK[vb]
        label = FIELD_LABELS[f][lang == "zh"]
        if ra == rb:
            return (
                f"两者在{label}方面评价相同（{_VALUE_ZH[va]}）。"
                if lang == "zh"
                else (f"Both are rated the same for {label} ({va}).")
            )
        best, other = (na, nb) if ra > rb else (nb, na)
        return (
            f"在{label}方面，{best}比{other}更合适。"
            if lang == "zh"
            else (f"For {label}, the {best} is the better match than the {other}.")
        )
    if f in ("exercise", "grooming", "shedding"):
        ra, rb = _LEVEL_RANK[va], _LEVEL_RANK[vb]
        if ra == rb:
            return ""
        more, less = (na, nb) if ra > rb else (nb, na)
        zh = {"exercise": "需要更多运动", "grooming": "需要更多打理", "shedding": "掉毛更多"}
        en = {
            "exercise": "needs more exercise",
            "grooming": "needs more grooming",
            "shedding": "sheds more",
        }
        return (
            f"{more}比{less}{zh[f]}。" if lang == "zh" else f"The {more} {en[f]} than the {less}."
        )
    if f == "size":
        ra, rb = _SIZE_RANK[va], _SIZE_RANK[vb]
        if ra == rb:
            return ""
        big, small = (na, nb) if ra > rb else (nb, na)
        return (
            f"{big}体型比{small}大。" if lang == "zh" else f"The {big} is bigger than the {small}."
        )
    return ""


# ---------------------------------------------------------------------- recommendation
def _criteria_text(filters: nlu.Filters, lang: str) -> list[str]:
    out = []
    en = lang == "en"
    if filters.sizes:
        sizes = sorted(filters.sizes, key=_SIZE_RANK.get)  # type: ignore[arg-type]
        out.append(
            f"size {'/'.join(sizes)}" if en else "体型" + "/".join(_SIZE_ZH[s] for s in sizes)
        )
    for name in ("shedding", "grooming", "exercise"):
        value = getattr(filters, name)
        if value:
            v = next(iter(value))
            out.append(f"{name} {v}" if en else f"{FIELD_LABELS[name][1]}{_VALUE_ZH[v]}")
    for name in ("apartment", "children", "first_time_owner"):
        if getattr(filters, name):
            out.append(_SUIT_EN[name]["good"].removeprefix("is ") if en else _SUIT_ZH[name]["good"])
    temperament = filters.temperament_en if en else filters.temperament_zh
    if temperament:
        out.append(("temperament: " if en else "性格：") + ", ".join(temperament))
    if filters.origin:
        out.append(f"from {filters.origin}" if en else f"来自{filters.origin}")
    return out


def _matches(info: BreedInfo, filters: nlu.Filters, lang: str) -> tuple[int, int, list[Fact]]:
    """(criteria met, criteria asked, facts checked) for one breed."""
    met = asked = 0
    facts: list[Fact] = []

    def check(field_name: str, value: Any, ok: bool) -> None:
        nonlocal met, asked
        asked += 1
        met += ok
        facts.append(Fact(info.breed, field_name, value))

    if filters.sizes is not None:
        check("size", info.size, info.size in filters.sizes)
    for name in ("shedding", "grooming", "exercise", "apartment", "children", "first_time_owner"):
        wanted = getattr(filters, name)
        if wanted is not None:
            check(name, getattr(info, name), getattr(info, name) in wanted)
    for word in filters.temperament_en:
        check("temperament", list(info.temperament_en), word in info.temperament_en)
    for word in filters.temperament_zh:
        check("temperament", list(info.temperament_zh), word in info.temperament_zh)
    if filters.origin:
        origin = f"{info.origin_en or ''} {info.origin_zh or ''}"
        value = info.origin_zh if lang == "zh" else info.origin_en
        check("origin", value, filters.origin in origin)
    return met, asked, facts


def _recommend(
    kb: KnowledgeBase, filters: nlu.Filters, lang: str, limit: int = 8
) -> tuple[str, list[Fact], list[BreedInfo]]:
    scored = []
    for info in kb:
        if info.is_wild:
            continue
        met, asked, facts = _matches(info, filters, lang)
        scored.append((met, asked, info, facts))
    asked = max((a for _, a, _, _ in scored), default=0)
    full = [(info, facts) for met, a, info, facts in scored if a and met == a]
    criteria = _criteria_text(filters, lang)
    crit = "、".join(criteria) if lang == "zh" else ", ".join(criteria)
    if full:
        chosen = full[:limit]
        names = [i.display_name(lang) for i, _ in chosen]
        more = len(full) - len(chosen)
        if lang == "zh":
            text = f"知识库中符合条件（{crit}）的犬种有{len(full)}个：{'、'.join(names)}"
            text += "等。" if more else "。"
        else:
            text = f"{len(full)} breeds in my knowledge base match ({crit}): {', '.join(names)}"
            text += f", and {more} more." if more else "."
    else:
        best = max((m for m, _, _, _ in scored), default=0)
        partial = [(info, facts) for met, _, info, facts in scored if met == best and best > 0]
        chosen = partial[:limit]
        names = [i.display_name(lang) for i, _ in chosen]
        if not chosen:
            text = (
                f"知识库中没有犬种符合这些条件（{crit}）。"
                if lang == "zh"
                else f"No breed in my knowledge base matches ({crit})."
            )
        elif lang == "zh":
            text = (
                f"没有犬种同时满足全部条件（{crit}）；满足其中{best}项（共{asked}项）的有："
                f"{'、'.join(names)}。"
            )
        else:
            text = (
                f"No breed meets all of ({crit}); these meet {best} of {asked}: {', '.join(names)}."
            )
    facts = [f for _, fs in chosen for f in fs]
    return text, facts, [i for i, _ in chosen]


# ---------------------------------------------------------------------- the entry point
_kb_lock = threading.Lock()
_kb: KnowledgeBase | None = None


def default_kb() -> KnowledgeBase:
    global _kb
    with _kb_lock:
        if _kb is None:
            _kb = KnowledgeBase.load()
        return _kb


def _normalise_lang(lang: str | None) -> str | None:
    if lang is None:
        return None
    key = str(lang).strip().lower().replace("_", "-")
    if not key or key == "auto":
        return None
    if key in ("zh", "cn", "chinese", "中文") or key.startswith(("zh-", "cmn")):
        return "zh"
    if key in ("en", "english") or key.startswith("en-"):
        return "en"
    return key


def _subjects(mentions: list[nlu.Mention]) -> list[BreedInfo]:
    out: list[BreedInfo] = []
    for m in mentions:
        for info in m.breeds:
            if info not in out:
                out.append(info)
    return out


def _identify_answer(
    ident: Any, named: list[BreedInfo], lang: str, kb: KnowledgeBase
) -> tuple[str, list[Fact], list[BreedInfo]]:
    if not ident.is_dog:
        facts = [Fact("", "is_dog", False), Fact("", "dog_score", round(ident.dog_score, 4))]
        if lang == "zh":
            return (
                f"这张照片看起来不像狗（狗的可能性{ident.dog_score:.2f}），所以我无法判断品种。",
                facts,
                [],
            )
        return (
            f"This doesn't look like a dog to me (dog score {ident.dog_score:.2f}), "
            "so I can't name a breed.",
            facts,
            [],
        )
    best = kb.by_wnid(ident.breeds[0].wnid)
    score = ident.breeds[0].score
    facts = [Fact(best.breed, "recognized", round(score, 4))]
    others = [(kb.by_wnid(b.wnid), b.score) for b in ident.breeds[1:3]]
    hedge = score < 0.5
    if lang == "zh":
        seems = "可能" if hedge else "看起来"
        text = f"这{seems}是{best.name_zh}（{best.name_en}），置信度{score:.2f}。"
        if others:
            text += "其他可能：" + "、".join(f"{o.name_zh}（{s:.2f}）" for o, s in others) + "。"
    else:
        text = (
            f"This {'may be' if hedge else 'looks like'} a {best.name_en} ({best.name_zh}), "
            f"score {score:.2f}."
        )
        if others:
            text += " Other candidates: " + ", ".join(f"{o.name_en} ({s:.2f})" for o, s in others)
            text += "."
    desc = best.description_zh if lang == "zh" else best.description_en
    first = re.split(r"(?<=[.!?。！？])\s*", desc, maxsplit=1)[0]
    if first:
        text += ("" if lang == "zh" else " ") + first
        facts.append(Fact(best.breed, "description", desc))
    if named:
        target = named[0]
        if target.wnid == best.wnid:
            text = ("是的。" if lang == "zh" else "Yes. ") + text
        else:
            in_top = {b.wnid: b.score for b in ident.breeds}
            s = in_top.get(target.wnid)
            if lang == "zh":
                text = (
                    f"看起来不太像{target.name_zh}"
                    + (f"（{s:.2f}）" if s is not None else "")
                    + "。"
                    + text
                )
            else:
                text = (
                    f"It does not look much like a {target.name_en}"
                    + (f" ({s:.2f})" if s is not None else "")
                    + ". "
                    + text
                )
    return text, facts, [best]


def _unknown_breed(question: str, lang: str, kb: KnowledgeBase, this: bool) -> Answer:
    suggestions = nlu.suggest_breed_names(question, kb)
    if lang == "zh":
        if this:
            text = "你指的是哪只狗？请附上一张照片，或者在问题中写出犬种名称。"
        else:
            text = (
                "我在问题中没有找到我认识的犬种。我的知识库包含 Stanford Dogs 的120个犬种"
                "（例如金毛寻回犬、比格犬、巴哥犬），你问的犬种可能不在其中。"
            )
        if suggestions:
            text += "你是不是想问：" + "、".join(s.name_zh for s in suggestions) + "？"
    else:
        if this:
            text = "Which dog do you mean? Attach a photo or name the breed in your question."
        else:
            text = (
                "I couldn't find a breed I know in your question. My knowledge base covers the "
                "120 Stanford Dogs breeds (for example Golden Retriever, Beagle, Pug); the breed "
                "you asked about may not be one of them."
            )
        if suggestions:
            text += " Did you mean: " + ", ".join(s.name_en for s in suggestions) + "?"
    return Answer(
        text=text,
        lang=lang,
        intent="unknown_breed" if not this else "needs_subject",
        breeds=[],
        facts=[],
        sources=[f"suggestion: {s.breed}" for s in suggestions],
    )


def _search(question: str, lang: str, kb: KnowledgeBase) -> tuple[str, list[Fact], list[str]]:
    from crossmodal.dogs.retrieval import get_passage_index

    # the first search in a language embeds ~600 passages (once per machine: cached on disk)
    hits = get_passage_index(kb).search(question, lang, k=3, show_progress=sys.stderr.isatty())
    hits = [h for h in hits if h.score >= SEARCH_MIN_SCORE]
    if not hits:
        text = (
            "我的知识库里没有能回答这个问题的内容。可以问我某个犬种的性格、体型、运动量、掉毛、"
            "是否适合孩子或公寓，或者附上照片让我识别品种。"
            if lang == "zh"
            else "I don't have anything in my knowledge base that answers this. Ask me about a "
            "breed's temperament, size, exercise, grooming, or whether it suits children or "
            "apartments, or attach a photo for me to identify."
        )
        return text, [], []
    facts = [Fact(kb.by_wnid(h.wnid).breed, "passage", h.text) for h in hits]
    sources = [f"passage {kb.by_wnid(h.wnid).breed} (similarity {h.score:.2f})" for h in hits]
    if hits[0].score >= SEARCH_SURE_SCORE:
        lead = (
            "我的知识库中最相关的内容：" if lang == "zh" else "Most relevant in my knowledge base:"
        )
    else:
        lead = (
            "我不确定；知识库中最接近的内容如下（未必回答了你的问题）："
            if lang == "zh"
            else "I'm not sure; the closest passages in my knowledge base (they may not answer "
            "your question):"
        )
    body = ("" if lang == "zh" else " ").join(h.text for h in hits[:2])
    return f"{lead}{'' if lang == 'zh' else ' '}{body}", facts, sources


#: USE cosine similarity below which a retrieved passage is not offered at all (off-topic
#: questions score ~0.1-0.2), and above which it is offered without a hedge (on-topic ~0.45+)
SEARCH_MIN_SCORE = 0.3
SEARCH_SURE_SCORE = 0.45


def answer(
    question: str,
    image: str | Path | Image.Image | None = None,
    lang: str | None = None,
    *,
    kb: KnowledgeBase | None = None,
    use_llm: bool | None = None,
) -> Answer:
    """Answer a dog question in its own language (Chinese or English), from the knowledge base.

    `image` (path or PIL image) is the photo the question is about: with no breed named in the
    question, the recognised breed is the subject. `lang` forces the answer language; by
    default it is the question's. `use_llm=None` rephrases through the LLM only when
    CROSSMODAL_LLM_URL / _MODEL are set. Raises `DogQuestionError` for an empty question and
    `ImageLoadError` for an unreadable photo.
    """
    if not isinstance(question, str):
        raise DogQuestionError(f"the question must be text, got {type(question).__name__}")
    q = " ".join(question.split())
    if not q:
        raise DogQuestionError(
            "the question is empty: ask e.g. 'Is a Beagle good with kids?' / '柯基适合家养吗？'"
        )
    kb = kb or default_kb()
    mentions = nlu.spot_breeds(q, kb)
    detected = nlu.detect_language(q, [(m.start, m.end) for m in mentions])
    out_lang = _normalise_lang(lang) or detected
    if out_lang not in SUPPORTED or detected not in SUPPORTED:
        return Answer(
            text=UNSUPPORTED_TEXT,
            lang=out_lang if out_lang not in SUPPORTED else detected,
            intent="unsupported_language",
        )
    result = _answer(q, image, out_lang, kb, mentions)
    return _maybe_rephrase(q, result, kb, use_llm)


def _answer(
    q: str,
    image: str | Path | Image.Image | None,
    lang: str,
    kb: KnowledgeBase,
    mentions: list[nlu.Mention],
) -> Answer:
    # rules read the question with breed names blanked: "吉娃娃" must not say "娃" (kids)
    chars = list(q)
    for m in mentions:
        chars[m.start : m.end] = " " * (m.end - m.start)
    blank = "".join(chars)
    # "how fast can it run" asks for speed (not held), not exercise: topics ignore those words
    topics = nlu.detect_topics(nlu.blank_missing(blank))
    subjects = _subjects(mentions)
    filters = nlu.extract_filters(blank, kb, topics) if not subjects else nlu.Filters()
    # filters beyond what topic words imply ("small", "doesn't shed") describe a wish list
    described = bool(
        {k for k in filters.active() if k not in ("apartment", "children", "first_time_owner")}
    )
    wants_list = bool(nlu._RECOMMEND.search(blank))
    asks_for_breeds = wants_list or bool(nlu.DOG_WORDS.search(blank))
    intent = nlu.detect_intent(
        blank,
        len(mentions),
        image is not None,
        topics,
        bool(filters) and asks_for_breeds and (described or wants_list),
    )
    sources: list[str] = []
    facts: list[Fact] = []
    ident = None
    photo_lead = ""
    if image is not None:
        from crossmodal.dogs.recognize import identify

        ident = identify(image)
        label = image if not isinstance(image, Image.Image) else "<image>"
        if ident.is_dog and ident.best:
            sources.append(
                f"image {label}: recognised as {ident.best.breed} (score {ident.best.score:.2f})"
            )
        else:
            sources.append(f"image {label}: not a dog (dog score {ident.dog_score:.2f})")

    if intent == "identify":
        if ident is None:
            text = (
                "请附上一张狗的照片，我才能判断它的品种。"
                if lang == "zh"
                else "Please attach a photo of the dog so I can tell its breed."
            )
            return Answer(text, lang, "identify", [], [], sources)
        text, facts, breeds = _identify_answer(ident, subjects, lang, kb)
        return _finish(text, lang, "identify", breeds, facts, sources, kb)

    # subject from the photo when the question names no breed
    if not subjects and ident is not None and intent not in ("recommend",):
        if not ident.is_dog:
            text, facts, _ = _identify_answer(ident, [], lang, kb)
            return _finish(text, lang, intent, [], facts, sources, kb)
        subjects = [kb.by_wnid(ident.breeds[0].wnid)]
        score = ident.breeds[0].score
        facts.append(Fact(subjects[0].breed, "recognized", round(score, 4)))
        photo_lead = (
            f"照片中的狗{'可能' if score < 0.5 else '看起来'}是{subjects[0].name_zh}"
            f"（置信度{score:.2f}）。"
            if lang == "zh"
            else f"The dog in the photo {'may be' if score < 0.5 else 'looks like'} a "
            f"{subjects[0].name_en} (score {score:.2f})."
        )
        if intent == "search":
            intent = "info"

    if intent == "recommend":
        text, rec_facts, breeds = _recommend(kb, filters, lang)
        return _finish(text, lang, intent, breeds, facts + rec_facts, sources, kb)

    if intent == "search":
        text, s_facts, s_sources = _search(q, lang, kb)
        by_wnid = {b.wnid: b for f in s_facts if (b := kb.find(f.breed)) is not None}
        uniq = list(by_wnid.values())
        return _finish(text, lang, intent, uniq, s_facts, sources + s_sources, kb)

    if not subjects:
        return _unknown_breed(q, lang, kb, this=bool(nlu._THIS.search(blank)))

    if intent == "compare" and len(subjects) >= 2:
        text, c_facts = _compare(subjects[:3], topics, lang)
        return _finish(text, lang, intent, subjects[:3], facts + c_facts, sources, kb)

    missing = nlu.detect_missing(blank)
    if not topics and (missing or _asks_something_specific(blank)):
        # a field the knowledge base does not hold: say so, never answer a different field
        texts = [photo_lead] if photo_lead else []
        for info in subjects[:3]:
            texts.append(_not_held(info, missing, lang) if missing else _unclear(info, lang))
        text = ("" if lang == "zh" else " ").join(texts)
        return _finish(text, lang, "not_known", subjects[:3], facts, sources, kb)

    wanted = topics or ["info"]
    if intent not in wanted:
        wanted = [intent, *[t for t in wanted if t != intent]]
    texts = [photo_lead] if photo_lead else []
    if len(subjects) > 1 and len(mentions) == 1:
        # one name, several breeds ("柯基": Pembroke and Cardigan): one answer naming both
        names = (
            "和".join(s.name_zh for s in subjects)
            if lang == "zh"
            else " and the ".join(s.name_en for s in subjects)
        )
        header = (
            f"“{mentions[0].text}”指两个犬种：{names}。"
            if lang == "zh"
            else f"'{mentions[0].text}' can mean the {names}."
        )
        body, c_facts = _compare(subjects[:3], wanted[:2] if topics else [], lang, header=header)
        texts.append(body)
        facts.extend(c_facts)
    else:
        for info in subjects[:3]:
            for topic in wanted[:2]:
                t, f = topic_answer(info, topic, lang, q)
                texts.append(t)
                facts.extend(f)
    if missing:
        texts.extend(_not_held(info, missing, lang) for info in subjects[:1])
    text = ("" if lang == "zh" else " ").join(texts)
    return _finish(text, lang, intent, subjects[:3], facts, sources, kb)


_QUESTION_CUE = re.compile(
    r"[?？吗呢]|^\s*(how|what|which|when|why|can|could|do|does|is|are|will|should)\b|"
    r"(多少|几|哪|怎么|如何|为什么|是否|能不能|会不会|可不可以)",
    re.I,
)


def _asks_something_specific(blank: str) -> bool:
    """A question about a named breed that is not a general 'tell me about it'."""
    if nlu.GENERAL_INFO.search(blank):
        return False
    return bool(_QUESTION_CUE.search(blank))


def _unclear(info: BreedInfo, lang: str, name: str | None = None) -> str:
    known = _known_topics(info, lang)
    name = name or info.display_name(lang)
    if lang == "zh":
        return (
            f"我不确定你想了解{name}的哪一方面，知识库里可能没有这项信息，我不想乱猜。"
            f"关于{name}，我知道的有：{'、'.join(known)}。"
        )
    return (
        f"I'm not sure which fact about the {name} you are asking for, and it may not be "
        f"in my knowledge base, so I won't guess. What I do know about it: {', '.join(known)}."
    )


def _finish(
    text: str,
    lang: str,
    intent: str,
    breeds: list[BreedInfo],
    facts: list[Fact],
    sources: list[str],
    kb: KnowledgeBase,
) -> Answer:
    line = facts_line(facts, kb, lang)
    full = f"{text}\n{line}" if line else text
    srcs = list(sources)
    if any(f.field not in (*_PHOTO_FIELDS, "passage") for f in facts):
        srcs.append(f"knowledge base: {kb.source or 'breeds.json'}")
    return Answer(
        text=full,
        lang=lang,
        intent=intent,
        breeds=[b.breed for b in breeds],
        facts=facts,
        sources=srcs,
    )


def _maybe_rephrase(q: str, result: Answer, kb: KnowledgeBase, use_llm: bool | None) -> Answer:
    from crossmodal.dogs.llm import LLMConfig, LLMError, rephrase

    if use_llm is False or result.intent == "unsupported_language":
        return result
    config = LLMConfig.from_env()
    if config is None:
        return result
    line = facts_line(result.facts, kb, result.lang)
    draft = result.text.removesuffix(line).rstrip() if line else result.text
    fact_strings = [
        f"{_display(kb, f.breed, result.lang) if f.breed else ''} {f.field}: "
        f"{_value_text(f, result.lang) if f.field != 'passage' else f.value}".strip()
        for f in result.facts
    ] or [draft]
    try:
        text = rephrase(q, draft, fact_strings, result.lang, config)
    except LLMError as exc:
        result.sources.append(f"llm failed ({exc}); rule-based answer kept")
        return result
    result.text = f"{text}\n{line}" if line else text
    result.sources.append(f"llm rephrasing: {config.model} at {config.endpoint}")
    return result
