"""Answers about one breed, one topic at a time (size, suitability, care, health, ...)."""

from __future__ import annotations

import re

from crossmodal.dogs.knowledge import BreedInfo
from crossmodal.dogs.phrases import (
    CARE,
    CHILD_CAVEATS,
    EXERCISE,
    GROOMING,
    KNOWN_TOPICS,
    LABELS,
    NOT_IN_KB,
    NOVICE_CAVEATS,
    SHEDDING,
    SIZE_NAMES,
    SUIT_PREFIX,
    SUITABILITY,
    WHAT_EN,
    WILD_NOTE,
)
from crossmodal.dogs.qa_text import (
    CARE_FIELD,
    SUIT_RANK,
    TOPIC_FIELD,
    Fact,
    breed_name,
    capitalise,
    health_names,
    range_text,
    say,
    years_text,
)


# ---------------------------------------------------------------------- topic answers
def _suitability(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    value = getattr(info, field_name)
    facts = [Fact(info.breed, field_name, value)]
    what = LABELS[lang][field_name]
    if value is None:
        what = WHAT_EN.get(what, what) if lang == "en" else what
        return NOT_IN_KB[lang].format(name=breed_name(info, lang, the=False), what=what), facts
    says = SUITABILITY[lang][field_name][value]
    if lang == "zh":
        text = f"{SUIT_PREFIX['zh'][value]}{info.name_zh}{says}。"
        if info.is_wild:
            text += f"注意：{info.name_zh}是野生动物，不是宠物。"
    else:
        text = f"{SUIT_PREFIX['en'][value]} {capitalise(breed_name(info, lang))} {says}."
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
        parts.append(
            f"{n}是{SIZE_NAMES['zh'][info.size]}犬" if info.size else f"知识库中没有{n}的体型分类"
        )
        parts.append(
            f"体重{range_text(info.weight_kg, 'kg', 'zh')}"
            if info.weight_kg
            else "知识库中没有它的体重数据"
        )
        parts.append(
            f"肩高{range_text(info.height_cm, 'cm', 'zh')}"
            if info.height_cm
            else "知识库中没有它的肩高数据"
        )
        return "，".join(parts) + "。", facts
    n = breed_name(info, "en")
    first = (
        f"{capitalise(n)} is a {info.size} {'wild canid' if info.is_wild else 'dog'}"
        if info.size
        else f"{capitalise(n)}'s size class is not in my knowledge base"
    )
    bits = []
    bits.append(
        f"it weighs {range_text(info.weight_kg, 'kg', 'en')}"
        if info.weight_kg
        else "its weight is not in my knowledge base"
    )
    bits.append(
        f"stands {range_text(info.height_cm, 'cm', 'en')} at the shoulder"
        if info.height_cm
        else "its height is not in my knowledge base"
    )
    return f"{first}: {bits[0]} and {bits[1]}.", facts


def _level(info: BreedInfo, field_name: str, lang: str) -> tuple[str, Fact]:
    value = getattr(info, field_name)
    fact = Fact(info.breed, field_name, value)
    what = LABELS[lang][field_name]
    if value is None:
        what = WHAT_EN.get(what, what) if lang == "en" else what
        return NOT_IN_KB[lang].format(name=breed_name(info, lang, the=False), what=what), fact
    table = {"exercise": EXERCISE, "grooming": GROOMING, "shedding": SHEDDING}[field_name][lang]
    return say("statement", lang, info, says=table[value]), fact


def _grooming(info: BreedInfo, lang: str, question: str) -> tuple[str, list[Fact]]:
    shed_first = bool(re.search(r"shed|moult|molt|hypoallergenic|掉毛|脱毛|换毛|过敏", question))
    order = ["shedding", "grooming"] if shed_first else ["grooming", "shedding"]
    texts, facts = [], []
    for f in order:
        t, fact = _level(info, f, lang)
        texts.append(t)
        facts.append(fact)
    coat = info.in_language("coat", lang)
    facts.append(Fact(info.breed, "coat", coat))
    if coat:
        texts.append(f"被毛：{coat}。" if lang == "zh" else f"Coat: {coat}.")
    return ("" if lang == "zh" else " ").join(texts), facts


def _temperament(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    words = info.in_language("temperament", lang)
    fact = Fact(info.breed, "temperament", list(words))
    if not words:
        return NOT_IN_KB[lang].format(
            name=breed_name(info, lang, the=False), what=LABELS[lang]["temperament"]
        ), [fact]
    if lang == "zh":
        return f"{info.name_zh}的性格：{'、'.join(words)}。", [fact]
    return f"{capitalise(breed_name(info, 'en'))} is {_join_en(words)}.", [fact]


def _origin(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    value = info.in_language("origin", lang)
    fact = Fact(info.breed, "origin", value)
    if not value:
        return NOT_IN_KB[lang].format(
            name=breed_name(info, lang, the=False), what=LABELS[lang]["origin"]
        ), [fact]
    return say("origin", lang, info, value=value), [fact]


def _appearance(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    coat = info.in_language("coat", lang)
    colors = info.in_language("colors", lang)
    facts = [Fact(info.breed, "coat", coat), Fact(info.breed, "colors", list(colors))]
    parts = []
    if lang == "zh":
        parts.append(
            f"{info.name_zh}的被毛：{coat}" if coat else f"知识库中没有{info.name_zh}的被毛信息"
        )
        parts.append(f"毛色有{'、'.join(colors)}" if colors else "知识库中没有它的毛色信息")
        return "；".join(parts) + "。", facts
    n = capitalise(breed_name(info, "en"))
    parts.append(f"{n} has a {coat}" if coat else f"{n}'s coat is not in my knowledge base")
    parts.append(
        f"its colours include {_join_en(colors)}"
        if colors
        else "its colours are not in my knowledge base"
    )
    return "; ".join(parts) + ".", facts


# ---------------------------------------------------------------------- care topics


def _not_known(info: BreedInfo, field_name: str, lang: str) -> str:
    what = LABELS[lang][field_name]
    text = NOT_IN_KB[lang].format(name=breed_name(info, lang, the=False), what=what)
    if info.is_wild:
        text += WILD_NOTE[lang].format(name=info.display_name(lang))
    return text


def _care(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    value = getattr(info, field_name)
    facts = [Fact(info.breed, field_name, value)]
    if value is None:
        return _not_known(info, field_name, lang), facts
    return say("statement", lang, info, says=CARE[lang][field_name][value]), facts


def _lifespan(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    facts = [Fact(info.breed, "lifespan_years", info.lifespan_years)]
    if info.lifespan_years is None:
        return _not_known(info, "lifespan_years", lang), facts
    years = years_text(info.lifespan_years, lang)
    return say("lifespan", lang, info, years=years), facts


def _health(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    facts = [Fact(info.breed, "health", list(info.health))]
    if not info.health:
        return _not_known(info, "health", lang), facts
    names = health_names(list(info.health), lang)
    if lang == "zh":
        return (
            f"{info.name_zh}较常见的健康问题有：{names}。这些是该犬种常被报告的问题，不代表每只狗"
            "都会患病；选购时可以询问父母犬的健康筛查。",
            facts,
        )
    return (
        f"Health problems seen most often in {breed_name(info, 'en')}: {names}. These are what the "
        "breed is known for, not a diagnosis of any one dog; ask breeders for the parents' "
        "health screening.",
        facts,
    )


#: what makes a breed harder for a novice: (field, value, English, Chinese)


def _nuance(info: BreedInfo, field_name: str, lang: str) -> tuple[str, list[Fact]]:
    """Why a breed is or is not easy for a novice / a family: the fields that make it so."""
    if info.is_wild or field_name not in ("first_time_owner", "children"):
        return "", []
    table = NOVICE_CAVEATS if field_name == "first_time_owner" else CHILD_CAVEATS
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
        table = SUITABILITY[lang].get(f) or CARE[lang][f]
        parts.append(table[value].removeprefix("is ") if lang == "en" else table[value])
    ranks = [SUIT_RANK.get(v, 1) for v in (info.apartment, info.first_time_owner) if v]
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


def not_held(
    info: BreedInfo, missing: list[tuple[str, str, str]], lang: str, name: str | None = None
) -> str:
    """An honest 'I don't know X for this breed', and what is known instead."""
    known = known_topics(info, lang)
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


def known_topics(info: BreedInfo, lang: str) -> list[str]:
    return [
        (zh if lang == "zh" else en)
        for attr, en, zh in KNOWN_TOPICS
        if getattr(info, attr) not in (None, [], ())
    ]


def _info(info: BreedInfo, lang: str) -> tuple[str, list[Fact]]:
    desc = info.in_language("description", lang)
    facts = [
        Fact(info.breed, "description", desc),
        Fact(info.breed, "group", info.group),
        Fact(info.breed, "size", info.size),
        Fact(info.breed, "origin", info.in_language("origin", lang)),
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
        return _suitability(info, TOPIC_FIELD.get(topic, topic), lang)
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
    if topic in CARE_FIELD:
        return _care(info, CARE_FIELD[topic], lang)
    return _info(info, lang)
