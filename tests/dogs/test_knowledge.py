"""The bilingual breed knowledge base: packaged file, lookups, passages, error reporting."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from crossmodal.dogs.knowledge import DEFAULT_PATH, BreedInfo, KnowledgeBase, normalize_name
from crossmodal.errors import ConfigError, DatasetError

STANFORD_DOGS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stanford_dogs"
CJK = re.compile(r"[\u3400-\u9fff]")
WILD = {"dingo", "dhole", "African_hunting_dog"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def _raw() -> dict:
    return json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


def test_packaged_file_validates(kb: KnowledgeBase) -> None:
    assert DEFAULT_PATH.is_file()
    assert len(kb) == 120
    assert all(isinstance(b, BreedInfo) for b in kb.breeds)
    assert kb.source == DEFAULT_PATH


def test_120_unique_wnids(kb: KnowledgeBase) -> None:
    wnids = kb.wnids
    assert len(set(wnids)) == 120
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert len({b.breed for b in kb.breeds}) == 120
    assert kb.by_wnid("n02085620").breed == "Chihuahua"
    with pytest.raises(KeyError, match="n00000000"):
        kb.by_wnid("n00000000")


def test_matches_stanford_dogs_classes(kb: KnowledgeBase) -> None:
    classes = STANFORD_DOGS / "classes.tsv"
    if not classes.is_file():
        pytest.skip(f"../shared/data not found: no Stanford Dogs classes.tsv at {classes}")
    with classes.open(encoding="utf-8", newline="") as f:
        rows = [(r["wnid"], r["breed"]) for r in csv.DictReader(f, delimiter="\t")]
    assert len(rows) == 120
    assert [(b.wnid, b.breed) for b in kb.breeds] == rows  # same set, same order


def test_every_breed_is_bilingual(kb: KnowledgeBase) -> None:
    for b in kb.breeds:
        assert b.name_en.strip() and b.name_zh.strip(), b.breed
        assert CJK.search(b.name_zh), f"{b.breed}: name_zh {b.name_zh!r} is not Chinese"
        assert len(b.description_en) > 80, b.breed
        assert CJK.search(b.description_zh) and len(b.description_zh) > 40, b.breed
        assert not CJK.search(b.description_en), b.breed
        # the two languages describe the same lists, item by item
        assert len(b.colors_en) == len(b.colors_zh), b.breed
        assert len(b.temperament_en) == len(b.temperament_zh), b.breed
        assert 3 <= len(b.temperament_en) <= 5, b.breed
        assert (b.coat_en is None) == (b.coat_zh is None), b.breed
        assert (b.origin_en is None) == (b.origin_zh is None), b.breed
        for alias in b.aliases_zh:
            assert CJK.search(alias), f"{b.breed}: zh alias {alias!r}"


def test_wild_canids_are_marked_unsuitable(kb: KnowledgeBase) -> None:
    for b in kb.breeds:
        assert b.is_wild == (b.breed in WILD), b.breed
        if b.is_wild:
            assert (b.apartment, b.children, b.first_time_owner) == ("poor", "poor", "poor")
            assert "pet" in b.description_en and "宠物" in b.description_zh


def test_ranges_are_plausible(kb: KnowledgeBase) -> None:
    for b in kb.breeds:
        if b.weight_kg:
            assert 1 <= b.weight_kg[0] <= b.weight_kg[1] <= 100, b.breed
        if b.height_cm:
            assert 10 <= b.height_cm[0] <= b.height_cm[1] <= 100, b.breed
    chihuahua, dane = kb.find("chihuahua"), kb.find("great dane")
    assert chihuahua.size == "toy" and dane.size == "giant"
    assert chihuahua.weight_kg[1] < dane.weight_kg[0]


@pytest.mark.parametrize(
    ("query", "breed"),
    [
        ("golden retriever", "golden_retriever"),
        ("Golden_retriever", "golden_retriever"),
        ("GOLDEN-RETRIEVER", "golden_retriever"),
        ("金毛", "golden_retriever"),
        ("金毛寻回犬", "golden_retriever"),
        ("Labrador", "Labrador_retriever"),
        ("拉布拉多", "Labrador_retriever"),
        ("German Shepherd", "German_shepherd"),
        ("Alsatian", "German_shepherd"),
        ("德牧", "German_shepherd"),
        ("黑背", "German_shepherd"),
        ("哈士奇", "Siberian_husky"),
        ("husky", "Siberian_husky"),
        ("柯基", "Pembroke"),
        ("Cardigan Welsh Corgi", "Cardigan"),
        ("博美", "Pomeranian"),
        ("泰迪", "toy_poodle"),
        ("萨摩耶", "Samoyed"),
        ("阿拉斯加雪橇犬", "malamute"),
        ("比格犬", "beagle"),
        ("吉娃娃", "Chihuahua"),
        ("西施犬", "Shih-Tzu"),
        ("shih tzu", "Shih-Tzu"),
        ("松狮犬", "chow"),
        ("边境牧羊犬", "Border_collie"),
        ("边牧", "Border_collie"),
        ("Westie", "West_Highland_white_terrier"),
        ("西高地白梗", "West_Highland_white_terrier"),  # 梗 is the everyday spelling of 㹴
        ("Brabancon Griffon", "Brabancon_griffon"),
        ("Brabançon Griffon", "Brabancon_griffon"),
        ("St. Bernard", "Saint_Bernard"),
        ("Xolo", "Mexican_hairless"),
        ("豺", "dhole"),
        ("African painted dog", "African_hunting_dog"),
        ("n02085620", "Chihuahua"),
    ],
)
def test_find(kb: KnowledgeBase, query: str, breed: str) -> None:
    found = kb.find(query)
    assert found is not None, query
    assert found.breed == breed


def test_find_unknown_and_ambiguous(kb: KnowledgeBase) -> None:
    assert kb.find("unicorn hound") is None
    assert kb.find("") is None
    assert kb.find("  _- ") is None
    corgis = {b.breed for b in kb.find_all("corgi")}
    assert corgis == {"Pembroke", "Cardigan"}
    assert normalize_name("Golden_Retriever") == normalize_name("golden retriever")


def test_display_name(kb: KnowledgeBase) -> None:
    gsd = kb.by_wnid("n02106662")
    assert gsd.display_name("en") == "German Shepherd"
    assert gsd.display_name("zh") == "德国牧羊犬"
    assert gsd.display_name() == "German Shepherd"
    with pytest.raises(ConfigError):
        gsd.display_name("fr")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_passages(kb: KnowledgeBase, lang: str) -> None:
    passages = kb.passages(lang)
    assert passages
    wnids = {w for w, _ in passages}
    assert wnids == set(kb.wnids)  # every breed has passages
    for wnid, text in passages:
        assert text.strip()
        assert CJK.search(text) if lang == "zh" else not CJK.search(text), text
        # every passage names its breed, so it stands on its own in a search
        assert kb.by_wnid(wnid).display_name(lang) in text, text
    per_breed = len(passages) / len(wnids)
    assert per_breed >= 4
    golden = [t for w, t in passages if w == "n02099601"]
    if lang == "en":
        assert any("good with children" in t for t in golden)
        assert any("25-34 kg" in t for t in golden)
    else:
        assert any("与孩子相处融洽" in t for t in golden)
        assert any("25至34公斤" in t for t in golden)


def test_passages_unknown_language(kb: KnowledgeBase) -> None:
    with pytest.raises(ConfigError, match="fr"):
        kb.passages("fr")


# ---------------------------------------------------------------------- broken files
def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "breeds.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_min_greater_than_max_names_the_breed(tmp_path: Path) -> None:
    data = _raw()
    data["breeds"][57]["weight_kg"] = [40, 30]
    breed = data["breeds"][57]["breed"]
    with pytest.raises(DatasetError) as info:
        KnowledgeBase.load(_write(tmp_path, data))
    msg = str(info.value)
    assert breed in msg and "weight_kg" in msg and "breeds[57]" in msg
    assert "breeds.json" in msg


def test_negative_height_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["breeds"][0]["height_cm"] = [-5, 20]
    with pytest.raises(DatasetError, match=r"Chihuahua.*height_cm.*positive"):
        KnowledgeBase.load(_write(tmp_path, data))


@pytest.mark.parametrize("field", ["name_zh", "name_en", "description_en"])
def test_missing_or_empty_name_names_the_breed(tmp_path: Path, field: str) -> None:
    data = _raw()
    del data["breeds"][3][field]
    with pytest.raises(DatasetError, match=rf"Pekinese.*{field}"):
        KnowledgeBase.load(_write(tmp_path, data))
    data = _raw()
    data["breeds"][3][field] = "  "
    with pytest.raises(DatasetError, match=rf"Pekinese.*{field}"):
        KnowledgeBase.load(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", "huge"),
        ("exercise", "extreme"),
        ("children", "great"),
        ("wnid", "n123"),
        ("temperament_en", ["calm"]),
        ("unknown_field", 1),
    ],
)
def test_bad_values_rejected(tmp_path: Path, field: str, value: object) -> None:
    data = _raw()
    data["breeds"][10][field] = value
    with pytest.raises(DatasetError, match=rf"basset.*{field}"):
        KnowledgeBase.load(_write(tmp_path, data))


def test_duplicate_wnid_rejected(tmp_path: Path) -> None:
    data = _raw()
    data["breeds"][1]["wnid"] = data["breeds"][0]["wnid"]
    with pytest.raises(DatasetError, match="n02085620 appears twice"):
        KnowledgeBase.load(_write(tmp_path, data))


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        KnowledgeBase.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match="not valid JSON"):
        KnowledgeBase.load(bad)
    with pytest.raises(DatasetError, match="schema_version 2"):
        KnowledgeBase.load(_write(tmp_path, {"schema_version": 2, "breeds": []}))
    with pytest.raises(DatasetError, match="breeds"):
        KnowledgeBase.load(_write(tmp_path, {"schema_version": 1}))


def test_small_valid_file_loads(tmp_path: Path) -> None:
    data = _raw()
    data["breeds"] = data["breeds"][:2]
    kb = KnowledgeBase.load(_write(tmp_path, data))
    assert len(kb) == 2 and kb.find("日本狆").breed == "Japanese_spaniel"


def test_in_language_reads_the_field_of_that_language(kb: KnowledgeBase) -> None:
    info = next(iter(kb))
    for name in ("coat", "colors", "origin", "temperament", "description"):
        assert info.in_language(name, "en") == getattr(info, f"{name}_en")
        assert info.in_language(name, "zh") == getattr(info, f"{name}_zh")
    with pytest.raises(ConfigError, match="unknown language"):
        info.in_language("coat", "fr")
