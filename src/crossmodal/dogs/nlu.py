"""Reading a dog question: its language, the breeds it names, what it asks, what it filters on.

All rule-based (keywords and regular expressions in Chinese and English): the questions this
edition answers fall into a dozen shapes, and rules are predictable, testable and need no model.
Breeds are spotted by looking every word n-gram (English) and every substring (Chinese) up in
`KnowledgeBase.find`, longest first, so "German Shepherd" wins over "Shepherd" and "金毛寻回犬"
over "金毛". The phrase tables of topics, not-held fields and intents are in `nlu_tables.py`.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field

from crossmodal.dogs.knowledge import BreedInfo, KnowledgeBase, normalize_name
from crossmodal.dogs.nlu_tables import (
    GENERAL_INFO,
    IDENTIFY,
    MISSING_FIELDS,
    RECOMMEND,
    THIS_ONE,
    TOPIC_PATTERNS,
    rx,
)

__all__ = [
    "GENERAL_INFO",
    "MISSING_FIELDS",
    "RECOMMEND",
    "THIS_ONE",
    "TOPIC_PATTERNS",
    "Filters",
    "Mention",
    "blank_missing",
    "detect_intent",
    "detect_language",
    "detect_missing",
    "extract_filters",
    "spot_breeds",
    "suggest_breed_names",
]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SCRIPTS: dict[str, re.Pattern[str]] = {
    "ja": re.compile(r"[\u3040-\u30ff]"),  # kana: Japanese, even when kanji are present
    "ko": re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"),
    "ar": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "he": re.compile(r"[\u0590-\u05ff]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "el": re.compile(r"[\u0370-\u03ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
    "th": re.compile(r"[\u0e00-\u0e7f]"),
}
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ0-9'’\-]*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN_MARKERS = _words(
    """a an the is are am was were be do does did can could should would will which what who how
    why when where this that these those it its my i you your me we our they them their with
    without for of to in on and or but not no yes good bad dog dogs puppy breed breeds kids
    children child family apartment flat size big small large weight heavy tall much shed
    shedding groom grooming exercise walk first time owner beginner temperament like about tell
    between compare versus vs better best need needs get any there here from friendly easy hard"""
)
_FOREIGN_MARKERS: dict[str, frozenset[str]] = {
    "fr": _words(
        """le la les un une des est ce cette ces quel quelle quels quelles pour avec sans chien
        chiens chiot race races enfants famille appartement et ou mais pas très bon bonne il
        elle est-ce qu'il qu'elle du au aux mon ma mes son sa ses je tu nous vous combien
        comment pourquoi"""
    ),
    "es": _words(
        """el la los las un una es son este esta estos para con sin perro perros cachorro raza
        razas niños familia apartamento y o pero muy bueno buena qué cuál cuánto cómo por mi mis
        tu su sus"""
    ),
    "de": _words(
        """der die das ein eine ist sind dieser diese dieses für mit ohne hund hunde welpe rasse
        rassen kinder familie wohnung und oder aber nicht sehr gut welche welcher wie warum mein
        meine dein ich du wir ihr"""
    ),
    "it": _words(
        """il lo gli una è sono questo questa per con senza cane cani cucciolo razza bambini
        famiglia appartamento e o ma non molto buono quale quanto come"""
    ),
    "pt": _words(
        """o os uma é são este esta para com sem cão cães cachorro raça crianças família
        apartamento e ou mas não muito bom boa qual quanto como"""
    ),
}
_ACCENTS = re.compile(r"[àâäáãåçéèêëíìîïñóòôöõúùûüÿœæß¿¡]", re.I)

#: English words that are also breed aliases but mostly mean something else in a question
#: ("a golden coat", "a curly coat", "on the border"): they name a breed only when capitalised.
_AMBIGUOUS_EN = _words(
    """chi chin border golden lab curly silky setter leo pom ig bc sammy wheaten springer
    cavalier dane chow siberian norfolk norwich afghan carlin kees rott pyr mops sibe mally
    dandie apso bernese brittany cardigan ess oes sbt iws gsp gsd peke"""
)


def detect_language(text: str, ignore: list[tuple[int, int]] | None = None) -> str:
    """'zh', 'en', or the code of another language ('fr', 'ar', 'ja', ...; 'other' if unknown).

    `ignore` spans (breed names already spotted) are blanked first, so "Bouvier des Flandres"
    does not make an English question French.
    """
    chars = list(text)
    for start, end in ignore or []:
        for i in range(start, end):
            chars[i] = " "
    rest = "".join(chars)
    for code, pattern in _SCRIPTS.items():
        if pattern.search(rest):
            return code
    if _HAN.search(rest):
        return "zh"
    words = [w.lower().strip("'’-") for w in _WORD.findall(rest)]
    if not words:
        # nothing but breed names / punctuation: "Beagle?" reads as English
        return "en" if _WORD.search(text) or not _HAN.search(text) else "zh"
    en = sum(w in _EN_MARKERS for w in words)
    foreign = {code: sum(w in markers for w in words) for code, markers in _FOREIGN_MARKERS.items()}
    best_code, best = max(foreign.items(), key=lambda kv: kv[1])
    accents = len(_ACCENTS.findall(rest))
    if best + (1 if accents else 0) > en:
        return best_code
    if en == 0 and accents:
        return "other"
    if en == 0 and len(words) >= 3:
        # several words, none of them English function words: not English
        return "other"
    return "en"


# ------------------------------------------------------------------ breed spotting
@dataclass
class Mention:
    """A breed name found in the question: where, as written, and every breed it can mean."""

    start: int
    end: int
    text: str
    breeds: list[BreedInfo]


def _singular_forms(phrase: str) -> list[str]:
    """The phrase, then its last word de-pluralised: 'Golden Retrievers', 'huskies'."""
    out = [phrase]
    low = phrase.lower()
    if low.endswith("ies") and len(low) > 4:
        out.append(phrase[:-3] + "y")
    if low.endswith("es") and len(low) > 3:
        out.append(phrase[:-2])
    if low.endswith("s") and not low.endswith("ss") and len(low) > 2:
        out.append(phrase[:-1])
    return out


def _spot_latin(text: str, kb: KnowledgeBase) -> list[Mention]:
    words = [
        (m.start(), m.end(), re.sub(r"['’]s$", "", m.group()))
        for m in re.finditer(r"[A-Za-zÀ-ÖØ-öø-ÿ0-9][A-Za-zÀ-ÖØ-öø-ÿ0-9'’\-.]*", text)
    ]
    words = [(s, e - (1 if text[e - 1] == "." else 0), w.rstrip(".")) for s, e, w in words]
    found: list[Mention] = []
    for n in range(min(6, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            span = words[i : i + n]
            phrase = " ".join(w for _, _, w in span)
            if n == 1 and phrase.lower() in _AMBIGUOUS_EN and not phrase[:1].isupper():
                continue
            if n == 1 and len(normalize_name(phrase)) < 3 and not phrase.isupper():
                continue  # 'IG', 'BC' only as written in capitals
            for form in _singular_forms(phrase):
                if n == 1 and form.lower() in _AMBIGUOUS_EN and not form[:1].isupper():
                    continue
                breeds = kb.find_all(form)
                if breeds:
                    found.append(
                        Mention(span[0][0], span[-1][1], text[span[0][0] : span[-1][1]], breeds)
                    )
                    break
    return found


def _spot_han(text: str, kb: KnowledgeBase) -> list[Mention]:
    found: list[Mention] = []
    n = len(text)
    for length in range(min(12, n), 0, -1):
        for i in range(n - length + 1):
            piece = text[i : i + length]
            if not _HAN.match(piece[0]) or not _HAN.match(piece[-1]):
                continue
            breeds = kb.find_all(piece)
            if breeds:
                found.append(Mention(i, i + length, piece, breeds))
    return found


def spot_breeds(text: str, kb: KnowledgeBase) -> list[Mention]:
    """Non-overlapping breed mentions in text order (longest candidates win overlaps)."""
    candidates = _spot_latin(text, kb) + _spot_han(text, kb)
    candidates.sort(key=lambda m: (-(m.end - m.start), m.start))
    taken: list[Mention] = []
    for m in candidates:
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    return sorted(taken, key=lambda m: m.start)


def suggest_breed_names(text: str, kb: KnowledgeBase, limit: int = 3) -> list[BreedInfo]:
    """Breeds whose name is spelled close to a word or two of the question (typos)."""
    names: dict[str, BreedInfo] = {}
    for info in kb:
        for name in info.names():
            key = normalize_name(name)
            if len(key) >= 4:
                names.setdefault(key, info)
    words = [normalize_name(w) for w in _WORD.findall(text)]
    grams = set(words) | {a + b for a, b in itertools.pairwise(words)}
    han = "".join(_HAN.findall(text))
    grams |= {han[i : i + k] for k in (2, 3, 4) for i in range(len(han) - k + 1)}
    out: list[BreedInfo] = []
    for gram in sorted(grams, key=len, reverse=True):
        if len(gram) < (2 if _HAN.match(gram[:1] or "a") else 5):
            continue
        for key in difflib.get_close_matches(gram, list(names), n=2, cutoff=0.8):
            if names[key] not in out:
                out.append(names[key])
    return out[:limit]


# ------------------------------------------------------------------ intents
def detect_missing(text: str) -> list[tuple[str, str, str]]:
    """Fields the question asks for that the knowledge base does not hold, in text order."""
    hits = []
    for key, en, zh, pattern in MISSING_FIELDS:
        m = pattern.search(text)
        if m:
            hits.append((m.start(), (key, en, zh)))
    return [h for _, h in sorted(hits)]


def blank_missing(text: str) -> str:
    """`text` with the words of not-held fields blanked, so they do not also read as topics."""
    chars = list(text)
    for _, _, _, pattern in MISSING_FIELDS:
        for m in pattern.finditer(text):
            chars[m.start() : m.end()] = " " * (m.end() - m.start())
    return "".join(chars)


def detect_topics(text: str) -> list[str]:
    """Topics asked about, in the order the question raises them."""
    hits = []
    for topic, pattern in TOPIC_PATTERNS.items():
        m = pattern.search(text)
        if m:
            hits.append((m.start(), topic))
    return [t for _, t in sorted(hits)]


def detect_intent(
    text: str, n_breeds: int, has_image: bool, topics: list[str], has_filters: bool
) -> str:
    """One of identify / compare / recommend / <topic> / info / search.

    `has_filters`: the question asks for breeds matching field constraints ("which small dogs
    don't shed"); without a breed, an image or such constraints, it is a search.
    """
    identify = bool(IDENTIFY.search(text))
    # "is it good with kids?" about a photo is a topic question whose subject is the photo
    if identify and not topics and (has_image or THIS_ONE.search(text)) and not has_filters:
        return "identify"
    if n_breeds >= 2:
        return "compare"
    if n_breeds == 0 and not has_image and has_filters:
        return "recommend"
    if topics:
        return topics[0]
    if n_breeds >= 1:
        return "info"
    if has_image:
        return "identify"
    return "search"


# ------------------------------------------------------------------ description filters
@dataclass
class Filters:
    """Field constraints a "which breeds …" question asks for (None = not asked)."""

    sizes: set[str] | None = None
    shedding: set[str] | None = None
    grooming: set[str] | None = None
    exercise: set[str] | None = None
    apartment: set[str] | None = None
    children: set[str] | None = None
    first_time_owner: set[str] | None = None
    temperament_en: list[str] = field(default_factory=list)
    temperament_zh: list[str] = field(default_factory=list)
    origin: str | None = None

    def active(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in (
            "sizes",
            "shedding",
            "grooming",
            "exercise",
            "apartment",
            "children",
            "first_time_owner",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.temperament_en:
            out["temperament_en"] = self.temperament_en
        if self.temperament_zh:
            out["temperament_zh"] = self.temperament_zh
        if self.origin:
            out["origin"] = self.origin
        return out

    def __bool__(self) -> bool:
        return bool(self.active())


_SIZE_RULES: list[tuple[re.Pattern[str], set[str]]] = [
    (rx(r"\btiny\b", r"\btoy\b", r"\bteacup\b", "超小型", "迷你", "袖珍"), {"toy"}),
    (
        rx(
            r"\bsmall\b",
            r"\blittle (dogs?|breeds?|ones?|pups?|puppy)\b",
            r"\bsmall-sized\b",
            "小型",
            "小狗",
            "小型犬",
            "体型小",
            "小一点",
            "小的",
        ),
        {"toy", "small"},
    ),
    (rx(r"\bmedium\b", r"\bmid-?sized?\b", "中型", "中等体型", "体型中等"), {"medium"}),
    (rx(r"\blarge\b", r"\bbig\b", "大型", "大狗", "大型犬", "体型大", "大的"), {"large", "giant"}),
    (rx(r"\bgiant\b", r"\bhuge\b", "巨型", "超大"), {"giant"}),
]
_LOW_SHED = rx(
    r"\b(does ?n[o']?t|do ?n[o']?t|won'?t|doesn't|don't|not|never|rarely|barely)\s+shed",
    r"\bno shedding\b",
    r"\blow[- ]shedding\b",
    r"\blittle shedding\b",
    r"\bnon[- ]shedding\b",
    r"\bhypoallergenic\b",
    r"\bshed(s|ding)? (little|less)\b",
    r"\bminimal shedding\b",
    "不掉毛",
    "掉毛少",
    "少掉毛",
    "不怎么掉毛",
    "不太掉毛",
    "不爱掉毛",
    "低过敏",
    "不脱毛",
    "掉毛不多",
)
_LOW_GROOM = rx(
    r"\blow[- ]maintenance\b",
    r"\beasy to groom\b",
    r"\blittle grooming\b",
    r"\blow grooming\b",
    r"\beasy[- ]care\b",
    "好打理",
    "容易打理",
    "打理简单",
    "不用经常梳",
    "省事",
    "不需要美容",
)
_LOW_EXERCISE = rx(
    r"\blazy\b",
    r"\blow[- ]energy\b",
    r"\blittle exercise\b",
    r"\bnot much exercise\b",
    r"\bdoes ?n[o']?t need (much|a lot of) exercise\b",
    r"\bcouch\b",
    "运动量小",
    "运动少",
    "不需要太多运动",
    "不用天天遛",
    "懒",
    "不爱运动",
    "运动需求低",
)
_HIGH_EXERCISE = rx(
    r"\bactive\b",
    r"\benergetic\b",
    r"\bjog\w*",
    r"\brunning\b",
    r"\bhik\w*",
    r"\bsporty\b",
    r"\bathletic\b",
    r"\brunning partner\b",
    "跑步",
    "运动量大",
    "好动",
    "爬山",
    "精力旺盛",
    "徒步",
    "陪我运动",
    "运动型",
)
#: the question is about dogs at all ("what is the capital of France" is not)
DOG_WORDS = rx(
    r"\bdogs?\b",
    r"\bbreeds?\b",
    r"\bpupp(y|ies)\b",
    r"\bpets?\b",
    r"\bdoggy\b",
    "狗",
    "犬",
    "品种",
    "宠物",
    "汪",
)
_NEGATED = re.compile(r"\b(not|no|n't)\b", re.I)


def extract_filters(text: str, kb: KnowledgeBase, topics: list[str]) -> Filters:
    """Field constraints from a free description ("small dog that doesn't shed, for a flat")."""
    f = Filters()
    for pattern, sizes in _SIZE_RULES:
        if pattern.search(text):
            f.sizes = sizes if f.sizes is None else (f.sizes & sizes) or sizes
    if _LOW_SHED.search(text):
        f.shedding = {"low"}
    if _LOW_GROOM.search(text):
        f.grooming = {"low"}
    if _LOW_EXERCISE.search(text):
        f.exercise = {"low"}
    elif _HIGH_EXERCISE.search(text) and not _NEGATED.search(text):
        f.exercise = {"high"}
    # topic words in a "which breeds" question mean "good at that"
    if "apartment" in topics:
        f.apartment = {"good"}
    if "children" in topics:
        f.children = {"good"}
    if "first_time" in topics:
        f.first_time_owner = {"good"}
    low = text.lower()
    vocab_en = {t for b in kb for t in b.temperament_en}
    f.temperament_en = sorted(
        t
        for t in vocab_en
        if re.search(rf"\b{re.escape(t.lower())}\b", low)
        and t.lower() not in {"active", "athletic", "energetic"}  # counted as exercise above
    )
    vocab_zh = {t for b in kb for t in b.temperament_zh}
    f.temperament_zh = sorted(
        t for t in vocab_zh if len(t) >= 2 and t in text and t not in {"活泼好动"}
    )
    origins_en = {
        part.strip(): part.strip()
        for b in kb
        if b.origin_en
        for part in re.split(r"[(),;]| and ", b.origin_en)
        if len(part.strip()) >= 4
    }
    for name in sorted(origins_en, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name.lower())}\b", low) or re.search(
            rf"\b{re.escape(_DEMONYMS.get(name, '#none#').lower())}\b", low
        ):
            f.origin = name
            break
    if f.origin is None:
        zh_origins = {
            part
            for b in kb
            if b.origin_zh
            for part in re.split(r"[（）()，、；和]", b.origin_zh)
            if len(part) >= 2
        }
        for name in sorted(zh_origins, key=len, reverse=True):
            if name in text:
                f.origin = name
                break
    return f


#: adjectives for the countries the knowledge base names, for "German breeds"
_DEMONYMS = {
    "Germany": "German",
    "France": "French",
    "Ireland": "Irish",
    "Switzerland": "Swiss",
    "Belgium": "Belgian",
    "China": "Chinese",
    "Japan": "Japanese",
    "Hungary": "Hungarian",
    "Mexico": "Mexican",
    "Russia": "Russian",
    "Italy": "Italian",
    "Norway": "Norwegian",
    "Australia": "Australian",
    "Scotland": "Scottish",
    "England": "English",
    "Wales": "Welsh",
    "Afghanistan": "Afghan",
    "Tibet": "Tibetan",
    "Spain": "Spanish",
    "Canada": "Canadian",
}
