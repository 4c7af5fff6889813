"""Filtered search over fixture photos with written EXIF: each filter alone, with t2i, i2i,
i2t, t2t, paging, the index paths (direct scoring and FAISS selectors), and an old v1
catalogue gaining the facts on the next index run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import crossmodal.index.store as store_mod
from crossmodal import Collection
from crossmodal.index.facts import FACT_COLUMNS, facts_of, rows_without_facts
from crossmodal.index.filters import allowed_ids
from crossmodal.index.schema import SCHEMA_VERSION
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from crossmodal.search_filter import SearchFilter, parse_filter
from tests.index.exif_helpers import SHOTS, write_library
from tests.index.helpers import one_torch_thread, tiny_model_dir

NAMES = [s.relpath for s in SHOTS]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return load_model(str(tiny_model_dir(0)))


def _captions(path: Path) -> Path:
    lines = ["image\tcaption"] + [f"{Path(n).name}\tphoto {Path(n).stem}" for n in NAMES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny: Encoder) -> Collection:
    base = tmp_path_factory.mktemp("exif")
    write_library(base / "photos")
    col = Collection.open(base / "col", model=tiny, create=True)
    report = col.index(base / "photos", captions=_captions(base / "c.tsv"), show_progress=False)
    assert report.added == len(SHOTS) and not report.failed
    return col


def _rel(col: Collection, hits: list) -> list[str]:
    return [h.relpath for h in hits]


def _expect(col: Collection, flt: SearchFilter, expected: set[str]) -> None:
    """t2i with the filter: exactly the expected photos, in the unfiltered ranking's order."""
    # a filtered search ranks by the embedding alone (hybrid search takes no filter yet)
    every = _rel(col, col.search("a photo", k=100, mode="t2i", descriptions=False))
    got = _rel(col, col.search("a photo", k=100, mode="t2i", filter=flt))
    assert set(got) == expected
    assert got == [r for r in every if r in expected]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"after": "2024"}, {"a/office.jpg", "b/nyc.png", "b/c/tokyo.webp", "a/fiji.jpg",
                             "a/renamed.png"}),
        ({"before": "2023-12-31"}, {"a/paris.jpg", "b/scan.jpg", "b/big.jpg"}),
        ({"after": "2024-01-01", "before": "2024-05"}, {"a/office.jpg", "b/nyc.png"}),
        ({"before": "2022-02-02"}, {"b/scan.jpg", "b/big.jpg"}),  # scan: its file time
        ({"camera": "pixel"}, {"a/paris.jpg", "b/nyc.png"}),
        ({"camera": "CANON"}, {"a/office.jpg", "a/fiji.jpg"}),
        ({"camera": "nikon z"}, {"a/renamed.png"}),
        ({"gps": True}, {"a/paris.jpg", "b/nyc.png", "b/c/tokyo.webp", "a/fiji.jpg"}),
        ({"gps": False}, {"a/office.jpg", "b/scan.jpg", "a/renamed.png", "b/big.jpg"}),
        ({"within": "35,-10,60,30"}, {"a/paris.jpg"}),
        ({"within": "-10,180,-20,170"}, {"a/fiji.jpg"}),
        ({"folder": "b"}, {"b/nyc.png", "b/scan.jpg", "b/c/tokyo.webp", "b/big.jpg"}),
        ({"folder": "b/c"}, {"b/c/tokyo.webp"}),
        ({"types": "png"}, {"b/nyc.png"}),  # renamed.png holds JPEG bytes
        ({"types": "webp,png"}, {"b/nyc.png", "b/c/tokyo.webp"}),
        ({"camera": "google", "after": "2024"}, {"b/nyc.png"}),
        ({"camera": "sony"}, set()),
    ],
)  # fmt: skip
def test_each_filter_with_t2i(library: Collection, kwargs: dict, expected: set[str]):
    _expect(library, parse_filter(**kwargs), expected)


def test_size_filters_and_absolute_folders(library: Collection):
    rows = library.catalog.images_under(1)
    sizes = {rel: row["size"] for rel, row in rows.items()}
    largest = max(sizes.values())
    _expect(library, SearchFilter(min_size=largest), {r for r, s in sizes.items() if s == largest})
    small = sorted(sizes.values())[2]
    _expect(library, SearchFilter(max_size=small), {r for r, s in sizes.items() if s <= small})
    root = Path(library.catalog.roots()[1])
    in_a = {n for n in NAMES if n.startswith("a/")}
    _expect(library, parse_filter(folder=str(root / "a"), base="/"), in_a)
    _expect(library, parse_filter(folder=str(root.parent), base="/"), set(NAMES))
    _expect(library, parse_filter(folder="/elsewhere", base="/"), set())


def test_i2i_i2t_t2t_and_by_id(library: Collection):
    flt = parse_filter(camera="pixel")
    root = Path(library.catalog.roots()[1])
    image = root / "b/c/tokyo.webp"
    hits = library.search(image=image, k=10, mode="i2i", filter=flt)
    assert set(_rel(library, hits)) == {"a/paris.jpg", "b/nyc.png"}
    texts = library.search(image=image, k=10, mode="i2t", filter=flt)
    assert sorted(h.text for h in texts) == ["photo nyc", "photo paris"]
    texts = library.search("photo", k=10, mode="t2t", filter=parse_filter(folder="b/c"))
    assert [h.text for h in texts] == ["photo tokyo"]
    paris = next(i for i, r in library.catalog.images_under(1).items() if i == "a/paris.jpg")
    paris_id = library.catalog.images_under(1)[paris]["id"]
    by_id = library.search_by_id(paris_id, k=10, filter=parse_filter(gps=True))
    assert set(_rel(library, by_id)) == {"b/nyc.png", "b/c/tokyo.webp", "a/fiji.jpg"}
    by_id = library.search_by_id(paris_id, k=10, mode="i2t", filter=parse_filter(gps=True))
    assert {h.text for h in by_id} == {"photo paris", "photo nyc", "photo tokyo", "photo fiji"}


def test_paging_a_filtered_ranking(library: Collection):
    flt = parse_filter(gps=True)
    whole = _rel(library, library.search("a photo", k=4, mode="t2i", filter=flt))
    pages = [
        _rel(library, library.search("a photo", k=2, mode="t2i", filter=flt, offset=o))
        for o in (0, 2, 4)
    ]
    assert pages[0] + pages[1] == whole and pages[2] == []
    ranks = [h.rank for h in library.search("a photo", k=2, filter=flt, offset=2)]
    assert ranks == [3, 4]


def test_a_filter_letting_all_through_gives_the_unfiltered_scores(
    library: Collection, monkeypatch: pytest.MonkeyPatch
):
    """Same scores (hubness column and all) by direct scoring and by the FAISS selector."""
    plain = library.search("a photo", k=8, mode="t2i", descriptions=False)
    for direct in (4096, 0):
        monkeypatch.setattr(store_mod, "DIRECT_ROWS", direct)
        every = library.search("a photo", k=8, mode="t2i", filter=SearchFilter(min_size=1))
        assert [h.id for h in every] == [h.id for h in plain]
        assert np.allclose([h.score for h in every], [h.score for h in plain], atol=1e-5)
        some = library.search("a photo", k=3, mode="t2i", filter=parse_filter(gps=False))
        assert set(_rel(library, some)) <= {"a/office.jpg", "b/scan.jpg", "a/renamed.png",
                                            "b/big.jpg"} and len(some) == 3  # fmt: skip


def test_allowed_ids_of_texts_follow_their_images(library: Collection):
    images = allowed_ids(library.catalog, parse_filter(types="webp"), "images")
    texts = allowed_ids(library.catalog, parse_filter(types="webp"), "texts")
    owners = {row["image_id"] for row in library.catalog.get_texts(texts.tolist()).values()}
    assert owners == set(images.tolist()) and len(images) == 1


def test_an_old_catalogue_gains_the_facts_on_the_next_index(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    write_library(photos)
    old = Collection.open(tmp_path / "col", model=tiny, create=True)
    old.index(photos, show_progress=False)
    old.close()
    _back_to_v1(tmp_path / "col" / "catalog.sqlite")
    con = sqlite3.connect(tmp_path / "col" / "catalog.sqlite")
    assert "taken" not in [r[1] for r in con.execute("PRAGMA table_info(images)")]
    con.close()
    col = Collection.open(tmp_path / "col", model=tiny)
    assert col.catalog.schema_version() == SCHEMA_VERSION
    assert len(rows_without_facts(col.catalog)) == len(SHOTS)
    assert col.search("a photo", k=10, filter=parse_filter(camera="pixel")) == []
    report = col.index(photos, show_progress=False)
    assert report.added == report.updated == 0 and report.unchanged == len(SHOTS)
    assert rows_without_facts(col.catalog) == []
    _expect(col, parse_filter(camera="pixel"), {"a/paris.jpg", "b/nyc.png"})
    facts = facts_of(col.catalog, [r["id"] for r in col.catalog.images_under(1).values()])
    assert sorted(f["taken_source"] for f in facts.values()).count("file") == 1
    col.close()


def _back_to_v1(path: Path) -> None:
    """The catalogue as a version before photo facts wrote it: schema 1, no fact columns
    (and `texts` as schema 1 had it, before descriptions)."""
    con = sqlite3.connect(path, isolation_level=None)
    for trigger in ("texts_fts_insert", "texts_fts_delete", "texts_fts_update"):
        con.execute(f"DROP TRIGGER {trigger}")
    con.execute("DROP TABLE texts_fts")
    con.execute("DROP INDEX texts_kind")
    con.execute(
        "CREATE TABLE texts_v1 (id INTEGER PRIMARY KEY AUTOINCREMENT, image_id INTEGER NOT NULL "
        "REFERENCES images(id) ON DELETE CASCADE, kind TEXT NOT NULL CHECK (kind IN "
        "('caption', 'annotation')), text TEXT NOT NULL, created_at REAL NOT NULL, "
        "vector BLOB NOT NULL)"
    )
    con.execute(
        "INSERT INTO texts_v1 SELECT id, image_id, kind, text, created_at, vector FROM texts "
        "WHERE kind IN ('caption', 'annotation')"
    )
    con.execute("DROP TABLE texts")
    con.execute("ALTER TABLE texts_v1 RENAME TO texts")
    con.execute("CREATE INDEX texts_image ON texts(image_id)")
    con.execute("DROP INDEX images_taken")
    for column in FACT_COLUMNS:
        con.execute(f"ALTER TABLE images DROP COLUMN {column}")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.close()
