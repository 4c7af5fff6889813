"""Collection: incremental indexing, bad files, the four search modes, query arithmetic, errors."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal import Collection
from crossmodal.collection import check_index_folder, default_collection_path, parse_query
from crossmodal.errors import (
    CollectionBusy,
    CollectionEmpty,
    CollectionError,
    CrossmodalError,
    ImageLoadError,
)
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from tests.index.helpers import make_pattern, make_photos, one_torch_thread, tiny_model_dir


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="session")
def tiny_name() -> str:
    return str(tiny_model_dir(0))


@pytest.fixture(scope="session")
def tiny(tiny_name: str) -> Encoder:
    return load_model(tiny_name)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, tiny: Encoder) -> Collection:
    """12 photos with captions for some, indexed once (read-only tests share it)."""
    base = tmp_path_factory.mktemp("gallery")
    make_photos(base / "photos", 12)
    captions = base / "captions.tsv"
    captions.write_text(
        "image\tcaption\n"
        "p000.jpg\ta red striped card\n"
        "p000.jpg\tred stripes on a table\n"
        "p001.jpg\ta green striped card\n"
        "p002.jpg\ta blue striped card\n"
    )
    col = Collection.open(base / "col", model=tiny, create=True)
    report = col.index(base / "photos", captions=captions, batch_size=5, show_progress=False)
    assert report.added == 12 and report.captions == 4 and not report.failed
    return col


def path_of(col: Collection, name: str) -> str:
    return next(h.path for h in col.search(text="x", k=100) if h.path.endswith(name))


# ---- indexing -----------------------------------------------------------------------------
def test_incremental_add_change_delete_move_touch(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    files = make_photos(photos, 6)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    first = col.index(photos, batch_size=4, show_progress=False)
    assert (first.added, first.updated, first.removed, first.unchanged) == (6, 0, 0, 0)
    assert first.embedded == 6 and first.images_per_second > 0
    ids = {h.path: h.id for h in col.search(text="stripes", k=10)}
    assert len(ids) == 6

    again = col.index(photos, show_progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 6)

    make_pattern(files[0], 40)  # new content, same path
    os.utime(files[0], ns=(1, 10**18))
    files[1].unlink()
    moved_to = photos / "elsewhere" / "renamed.jpg"
    moved_to.parent.mkdir()
    shutil.move(files[2], moved_to)
    os.utime(files[3], ns=(1, 2 * 10**18))  # touched only: same bytes
    report = col.index(photos, show_progress=False)
    assert (report.added, report.updated, report.removed, report.moved) == (0, 1, 1, 1)
    assert report.unchanged == 3  # files[3] (touched: same bytes), files[4], files[5]
    after = {h.path: h.id for h in col.search(text="stripes", k=10)}
    assert len(after) == 5 and len(col) == 5
    assert after[str(moved_to)] == ids[str(files[2])]  # re-pathed, not re-embedded
    assert after[str(files[0])] == ids[str(files[0])]  # updated in place, same id
    assert str(files[1]) not in after
    record = col.get(after[str(moved_to)])
    assert record.relpath == "elsewhere/renamed.jpg" and (record.width, record.height) == (64, 48)
    col.close()


def test_subfolder_and_parent_reuse_rows(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    make_photos(photos, 6)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    assert col.index(photos / "d0", show_progress=False).added == 2
    # the parent absorbs the subfolder's rows: only the 4 others are embedded
    report = col.index(photos, show_progress=False)
    assert (report.added, report.unchanged) == (4, 2)
    assert col.stats()["roots"] == [str(photos.resolve())]
    # a subfolder of an indexed root is part of it: nothing new, nothing removed
    again = col.index(photos / "d1", show_progress=False)
    assert (again.added, again.removed, again.unchanged) == (0, 0, 2)
    assert len(col) == 6


def test_bad_files_are_reported_remembered_and_retried_when_changed(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    make_photos(photos, 2)
    (photos / "empty.jpg").write_bytes(b"")
    good = make_pattern(tmp_path / "full.jpg", 5, size=(120, 90))
    data = good.read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (photos / "notes.jpg").write_text("this is not a picture")
    (photos / "readme.txt").write_text("ignored: not an image extension")
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    report = col.index(photos, show_progress=False)
    assert report.added == 2
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "notes.jpg"}
    assert reasons["empty.jpg"].startswith("empty file")
    assert reasons["truncated.jpg"].startswith("truncated or corrupt")
    assert reasons["notes.jpg"].startswith("not an image")
    for failure in report.failed:
        assert failure.message.startswith(f"skipping {failure.path}: ")
        assert not failure.remembered

    again = col.index(photos, show_progress=False)
    assert again.added == 0 and all(f.remembered for f in again.failed)
    assert len(again.failed) == 3

    make_pattern(photos / "notes.jpg", 7)  # fixed by the user
    fixed = col.index(photos, show_progress=False)
    assert fixed.added == 1 and len(fixed.failed) == 2
    assert len(col.index(photos, show_progress=False, retry_failed=True).failed) == 2
    assert col.stats()["failed"] == 2 and len(col) == 3


def test_changed_file_that_breaks_is_removed(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    files = make_photos(photos, 2)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(photos, show_progress=False)
    files[0].write_bytes(b"")
    report = col.index(photos, show_progress=False)
    assert report.removed == 1 and len(report.failed) == 1 and len(col) == 1


def test_model_mismatch_is_refused(tmp_path: Path, tiny_name: str, tiny: Encoder):
    make_photos(tmp_path / "photos", 1)
    col = Collection.open(tmp_path / "col", model=tiny_name, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    col.close()
    other = str(tiny_model_dir(1))
    with pytest.raises(CollectionError) as info:
        Collection.open(tmp_path / "col", model=other)
    message = str(info.value)
    assert tiny_name in message and other in message
    # no model given: the collection's own is used
    again = Collection.open(tmp_path / "col")
    assert again.model.fingerprint == tiny.fingerprint
    again.close()
    # --rebuild: the vectors of the other model are dropped and everything is re-embedded
    rebuilt = Collection.open(tmp_path / "col", model=other, rebuild=True)
    assert len(rebuilt) == 0 and rebuilt.stats()["model"] == other
    assert rebuilt.index(tmp_path / "photos", show_progress=False).added == 1
    rebuilt.close()


def test_retrained_model_of_the_same_name(tmp_path: Path, tiny_name: str):
    make_photos(tmp_path / "photos", 2)
    col = Collection.open(tmp_path / "col", model=tiny_name, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    col.catalog.set_meta("model_fingerprint", "dual:older-version")  # as after a retrain
    col.close()
    with pytest.raises(CollectionError, match=r"another version of model .*--rebuild"):
        Collection.open(tmp_path / "col").search(text="x")
    col = Collection.open(tmp_path / "col", rebuild=True)
    assert len(col) == 0
    report = col.index(tmp_path / "photos", show_progress=False)
    assert report.added == 2 and len(col.search(text="x", k=5)) == 2


def test_missing_collection_message(tmp_path: Path):
    with pytest.raises(CollectionError, match=r"no collection at .*crossmodal index DIR"):
        Collection.open(tmp_path / "nothing")


def test_default_collection_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CROSSMODAL_COLLECTION", str(tmp_path / "x"))
    assert default_collection_path() == tmp_path / "x"
    monkeypatch.delenv("CROSSMODAL_COLLECTION")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_collection_path() == tmp_path / "crossmodal" / "default"


def test_one_writer_at_a_time(tmp_path: Path, tiny: Encoder):
    make_photos(tmp_path / "photos", 1)
    first = Collection.open(tmp_path / "col", model=tiny, create=True)
    second = Collection.open(tmp_path / "col", model=tiny)
    with first._writing(), pytest.raises(CollectionBusy, match="another process"):
        second.index(tmp_path / "photos", show_progress=False)


@pytest.mark.parametrize("given", ["missing", "a-file.jpg"])
def test_a_failed_first_index_leaves_no_collection(tmp_path: Path, tiny: Encoder, given: str):
    (tmp_path / "a-file.jpg").write_bytes(b"x")
    where = tmp_path / "new" / "col"
    col = Collection.open(where, model=tiny, create=True)
    with pytest.raises(CollectionError, match=r"is not a folder.*give the folder of photos"):
        col.index(tmp_path / given, show_progress=False)
    col.close()
    assert not (tmp_path / "new").exists()  # neither the collection nor the folder above it
    with pytest.raises(CollectionError, match="is not a folder"):
        check_index_folder(tmp_path / given)


def test_a_failed_index_keeps_an_existing_collection(tmp_path: Path, tiny: Encoder):
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "col").mkdir()
    with Collection.open(tmp_path / "col", model=tiny, create=True) as col:
        col.index(tmp_path / "photos", show_progress=False)
        with pytest.raises(CollectionError, match="is not a folder"):
            col.index(tmp_path / "missing", show_progress=False)
    with Collection.open(tmp_path / "col") as again:
        assert len(again) == 1
    # a new catalogue in a folder that was there: the catalogue goes, the folder stays
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    col = Collection.open(tmp_path / "mine", model=tiny, create=True)
    with col, pytest.raises(CollectionError):
        col.index(tmp_path / "missing", show_progress=False)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_folder_without_photos_says_so(tmp_path: Path, tiny: Encoder):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no photos here")
    with Collection.open(tmp_path / "col", model=tiny, create=True) as col:
        report = col.index(tmp_path / "empty", show_progress=False)
        assert report.no_photos and report.found == 0 and report.to_dict()["found"] == 0
        line = report.summary()
        assert "\n" not in line and line.startswith("no photos found in ")
        assert ".jpg" in line and "give the folder that holds them" in line
        with pytest.raises(CollectionEmpty, match=r"holds no images yet.*crossmodal index DIR"):
            col.search(text="a dog")
    make_photos(tmp_path / "photos", 2)
    with Collection.open(tmp_path / "col2", model=tiny, create=True) as col:
        assert not col.index(tmp_path / "photos", show_progress=False).no_photos
        shutil.rmtree(tmp_path / "photos")
        (tmp_path / "photos").mkdir()
        emptied = col.index(tmp_path / "photos", show_progress=False)
        assert emptied.removed == 2 and not emptied.no_photos  # something was done


# ---- searching ----------------------------------------------------------------------------
def test_four_modes(gallery: Collection):
    t2i = gallery.search(text="a red striped card", k=5)
    assert len(t2i) == 5 and all(h.kind == "image" for h in t2i)
    assert [h.rank for h in t2i] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in itertools.pairwise(t2i))

    red = path_of(gallery, "p000.jpg")
    i2i = gallery.search(image=red, k=3)
    assert i2i[0].path == red and i2i[0].score == pytest.approx(1.0, abs=2e-3)
    assert i2i[0].caption == "a red striped card"
    assert gallery.search(query=[(1.0, red)], k=3, mode="auto")[0].path == red

    i2t = gallery.search(image=red, k=10, mode="i2t")
    assert len(i2t) == 4 and all(h.kind == "text" and h.text for h in i2t)
    assert {h.text for h in i2t} == {
        "a red striped card",
        "red stripes on a table",
        "a green striped card",
        "a blue striped card",
    }

    t2t = gallery.search(text="a blue striped card", k=2, mode="t2t")
    assert t2t[0].text == "a blue striped card" and t2t[0].score == pytest.approx(1.0, abs=1e-4)
    assert (
        t2t[0].path.endswith("p002.jpg")
        and t2t[0].id == gallery.search(image=t2t[0].path, k=1)[0].id
    )


def test_repeated_text_queries_skip_the_text_tower(
    gallery: Collection, monkeypatch: pytest.MonkeyPatch
):
    model = gallery.model
    encode = model.encode_texts
    encoded: list[list[str]] = []

    def counting(texts: list[str], *args: object, **kwargs: object) -> np.ndarray:
        encoded.append(list(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode_texts", counting)
    first = gallery.search(text="a cached query about stripes", k=3)
    again = gallery.search(text="a cached query about stripes", k=3)
    assert [(h.id, h.score) for h in first] == [(h.id, h.score) for h in again]
    mixed = gallery.embed_query(query=[(1.0, "a cached query about stripes"), (-0.5, "new")])
    assert encoded == [["a cached query about stripes"], ["new"]]  # each text encoded once
    direct = encode(["a cached query about stripes", "new"])
    expected = direct[0] - 0.5 * direct[1]
    np.testing.assert_allclose(mixed[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_search_with_pil_image_and_by_id(gallery: Collection):
    red = path_of(gallery, "p000.jpg")
    with Image.open(red) as im:
        hits = gallery.search(image=im.copy(), k=1)
    assert hits[0].path == red
    image_id = hits[0].id
    similar = gallery.search_by_id(image_id, k=3)
    assert len(similar) == 3 and image_id not in [h.id for h in similar]
    assert [h.rank for h in similar] == [1, 2, 3]
    texts = gallery.search_by_id(image_id, k=2, mode="i2t")
    assert all(h.kind == "text" for h in texts)
    with pytest.raises(CollectionError, match="no image with id"):
        gallery.search_by_id(10**6)


def test_query_arithmetic_moves_the_added_image(gallery: Collection):
    base = gallery.search(text="a photo", k=12)
    target = base[-1].path  # the text's worst match
    pushed = gallery.search(query=[(1.0, "a photo"), (3.0, target)], k=12)
    assert pushed[0].path == target  # adding the image's vector pulls it to the top
    assert pushed[0].score > base[0].score - 1.0
    pulled = gallery.search(query=[(1.0, "a photo"), (-3.0, base[0].path)], k=12)
    assert pulled[-1].path == base[0].path  # subtracting it sends it to the bottom
    # weights are relative: scaling every weight changes nothing
    same = gallery.search(query=[(2.0, "a photo"), (6.0, target)], k=12)
    assert [h.path for h in same] == [h.path for h in pushed]
    # text= and image= together are a 1:1 sum
    both = gallery.search(text="a photo", image=target, k=3)
    one = gallery.search(query=[(1.0, "a photo"), (1.0, Path(target))], k=3)
    assert [h.path for h in both] == [h.path for h in one]


def test_search_errors(gallery: Collection, tmp_path: Path):
    for k in (0, -3):
        with pytest.raises(CrossmodalError, match="positive"):
            gallery.search(text="dog", k=k)
    with pytest.raises(CrossmodalError, match="empty query"):
        gallery.search(text="   ")
    with pytest.raises(CrossmodalError, match="empty query"):
        gallery.search(query=[])
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    with pytest.raises(ImageLoadError, match="cannot search with"):
        gallery.search(image=not_image)
    with pytest.raises(CrossmodalError, match="unknown mode"):
        gallery.search(text="dog", mode="x2y")
    with pytest.raises(CrossmodalError, match="no image"):
        gallery.search(text="dog", mode="i2i")
    with pytest.raises(CrossmodalError, match="no text"):
        gallery.search(image=path_of(gallery, "p001.jpg"), mode="t2t")
    with pytest.raises(CrossmodalError, match="cancel out"):
        gallery.search(query=[(1.0, "dog"), (-1.0, "dog")])
    with pytest.raises(CrossmodalError, match="offset must be 0 or a positive"):
        gallery.search(text="dog", offset=-1)


def test_offset_pages_are_slices_of_the_full_ranking(gallery: Collection):
    image = path_of(gallery, "p003.jpg")
    first_id = gallery.search(text="x", k=1)[0].id
    for search in (
        lambda k, offset: gallery.search(text="a striped card", k=k, offset=offset),
        lambda k, offset: gallery.search(image=image, mode="i2t", k=k, offset=offset),
        lambda k, offset: gallery.search_by_id(first_id, k=k, offset=offset),
        lambda k, offset: gallery.search_by_id(first_id, k=k, mode="i2t", offset=offset),
    ):
        full = [(h.rank, h.id, h.text_id, h.score) for h in search(12, 0)]
        pages = [(h.rank, h.id, h.text_id, h.score) for o in (0, 3, 6) for h in search(3, o)]
        assert pages == full[:9]  # ranks count from the first result, not the page's
        assert search(5, len(full)) == []


def test_annotate_remove_and_get(tmp_path: Path, tiny: Encoder):
    files = make_photos(tmp_path / "photos", 4)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    image_id = col.search(image=files[1], k=1)[0].id
    text_id = col.annotate(image_id, "grandma's birthday cake")
    assert text_id > 0
    hit = col.search(text="grandma's birthday cake", mode="t2t", k=1)[0]
    assert hit.id == image_id and hit.text_id == text_id and hit.path == str(files[1])
    assert col.get(image_id).annotations == ["grandma's birthday cake"]
    with pytest.raises(CrossmodalError):
        col.annotate(image_id, "  ")
    with pytest.raises(CollectionError):
        col.annotate(10**6, "x")
    assert col.remove([files[1]]) == 1
    assert len(col) == 3 and col.stats()["annotations"] == 0
    assert col.search(text="grandma's birthday cake", mode="t2t", k=1) == []
    assert col.remove([tmp_path / "photos" / "d0"]) == 2  # a folder: everything below it
    assert len(col) == 1


def test_stores_are_caches_rebuilt_from_the_catalogue(tmp_path: Path, tiny: Encoder):
    files = make_photos(tmp_path / "photos", 5)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    expected = [h.path for h in col.search(image=files[0], k=5)]
    col.close()
    saved = sorted(p.name for p in (tmp_path / "col").glob("*.faiss"))
    assert saved and all(".g" in name for name in saved)
    for p in (tmp_path / "col").glob("images*.faiss"):
        p.write_bytes(b"damaged")
    again = Collection.open(tmp_path / "col", model=tiny)
    assert [h.path for h in again.search(image=files[0], k=5)] == expected
    # a cache from an older generation is not used
    again.catalog.bump_generation("images")
    third = Collection.open(tmp_path / "col", model=tiny)
    assert len(third._store("images")) == 5
    assert third.stores.generation("images") == third.catalog.generation("images")


def test_fp16_store_collection(tmp_path: Path, tiny: Encoder):
    files = make_photos(tmp_path / "photos", 4)
    col = Collection.open(tmp_path / "col", model=tiny, create=True, store="flat-fp16")
    col.index(tmp_path / "photos", show_progress=False)
    hit = col.search(image=files[2], k=1)[0]
    assert hit.path == str(files[2]) and hit.score == pytest.approx(1.0, abs=3e-3)
    assert col.stats()["store"] == "flat-fp16" and col._store("images").kind == "flat-fp16"
    col.close()
    reopened = Collection.open(tmp_path / "col")
    assert reopened._store("images").kind == "flat-fp16"
    with pytest.raises(CollectionError, match="flat-fp16"):
        Collection.open(tmp_path / "col", store="flat")
    with pytest.raises(CollectionError, match="unknown store"):
        Collection.open(tmp_path / "other", create=True, store="hnws")


def test_stats(gallery: Collection):
    info = gallery.stats()
    assert info["images"] == 12 and info["captions"] == 4 and info["annotations"] == 0
    assert info["dim"] == 32 and info["schema_version"] >= 1 and info["store"] == "auto"
    # auto keeps a 12-photo gallery exact; the kind built is recorded for stats
    images = info["stores"]["images"]
    assert images["kind"] == "flat" and images["rows"] == 12 and images["recall_at_10"] == 1.0
    assert images["memory_bytes"] == 12 * (4 * 32 + 8)  # float32 rows and int64 ids
    assert info["model_fingerprint"].startswith("dual:")


# ---- query parsing ------------------------------------------------------------------------
def test_parse_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    make_pattern(tmp_path / "beach.jpg", 1)
    assert parse_query(["a", "dog"]) == [(1.0, "a dog")]
    assert parse_query(["a dog", "+", "beach.jpg", "-", "snow"]) == [
        (1.0, "a dog"),
        (1.0, Path("beach.jpg")),
        (-1.0, "snow"),
    ]
    assert parse_query(["2:golden retriever", "-0.5:grass"]) == [
        (2.0, "golden retriever"),
        (-0.5, "grass"),
    ]
    assert parse_query(["a dog", "+beach.jpg", "-snow"]) == [
        (1.0, "a dog"),
        (1.0, Path("beach.jpg")),
        (-1.0, "snow"),
    ]
    assert parse_query(["-", "2:beach.jpg"]) == [(-2.0, Path("beach.jpg"))]
    assert parse_query(["", " "]) == []


# ---- real data ----------------------------------------------------------------------------
def test_flickr8k_four_modes(flickr8k_root: Path, tmp_path: Path, tiny: Encoder):
    names = (flickr8k_root / "test.txt").read_text().split()[:40]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in names:
        os.symlink(flickr8k_root / "images" / name, photos / name)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    report = col.index(
        photos, captions=flickr8k_root / "captions.tsv", batch_size=16, show_progress=False
    )
    assert report.added == 40 and report.captions == 200 and not report.failed
    image = photos / names[0]
    assert col.search(text="a dog runs on the grass", k=5, mode="t2i")
    assert col.search(image=image, k=5)[0].path == str(image)
    assert len(col.search(image=image, k=5, mode="i2t")) == 5
    first_caption = col.get(col.search(image=image, k=1)[0].id).captions[0]
    assert col.search(text=first_caption, k=1, mode="t2t")[0].text == first_caption
    assert np.isfinite([h.score for h in col.search(text="people", k=40)]).all()


def test_search_hit_to_dict_has_every_field():
    from dataclasses import asdict

    from crossmodal.collection import SearchHit

    hit = SearchHit(2, 0.123456789, 7, "/p.jpg", "a text", "a caption", "text", 11)
    assert hit.to_dict() == {**asdict(hit), "score": 0.123457}
