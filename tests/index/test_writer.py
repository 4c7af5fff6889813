"""The writer lock (one writer, a second one refused by type) and a new collection's folder.

The store cache is tested through `Collection` (tests/test_collection.py: caches rebuilt from
the catalogue; tests/index/test_kill.py: a killed run's files)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from crossmodal.errors import CollectionBusy, CollectionError
from crossmodal.index.writer import WriterLock, make_folder, remove_new_collection


def test_one_writer_and_reentrant(tmp_path: Path) -> None:
    first = WriterLock(tmp_path, threading.RLock())
    second = WriterLock(tmp_path, threading.RLock())
    with first.hold():
        with first.hold():  # the same object again: reentrant
            assert first.depth == 2
        with (
            pytest.raises(CollectionBusy, match="being changed by another process"),
            second.hold(),
        ):
            pass
        assert not second.try_acquire()
    assert first.depth == 0
    with second.hold():  # released: the next writer gets it
        assert second.depth == 1


def test_read_only_folder_is_not_busy(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "missing", threading.RLock())
    with pytest.raises(CollectionError, match="read-only") as caught, lock.hold():
        pass
    assert not isinstance(caught.value, CollectionBusy)


def test_make_folder_and_remove_what_it_made(tmp_path: Path) -> None:
    made = make_folder(tmp_path / "a" / "b")
    assert made == [tmp_path / "a", tmp_path / "a" / "b"]
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "lock"):
        (tmp_path / "a" / "b" / name).write_text("x")
    remove_new_collection(tmp_path / "a" / "b", ["catalog.sqlite"], made)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(CollectionError, match="it is a file"):
        make_folder(tmp_path / "file")


def test_remove_keeps_folders_with_other_files(tmp_path: Path) -> None:
    made = make_folder(tmp_path / "c")
    (tmp_path / "c" / "catalog.sqlite").write_text("x")
    (tmp_path / "c" / "mine.txt").write_text("keep")
    remove_new_collection(tmp_path / "c", ["catalog.sqlite"], made)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["mine.txt"]
