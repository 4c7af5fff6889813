"""Descriptions: the catalogue's kinds and sources, the v1 -> v2 migration, FTS5 (Chinese too),
the checks of a person's text, and `Collection.describe` / `annotate` / `remove_annotations`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Collection
from crossmodal.errors import CollectionError
from crossmodal.index.catalog import Catalog
from crossmodal.index.descriptions import (
    MAX_DESCRIPTION_CHARS,
    Description,
    DescriptionError,
    check_description_text,
    fts_query,
    search_terms,
)
from crossmodal.index.schema import MIGRATIONS
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return load_model(str(tiny_model_dir(0)))


def _catalog_with_image(path: Path) -> tuple[Catalog, int]:
    cat = Catalog(path)
    root = cat.add_root("/photos")
    image_id = cat.insert_image(root, "a.jpg", "h", 1, 1, 4, 4, np.ones(4, np.float32))
    return cat, image_id


def _matches(cat: Catalog, query: str) -> list[str]:
    expression = fts_query(query)
    assert expression is not None
    found = cat.get_texts([t for t, *_ in cat.match_terms(expression, 10)])
    return [found[i]["text"] for i in found]


def test_description_knows_kind_source_person_and_checks_its_text():
    tag = Description("golden retriever", "tag", "imagenet", "en", 0.8)
    assert tag.by_person is False and tag.confidence == 0.8
    assert Description(" Max ", "annotation", "user").by_person is True
    assert Description(" Max ", "annotation", "user").text == "Max"
    with pytest.raises(DescriptionError, match="unknown description kind"):
        Description("x", "rumour", "user")
    with pytest.raises(DescriptionError, match="confidence"):
        Description("x", "tag", "imagenet", confidence=1.5)
    with pytest.raises(DescriptionError, match="empty annotation"):
        check_description_text(" \n ", "annotation")
    with pytest.raises(DescriptionError, match="too long: 100000 characters"):
        check_description_text("x" * 100_000)
    with pytest.raises(DescriptionError, match="control character \\(U\\+0007\\)"):
        check_description_text("beep\x07")
    assert check_description_text("x" * MAX_DESCRIPTION_CHARS) == "x" * MAX_DESCRIPTION_CHARS
    assert check_description_text("two\nlines\tok") == "two\nlines\tok"


def test_terms_split_chinese_into_bigrams():
    assert search_terms("一只金毛寻回犬") == "一只 只金 金毛 毛寻 寻回 回犬"
    assert search_terms("狗 Dog-park 3") == "狗 dog park 3"
    assert fts_query("a the of") is None


def test_fts_finds_chinese_and_english_and_follows_deletes(tmp_path: Path):
    cat, image_id = _catalog_with_image(tmp_path / "c.sqlite")
    vecs = np.eye(3, 4, dtype=np.float32)
    ids = cat.add_descriptions(
        image_id,
        [
            Description("金毛寻回犬", "tag", "breed", "zh", 0.9),
            Description("golden retriever", "tag", "breed", "en", 0.9),
            Description("Max at grandma's farm", "annotation", "user"),
        ],
        vecs,
    )
    assert _matches(cat, "一只金毛寻回犬") == ["金毛寻回犬"]
    assert _matches(cat, "Max at the farms") == ["Max at grandma's farm"]  # porter stems
    rows = cat.descriptions_of([image_id])[image_id]
    assert [(r["kind"], r["source"], r["by_person"], r["lang"]) for r in rows] == [
        ("tag", "breed", 0, "zh"), ("tag", "breed", 0, "en"), ("annotation", "user", 1, None),
    ]  # fmt: skip
    assert cat.delete_texts(image_id, "tag", "breed") == ids[:2]
    assert _matches(cat, "一只金毛寻回犬") == []
    cat.delete_images([image_id])
    assert _matches(cat, "farm") == []


@pytest.mark.parametrize(
    "query",
    ['"', '"unclosed', "dog*", "*", "NEAR(dog cat)", "NEAR", "-dog", "dog -cat", "(", ")",
     "title:dog", ":", "AND OR NOT", "^dog", "{dog}", "dog + cat", "'", "\\", "狗*"],
)  # fmt: skip
def test_fts_special_characters_never_raise(tmp_path: Path, query: str):
    cat, image_id = _catalog_with_image(tmp_path / "c.sqlite")
    cat.add_texts(image_id, "annotation", ["a dog and a cat"], np.ones((1, 4), np.float32))
    expression = fts_query(query)
    if expression is not None:
        cat.match_terms(expression, 5)  # no sqlite3.OperationalError


def test_migration_from_v1_keeps_texts_ids_and_counter(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN")
    MIGRATIONS[0](con)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO roots VALUES (1, '/p', 0)")
    con.execute("INSERT INTO images VALUES (1, 1, 'a.jpg', 'h', 1, 1, 4, 4, 0, x'00')")
    blob = np.ones(4, np.float32).tobytes()
    for i, (kind, text) in enumerate(
        [("caption", "a dog on a beach"), ("annotation", "Max"), ("annotation", "gone")], 1
    ):
        con.execute("INSERT INTO texts VALUES (?, 1, ?, ?, 0, ?)", (i, kind, text, blob))
    con.execute("DELETE FROM texts WHERE id=3")  # the counter stays at 3
    con.execute("COMMIT")
    con.close()
    cat = Catalog(path)
    rows = cat.descriptions_of([1])[1]
    assert [(r["id"], r["kind"], r["source"], r["by_person"]) for r in rows] == [
        (1, "caption", "captions", 1), (2, "annotation", "user", 1),
    ]  # fmt: skip
    assert _matches(cat, "beaches") == ["a dog on a beach"]
    (new_id,) = cat.add_texts(1, "annotation", ["new"], np.ones((1, 4), np.float32))
    assert new_id == 4  # AUTOINCREMENT kept: an id is never reused
    with pytest.raises(sqlite3.IntegrityError):
        cat._con.execute(
            "INSERT INTO texts(image_id, kind, text, created_at, vector) "
            "VALUES (1, 'rumour', 'x', 0, x'00')"
        )


def test_describe_replaces_by_kind_and_source_and_feeds_t2t(tmp_path: Path, tiny: Encoder):
    files = make_photos(tmp_path / "photos", 4)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", show_progress=False, describe=False)  # no automatic tags
    image_id = col.search(image=files[2], k=1)[0].id
    first = col.describe(image_id, [Description("tabby cat", "tag", "imagenet", "en", 0.7)])
    again = col.describe(
        image_id,
        [
            Description("tiger cat", "tag", "imagenet", "en", 0.6),
            Description("a cat on a sofa", "auto_caption", "captioner", "en", 0.4),
        ],
    )
    assert len(first) == 1 and len(again) == 2 and first[0] not in again
    texts = col.catalog.texts_of([image_id])[image_id]
    assert texts == ["tiger cat", "a cat on a sofa"]  # the earlier imagenet tag replaced
    hit = col.search(text="a cat on a sofa", mode="t2t", k=1)[0]
    assert hit.id == image_id and hit.text == "a cat on a sofa"
    with pytest.raises(CollectionError, match="no image with id"):
        col.describe(10**6, [Description("x", "tag", "imagenet")])
    col.close()


def test_annotate_checks_and_remove_annotations(tmp_path: Path, tiny: Encoder):
    make_photos(tmp_path / "photos", 2)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", show_progress=False, describe=False)  # no automatic tags
    image_id = int(col.catalog.ids("images")[0])
    for bad, words in [("", "empty annotation"), ("x" * 100_000, "too long"),
                       ("a\x00b", "control character")]:  # fmt: skip
        with pytest.raises(DescriptionError, match=words):
            col.annotate(image_id, bad)
    one = col.annotate(image_id, "Max at grandma's farm")
    col.annotate(image_id, "birthday")
    col.annotate(image_id, "birthday")
    col.describe(image_id, [Description("farm", "tag", "imagenet")])
    assert col.remove_annotations(image_id, text_id=one) == 1
    assert col.remove_annotations(image_id, text="birthday") == 2
    col.annotate(image_id, "again")
    assert col.remove_annotations(image_id) == 1
    assert col.catalog.texts_of([image_id])[image_id] == ["farm"]  # generated texts stay
    assert col.search(text="birthday", mode="t2t", k=5) == []
    col.close()


def test_captions_name_the_file_they_came_from(tmp_path: Path, tiny: Encoder) -> None:
    """A caption's source is its captions file's name, on first indexing and when the file
    later changes what it says about an indexed photo."""
    make_photos(tmp_path / "photos", 2)
    first = tmp_path / "flickr-captions.tsv"
    first.write_text("image\tcaption\np000.jpg\ta red card\n")
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", captions=first, show_progress=False, describe=False)
    rows = col.catalog.descriptions_of(col.catalog.ids("images").tolist(), "caption")
    assert [(r["text"], r["source"]) for rs in rows.values() for r in rs] == [
        ("a red card", "flickr-captions.tsv")
    ]
    second = tmp_path / "mine.json"
    second.write_text('[{"image": "p000.jpg", "captions": ["a card, red"]}]')
    col.index(tmp_path / "photos", captions=second, show_progress=False, describe=False)
    rows = col.catalog.descriptions_of(col.catalog.ids("images").tolist(), "caption")
    assert [(r["text"], r["source"]) for rs in rows.values() for r in rs] == [
        ("a card, red", "mine.json")
    ]
