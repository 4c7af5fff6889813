"""The bilingual (English / simplified Chinese) breed knowledge base of the dog edition.

`breeds.json`, next to this module, holds one record per Stanford Dogs class (120, in
`classes.tsv` order), written by hand. Fields we were not sure of are `null` / empty rather
than guessed. `KnowledgeBase.load()` validates the file with the pydantic models below and
reports the first problem as `DatasetError` naming the file, the breed and the field.

Besides lookups (`by_wnid`, `find`), `passages(lang)` turns every record into short natural
sentences per topic; those are the texts that text->text dog search retrieves.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossmodal.dogs.phrases import EXERCISE, GROOMING, SHEDDING, SIZE_NAMES, SUITABILITY
from crossmodal.errors import ConfigError, DatasetError

__all__ = [
    "DEFAULT_PATH",
    "LANGS",
    "SCHEMA_VERSION",
    "BreedInfo",
    "KnowledgeBase",
    "normalize_name",
]

SCHEMA_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().with_name("breeds.json")
LANGS = ("en", "zh")

Group = Literal[
    "toy", "hound", "terrier", "sporting", "non-sporting", "working", "herding", "wild canid"
]
Size = Literal["toy", "small", "medium", "large", "giant"]
Level = Literal["low", "moderate", "high"]
Suitability = Literal["good", "ok", "poor"]

NonEmpty = Annotated[str, Field(min_length=1)]
Range = tuple[float, float]

#: common health problems, stored as codes so that both languages name the same condition
HEALTH: dict[str, tuple[str, str]] = {
    "hip": ("hip dysplasia", "髋关节发育不良"),
    "elbow": ("elbow dysplasia", "肘关节发育不良"),
    "patella": ("luxating kneecaps", "髌骨脱位"),
    "eyes": (
        "inherited eye disease (e.g. progressive retinal atrophy)",
        "遗传性眼病（如进行性视网膜萎缩）",
    ),
    "cataract": ("cataracts", "白内障"),
    "entropion": ("entropion (in-rolling eyelids)", "眼睑内翻"),
    "bloat": ("bloat (gastric dilatation-volvulus)", "胃扩张扭转"),
    "heart": ("heart disease", "心脏病"),
    "brachy": (
        "breathing problems of a short muzzle (BOAS)",
        "短鼻导致的呼吸问题（短头气道综合征）",
    ),
    "ivdd": ("intervertebral disc disease", "椎间盘疾病"),
    "skin": ("skin allergies and skin disease", "皮肤过敏和皮肤病"),
    "ears": ("ear infections", "耳部感染"),
    "cancer": ("cancer", "癌症"),
    "osteosarcoma": ("bone cancer (osteosarcoma)", "骨肉瘤"),
    "dental": ("dental disease", "牙齿疾病"),
    "deaf": ("deafness", "耳聋"),
    "thyroid": ("hypothyroidism", "甲状腺功能减退"),
    "epilepsy": ("epilepsy", "癫痫"),
    "trachea": ("collapsing trachea", "气管塌陷"),
    "bleeding": ("von Willebrand disease (a bleeding disorder)", "血管性血友病（凝血障碍）"),
    "copper": ("copper storage liver disease", "铜累积性肝病"),
    "shunt": ("liver shunt", "肝门静脉分流"),
    "kidney": ("kidney disease", "肾病"),
    "dm": ("degenerative myelopathy", "退行性脊髓病"),
    "obesity": ("a tendency to obesity", "容易肥胖"),
    "syringo": ("syringomyelia", "脊髓空洞症"),
}
if TYPE_CHECKING:
    HealthCode = str
else:  # pydantic checks the codes at run time; a type checker cannot read a computed Literal
    HealthCode = Literal[tuple(HEALTH)]


class BreedInfo(BaseModel):
    """One breed (or, for three classes, one wild canid species), in English and Chinese."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    wnid: Annotated[str, Field(pattern=r"^n\d{8}$")]
    breed: NonEmpty  # the Stanford Dogs / ImageNet class name, e.g. "golden_retriever"
    name_en: NonEmpty
    name_zh: NonEmpty
    aliases_en: list[NonEmpty] = Field(default_factory=list)
    aliases_zh: list[NonEmpty] = Field(default_factory=list)
    group: Group | None = None
    size: Size | None = None
    weight_kg: Range | None = None
    height_cm: Range | None = None
    coat_en: str | None = None
    coat_zh: str | None = None
    colors_en: list[NonEmpty] = Field(default_factory=list)
    colors_zh: list[NonEmpty] = Field(default_factory=list)
    temperament_en: list[NonEmpty] = Field(default_factory=list)
    temperament_zh: list[NonEmpty] = Field(default_factory=list)
    exercise: Level | None = None
    grooming: Level | None = None
    shedding: Level | None = None
    apartment: Suitability | None = None
    children: Suitability | None = None
    first_time_owner: Suitability | None = None
    description_en: NonEmpty
    description_zh: NonEmpty
    origin_en: str | None = None
    origin_zh: str | None = None
    # care and living-together fields (added for the questions people ask most; null = unsure)
    lifespan_years: Range | None = None
    trainability: Level | None = None  # how easy to train: high = easy
    barking: Level | None = None  # how much it barks (or howls)
    health: list[HealthCode] = Field(default_factory=list)  # common problems; [] = not known
    heat_tolerance: Level | None = None
    cold_tolerance: Level | None = None
    cats: Suitability | None = None  # living with cats
    other_dogs: Suitability | None = None  # living with other dogs
    alone: Level | None = None  # tolerance of time alone: low = prone to separation distress

    @field_validator("weight_kg", "height_cm", "lifespan_years")
    @classmethod
    def _check_range(cls, value: Range | None) -> Range | None:
        if value is None:
            return value
        low, high = value
        if low <= 0 or high <= 0:
            raise ValueError(f"range values must be positive, got [{low:g}, {high:g}]")
        if low > high:
            raise ValueError(f"min {low:g} is greater than max {high:g}")
        return value

    @field_validator("temperament_en", "temperament_zh")
    @classmethod
    def _check_temperament(cls, value: list[str]) -> list[str]:
        if value and not 3 <= len(value) <= 5:
            raise ValueError(f"give 3 to 5 adjectives (or none), got {len(value)}")
        return value

    @field_validator("coat_en", "coat_zh", "origin_en", "origin_zh")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def is_wild(self) -> bool:
        """True for the wild canids among the classes (dingo, dhole, African wild dog)."""
        return self.group == "wild canid"

    def display_name(self, lang: str = "en") -> str:
        """The name to show a user: `Golden Retriever` / `金毛寻回犬`."""
        return self.name_en if _check_lang(lang) == "en" else self.name_zh

    def in_language(self, field_name: str, lang: str) -> Any:
        """A field held once per language (coat, colors, origin, temperament, description)
        in `lang`: `coat_en` or `coat_zh`."""
        return getattr(self, f"{field_name}_{_check_lang(lang)}")

    def aliases(self, lang: str = "en") -> list[str]:
        return list(self.aliases_en if _check_lang(lang) == "en" else self.aliases_zh)

    def names(self) -> list[str]:
        """Every name this breed answers to, both languages, class name first."""
        return [self.breed, self.name_en, self.name_zh, *self.aliases_en, *self.aliases_zh]


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ConfigError(f"unknown language {lang!r}; expected one of {', '.join(LANGS)}")
    return lang


_IGNORED = re.compile(r"[\s_\-'’‘.·・,，()（）]+")


def normalize_name(name: str) -> str:
    """Key used by `find`: case, accents, spaces, underscores, hyphens and dots do not matter.

    `Golden_retriever`, `golden retriever` and `GOLDEN-RETRIEVER` all give `goldenretriever`;
    `Brabançon` matches `Brabancon`; `梗` (the common web spelling of terrier) matches `㹴`.
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFKC", text).casefold().replace("梗", "㹴")
    return _IGNORED.sub("", text)


class _BreedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int
    notes: list[str] = Field(default_factory=list)  # sources and conventions, for people
    breeds: list[dict[str, Any]]


class KnowledgeBase:
    """All breeds of `breeds.json`, with lookups by WordNet id and by any name."""

    def __init__(self, breeds: list[BreedInfo], source: Path | None = None) -> None:
        self.breeds: list[BreedInfo] = list(breeds)
        self.source = source
        self._by_wnid: dict[str, BreedInfo] = {}
        self._by_name: dict[str, list[BreedInfo]] = {}
        for info in self.breeds:
            if info.wnid in self._by_wnid:
                raise DatasetError(f"{self._where()}: wnid {info.wnid} appears twice")
            self._by_wnid[info.wnid] = info
            for name in info.names():
                bucket = self._by_name.setdefault(normalize_name(name), [])
                if info not in bucket:
                    bucket.append(info)

    def _where(self) -> str:
        return str(self.source) if self.source is not None else "knowledge base"

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> KnowledgeBase:
        """Read and validate a breeds file (default: the packaged `breeds.json`)."""
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(f"breed knowledge file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: cannot read breed knowledge file: {exc}") from None
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None

        try:
            top = _BreedsFile.model_validate(raw)
        except ValidationError as exc:
            raise DatasetError(f"{path}: {_first_error(exc)}") from None
        if top.schema_version != SCHEMA_VERSION:
            raise DatasetError(
                f"{path}: schema_version {top.schema_version} is not supported "
                f"(expected {SCHEMA_VERSION})"
            )

        breeds: list[BreedInfo] = []
        for i, record in enumerate(top.breeds):
            try:
                breeds.append(BreedInfo.model_validate(record))
            except ValidationError as exc:
                label = record.get("breed") or record.get("name_en") or record.get("wnid") or "?"
                raise DatasetError(f"{path}: breeds[{i}] ({label}): {_first_error(exc)}") from None
        return cls(breeds, source=path)

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.breeds)

    def __iter__(self) -> Iterator[BreedInfo]:
        return iter(self.breeds)

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._by_wnid

    @property
    def wnids(self) -> list[str]:
        return [info.wnid for info in self.breeds]

    def by_wnid(self, wnid: str) -> BreedInfo:
        """The breed with this WordNet id; `KeyError` naming it if there is none."""
        try:
            return self._by_wnid[wnid]
        except KeyError:
            raise KeyError(f"no breed with wnid {wnid!r} in {self._where()}") from None

    def find(self, name: str) -> BreedInfo | None:
        """The breed called `name` in English or Chinese (name, alias or class name), or None.

        Matching ignores case, accents, spaces, underscores and hyphens. A name shared by two
        breeds ("Corgi", "柯基") resolves to the first in file order; `find_all` lists all.
        """
        matches = self.find_all(name)
        return matches[0] if matches else None

    def find_all(self, name: str) -> list[BreedInfo]:
        """Every breed answering to `name`, in file order (usually zero or one)."""
        key = normalize_name(name)
        if not key:
            return []
        if key in self._by_wnid:  # a wnid is lower case and has nothing to strip
            return [self._by_wnid[key]]
        return list(self._by_name.get(key, []))

    # ------------------------------------------------------------------ passages
    def passages(self, lang: str = "en") -> list[tuple[str, str]]:
        """`(wnid, sentence)` pairs: per breed, one passage per topic that has facts.

        Topics: description, temperament, exercise/grooming, suitability, size/appearance.
        Every passage names the breed, so it can be retrieved on its own.
        """
        render = _passages_en if _check_lang(lang) == "en" else _passages_zh
        out: list[tuple[str, str]] = []
        for info in self.breeds:
            out.extend((info.wnid, text) for text in render(info) if text)
        return out


def _first_error(exc: ValidationError) -> str:
    """`weight_kg: min 40 is greater than max 30` from pydantic's first error."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    extra = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{loc}: {msg}{extra}"


# ---------------------------------------------------------------------- English sentences
# (the wording tables live in crossmodal.dogs.phrases, one entry per language)
_EXERCISE_EN, _GROOM_EN, _SHED_EN = EXERCISE["en"], GROOMING["en"], SHEDDING["en"]
_SUIT_EN = SUITABILITY["en"]


def _join_en(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _range(r: tuple[float, float], unit: str, sep: str = "-") -> str:
    low, high = (f"{v:g}" for v in r)
    return f"{low} {unit}" if low == high else f"{low}{sep}{high} {unit}"


def _passages_en(b: BreedInfo) -> list[str]:
    name = b.name_en
    the = f"The {name}"
    aka = [a for a in b.aliases_en if normalize_name(a) != normalize_name(name)]
    out = [
        f"{name}" + (f" (also called {', '.join(aka)})" if aka else "") + f": {b.description_en}"
    ]

    if b.temperament_en:
        out.append(f"{the} is {_join_en(b.temperament_en)}.")

    care = []
    if b.exercise:
        care.append(_EXERCISE_EN[b.exercise])
    if b.grooming:
        care.append(_GROOM_EN[b.grooming])
    if b.shedding:
        care.append(_SHED_EN[b.shedding])
    if care:
        out.append(f"{the} {_join_en(care)}.")

    if b.is_wild:
        out.append(f"{the} is a wild animal, not a pet, and is unsuitable for any home.")
    else:
        suit = [
            _SUIT_EN[field][value] for field in _SUIT_EN if (value := getattr(b, field)) is not None
        ]
        if suit:
            out.append(f"{the} {_join_en(suit)}.")

    facts = []
    if b.size:
        facts.append(f"{the} is a {b.size} {'wild canid' if b.is_wild else 'dog'}.")
    measures = []
    if b.weight_kg:
        measures.append(f"weighs {_range(b.weight_kg, 'kg')}")
    if b.height_cm:
        measures.append(f"stands {_range(b.height_cm, 'cm')} at the shoulder")
    if measures:
        facts.append(f"{'It' if facts else the} {_join_en(measures)}.")
    if b.origin_en:
        facts.append(f"Origin: {b.origin_en}.")
    if b.coat_en:
        facts.append(f"Coat: {b.coat_en}.")
    if b.colors_en:
        facts.append(f"Colours: {_join_en(b.colors_en)}.")
    if facts:
        text = " ".join(facts)
        out.append(text if text.startswith(the) else f"{name}. {text}")
    return out


# ---------------------------------------------------------------------- Chinese sentences
_EXERCISE_ZH, _GROOM_ZH, _SHED_ZH = EXERCISE["zh"], GROOMING["zh"], SHEDDING["zh"]
_SUIT_ZH, _SIZE_ZH = SUITABILITY["zh"], SIZE_NAMES["zh"]


def _range_zh(r: tuple[float, float], unit: str) -> str:
    low, high = (f"{v:g}" for v in r)
    return f"{low}{unit}" if low == high else f"{low}至{high}{unit}"


def _passages_zh(b: BreedInfo) -> list[str]:
    name = b.name_zh
    aka = [a for a in b.aliases_zh if normalize_name(a) != normalize_name(name)]
    out = [f"{name}" + (f"（又称{'、'.join(aka)}）" if aka else "") + f"：{b.description_zh}"]

    if b.temperament_zh:
        out.append(f"{name}的性格：{'、'.join(b.temperament_zh)}。")

    care = []
    if b.exercise:
        care.append(_EXERCISE_ZH[b.exercise])
    if b.grooming:
        care.append(_GROOM_ZH[b.grooming])
    if b.shedding:
        care.append(_SHED_ZH[b.shedding])
    if care:
        out.append(f"{name}{'，'.join(care)}。")

    if b.is_wild:
        out.append(f"{name}是野生动物，不是宠物，不适合任何家庭饲养。")
    else:
        suit = [
            _SUIT_ZH[field][value] for field in _SUIT_ZH if (value := getattr(b, field)) is not None
        ]
        if suit:
            out.append(f"{name}{'，'.join(suit)}。")

    first = []
    if b.origin_zh or b.size:
        kind = "野生犬科动物" if b.is_wild else "犬"
        first.append(
            name
            + (f"是来自{b.origin_zh}的" if b.origin_zh else "是")
            + (_SIZE_ZH[b.size] if b.size else "")
            + kind
        )
    if b.weight_kg:
        first.append(f"体重{_range_zh(b.weight_kg, '公斤')}")
    if b.height_cm:
        first.append(f"肩高{_range_zh(b.height_cm, '厘米')}")
    facts = []
    if first:
        text = "，".join(first)
        facts.append(text if text.startswith(name) else f"{name}{text}")
    if b.coat_zh:
        facts.append(f"被毛特点：{b.coat_zh}")
    if b.colors_zh:
        facts.append(f"毛色有{'、'.join(b.colors_zh)}")
    if facts:
        text = "。".join(facts) + "。"
        out.append(text if text.startswith(name) else f"{name}：{text}")
    return out
