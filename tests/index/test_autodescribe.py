"""Automatic descriptions in a collection: stored at index time (kind, source, both languages),
filled afterwards by `describe_all` (resumable, `redo`), dropped when a photo changes, and
breeds found by plain text search through them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal import Collection
from crossmodal.index.autodescribe import WATERMARK_KEY
from tests.conftest import STANFORD_DOGS, sample_photo
from tests.index.helpers import one_torch_thread, tiny_model_dir

GOLDEN = ["n02099601_10.jpg", "n02099601_109.jpg", "n02099601_1768.jpg"]
PUGS = ["n02110958_10378.jpg", "n02110958_11306.jpg", "n02110958_11958.jpg"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


def _photos(folder: Path, dogs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("grace_hopper", "china"):
        shutil.copy(sample_photo(name), folder / f"{name}.jpg")
    for name in dogs:
        source = STANFORD_DOGS / "images" / name
        if not source.is_file():
            pytest.skip(f"../shared/data not found: no Stanford Dogs photo {source}")
        shutil.copy(source, folder / name)
    return folder


def _generated(col: Collection) -> dict[str, list[dict]]:
    """file name -> its generated description rows."""
    ids = [int(i) for i in col.catalog.ids("images")]
    rows = col.catalog.descriptions_of(ids)
    return {
        Path(col.get(i).path).name: [dict(r) for r in found if not r["by_person"]]
        for i, found in rows.items()
    }


def _texts_of(found: dict[str, list[dict]]) -> dict[str, list[tuple[str, str, str]]]:
    return {k: sorted((r["text"], r["lang"], r["source"]) for r in v) for k, v in found.items()}


def _texts(col: Collection) -> dict[str, list[tuple[str, str, str]]]:
    return _texts_of(_generated(col))


def test_index_stores_tags_with_kind_source_and_both_languages(tmp_path: Path):
    photos = _photos(tmp_path / "photos", GOLDEN[:1])
    with Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True) as col:
        report = col.index(photos, show_progress=False)
        found = _generated(col)
        assert report.described == sum(len(v) for v in found.values()) > 0
        assert "automatic tags" in report.summary()
        dog = {(r["source"], r["lang"]): r["text"] for r in found[GOLDEN[0]]}
        assert dog[("breed", "en")] == "Golden Retriever" and dog[("breed", "zh")] == "金毛寻回犬"
        assert dog[("imagenet", "en")] == "dog" and dog[("imagenet", "zh")] == "狗"
        hopper = {(r["text"], r["lang"]) for r in found["grace_hopper.jpg"]}
        assert {("military uniform", "en"), ("军装", "zh")} <= hopper
        for rows in found.values():
            for r in rows:
                assert r["kind"] == "tag" and r["source"] in ("imagenet", "breed")
                assert 0.0 <= r["confidence"] <= 1.0
        # every image went through the generators: a later describe_all has nothing to do
        assert col.describe_all(show_progress=False).images == 0


def test_describe_all_fills_an_untagged_collection_and_resumes(tmp_path: Path):
    photos = _photos(tmp_path / "photos", GOLDEN[:1])
    with Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True) as col:
        col.index(photos, show_progress=False, describe=False)
        assert not any(_generated(col).values())
        first = col.describe_all(show_progress=False)
        tags = _generated(col)
        assert first.images == 3 and first.described == sum(len(v) for v in tags.values()) > 0
        assert int(col.catalog.get_meta(WATERMARK_KEY)) == max(col.catalog.ids("images"))
        assert col.describe_all(show_progress=False).images == 0  # nothing new
        again = col.describe_all(show_progress=False, redo=True)
        assert again.images == 3 and _texts(col) == _texts_of(tags)  # replaced, not doubled


def test_a_changed_photo_loses_its_old_tags(tmp_path: Path):
    photos = _photos(tmp_path / "photos", GOLDEN[:1])
    with Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True) as col:
        col.index(photos, show_progress=False)
        assert any(r["source"] == "breed" for r in _generated(col)[GOLDEN[0]])
        shutil.copy(sample_photo("flower"), photos / GOLDEN[0])  # same name, new content
        report = col.index(photos, show_progress=False)
        assert report.updated == 1
        assert not any(r["source"] == "breed" for r in _generated(col).get(GOLDEN[0], []))


@pytest.mark.parametrize("query", ["a photo of a Golden Retriever", "一只金毛寻回犬"])
def test_breeds_are_found_by_plain_search(tmp_path: Path, query: str):
    photos = _photos(tmp_path / "photos", GOLDEN + PUGS)
    with Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True) as col:
        col.index(photos, show_progress=False)
        hits = col.search(query, k=3)
        assert sorted(Path(h.path).name for h in hits) == sorted(GOLDEN)
        lifted_by = {m["text"] for m in hits[0].matched or [] if m["kind"] == "tag"}
        assert lifted_by & {"Golden Retriever", "金毛寻回犬"}


def test_cli_no_tags_then_describe_alone(tmp_path: Path):
    from typer.testing import CliRunner

    from crossmodal.cli import app

    photos = _photos(tmp_path / "photos", [])
    col_path = tmp_path / "col"
    model = str(tiny_model_dir(0))
    runner = CliRunner()
    first = runner.invoke(
        app, ["index", str(photos), "-c", str(col_path), "-m", model, "--no-tags", "-q"]
    )
    assert first.exit_code == 0, first.output
    with Collection.open(col_path) as col:
        assert not any(_generated(col).values())
    second = runner.invoke(app, ["index", "--describe", "-c", str(col_path), "-q"])
    assert second.exit_code == 0, second.output
    assert "described 2 images" in second.output
    with Collection.open(col_path) as col:
        assert ("palace", "en", "imagenet") in _texts(col)["china.jpg"]
