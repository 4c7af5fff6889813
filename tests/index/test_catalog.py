"""The SQLite catalogue: schema versions, transactions, vectors stored with their rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import CollectionError
from crossmodal.index import catalog as catalog_mod
from crossmodal.index.catalog import SCHEMA_VERSION, Catalog


def test_new_file_gets_current_schema(tmp_path: Path):
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.schema_version() == SCHEMA_VERSION
    assert cat.get_meta("schema_version") == str(SCHEMA_VERSION)
    cat.close()
    assert Catalog(tmp_path / "c.sqlite").schema_version() == SCHEMA_VERSION  # idempotent


def test_newer_schema_is_refused(tmp_path: Path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    cat.close()
    with pytest.raises(CollectionError, match="newer crossmodal"):
        Catalog(tmp_path / "c.sqlite")


def test_migrations_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    Catalog(tmp_path / "c.sqlite").close()
    seen: list[int] = []

    def to_v2(con: sqlite3.Connection) -> None:
        seen.append(2)
        con.execute("ALTER TABLE images ADD COLUMN rating INTEGER")

    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(catalog_mod, "MIGRATIONS", [*catalog_mod.MIGRATIONS, to_v2])
    cat = Catalog(tmp_path / "c.sqlite")
    assert seen == [2] and cat.schema_version() == SCHEMA_VERSION + 1
    cols = [r[1] for r in cat._con.execute("PRAGMA table_info(images)")]
    assert "rating" in cols


def test_not_a_catalogue(tmp_path: Path):
    (tmp_path / "c.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(CollectionError):
        Catalog(tmp_path / "c.sqlite")


def test_rows_vectors_and_rollback(tmp_path: Path):
    cat = Catalog(tmp_path / "c.sqlite")
    root = cat.add_root("/photos")
    vec = np.arange(4, dtype=np.float32)
    with cat.transaction():
        image_id = cat.insert_image(root, "a/b.jpg", "h1", 10, 123, 64, 48, vec)
        cat.add_texts(image_id, "caption", ["x", "y"], np.ones((2, 4), np.float32))
        cat.bump_generation("images")
    with pytest.raises(RuntimeError), cat.transaction():
        cat.insert_image(root, "c.jpg", "h2", 10, 123, 64, 48, vec)
        cat.bump_generation("images")
        raise RuntimeError("killed")
    assert cat.count("images") == 1 and cat.generation("images") == 1
    gen, ids, vectors = cat.load_vectors("images", 4)
    assert gen == 1 and list(ids) == [image_id]
    np.testing.assert_array_equal(vectors[0], vec)
    assert cat.texts_of([image_id], "caption") == {image_id: ["x", "y"]}
    assert cat.images_under(root, "a")["a/b.jpg"]["hash"] == "h1"
    assert cat.images_under(root, "b") == {}
    assert len(cat.delete_images([image_id])) == 2
    assert cat.count("texts") == 0
