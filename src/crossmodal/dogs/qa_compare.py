"""Answers about several breeds: comparing them field by field, and recommending breeds
that match what the question asks for."""

from __future__ import annotations

from typing import Any

from crossmodal.dogs import nlu
from crossmodal.dogs.knowledge import BreedInfo, KnowledgeBase
from crossmodal.dogs.phrases import LABELS, SIZE_NAMES, SUITABILITY, VALUE_WORDS
from crossmodal.dogs.qa_text import (
    LEVEL_RANK,
    SIZE_RANK,
    SUIT_RANK,
    Fact,
    value_text,
)

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


def compare_answer(
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
            cells.append(value_text(fact, lang))
        label = LABELS[lang][f]
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
        ra, rb = SUIT_RANK[va], SUIT_RANK[vb]
        label = LABELS[lang][f]
        if ra == rb:
            return (
                f"两者在{label}方面评价相同（{VALUE_WORDS['zh'][va]}）。"
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
        ra, rb = LEVEL_RANK[va], LEVEL_RANK[vb]
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
        ra, rb = SIZE_RANK[va], SIZE_RANK[vb]
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
        sizes = sorted(filters.sizes, key=SIZE_RANK.get)  # type: ignore[arg-type]
        out.append(
            f"size {'/'.join(sizes)}"
            if en
            else "体型" + "/".join(SIZE_NAMES["zh"][s] for s in sizes)
        )
    for name in ("shedding", "grooming", "exercise"):
        value = getattr(filters, name)
        if value:
            v = next(iter(value))
            out.append(f"{name} {v}" if en else f"{LABELS['zh'][name]}{VALUE_WORDS['zh'][v]}")
    for name in ("apartment", "children", "first_time_owner"):
        if getattr(filters, name):
            out.append(
                SUITABILITY["en"][name]["good"].removeprefix("is ")
                if en
                else SUITABILITY["zh"][name]["good"]
            )
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
        value = info.in_language("origin", lang)
        check("origin", value, filters.origin in origin)
    return met, asked, facts


def recommend_answer(
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
