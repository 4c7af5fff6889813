"""Damaged files (issue 19): a FAISS cache with random bytes over a quarter of it (same length)
is caught by its checksum and rebuilt; a catalogue with garbage pages mid-file gives one line
naming it and `crossmodal check --repair`, which keeps every readable row."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmodal import Collection
from crossmodal.cli import app
from crossmodal.errors import CollectionError
from crossmodal.index.store import FlatIPStore
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


def scribble(path: Path, start: int, length: int, seed: int = 0) -> None:
    """Random bytes over [start, start + length) of a file; its length stays the same."""
    size = path.stat().st_size
    noise = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(noise)
    assert path.stat().st_size == size


def indexed(tmp_path: Path, count: int) -> Path:
    photos = tmp_path / "photos"
    make_photos(photos, count)
    col = tmp_path / "col"
    model = str(tiny_model_dir(0))
    result = runner.invoke(app, ["index", str(photos), "-c", str(col), "-m", model, "-q"])
    assert result.exit_code == 0, result.output
    return col


def test_a_scribbled_faiss_cache_is_detected_and_rebuilt(tmp_path: Path):
    col = indexed(tmp_path, 8)
    (cache,) = col.glob("images.*.faiss")
    size = cache.stat().st_size
    scribble(cache, size // 2, size // 4)
    with pytest.raises(CollectionError, match="checksum"):
        FlatIPStore.load(cache)
    check = runner.invoke(app, ["check", "-c", str(col)])
    assert check.exit_code == 4 and "checksum" in check.stdout, check.output
    with Collection.open(col) as c:
        hits = c.search(text="a striped card", k=8)
        assert len(hits) == 8 and max(h.score for h in hits) <= 1.0001
        assert len({h.id for h in hits}) == 8
    assert FlatIPStore.load(next(col.glob("images.*.faiss"))).ids().size == 8  # saved again
    assert runner.invoke(app, ["check", "-c", str(col)]).exit_code == 0


def test_check_repair_rebuilds_a_cache_that_disagrees(tmp_path: Path):
    col = indexed(tmp_path, 4)
    (cache,) = col.glob("images.*.faiss")
    store = FlatIPStore.load(cache)
    store.remove([int(store.ids()[0])])
    store.save(cache)  # a valid file, with a row too few
    check = runner.invoke(app, ["check", "-c", str(col)])
    assert check.exit_code == 4 and "ids" in check.stdout
    fixed = runner.invoke(app, ["check", "-c", str(col), "--repair"])
    assert fixed.exit_code == 0, fixed.output
    assert FlatIPStore.load(next(col.glob("images.*.faiss"))).ids().size == 4


def test_a_damaged_catalogue_is_one_line_and_repair_keeps_what_it_can(tmp_path: Path):
    col = indexed(tmp_path, 60)
    db = col / "catalog.sqlite"
    assert not (col / "catalog.sqlite-wal").exists() or os.path.getsize(f"{db}-wal") == 0
    pages = db.stat().st_size // 4096
    scribble(db, (pages // 2) * 4096, 3 * 4096)
    for command in (["stats"], ["index", str(tmp_path / "photos")]):
        result = runner.invoke(app, [*command, "-c", str(col)])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert f"catalogue {db} is damaged" in line and "crossmodal check" in line
        assert "Traceback" not in result.output
    check = runner.invoke(app, ["check", "-c", str(col)])
    assert check.exit_code == 4 and "--repair" in check.stderr
    repaired = runner.invoke(app, ["check", "-c", str(col), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "images kept" in repaired.stdout
    assert runner.invoke(app, ["check", "-c", str(col)]).exit_code == 0
    again = runner.invoke(app, ["index", str(tmp_path / "photos"), "-c", str(col), "-q"])
    assert again.exit_code == 0, again.output
    with Collection.open(col) as c:
        hits = c.search(text="x", k=100)
        assert len(hits) == 60 and len({h.path for h in hits}) == 60  # each image once
