"""plan_sync: the folder diff of an index run, without a model, a catalogue or files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from crossmodal.index.catalog import FailureRow, ImageRow
from crossmodal.index.results import IndexFailure
from crossmodal.index.sync import plan_sync, unread_prefixes

ROOT = Path("/photos")


def row(image_id: int, rel: str, size: int, mtime: int, digest: str) -> ImageRow:
    return ImageRow(
        id=image_id, root_id=1, relpath=rel, hash=digest, size=size, mtime_ns=mtime,
        width=8, height=8, indexed_at=0.0,
    )  # fmt: skip


def disk(**files: tuple[int, int]) -> dict[str, tuple[Path, int, int]]:
    """relpath (`__` for `/`) -> (size, mtime)."""
    out = {}
    for name, (size, mtime) in files.items():
        rel = name.replace("__", "/") + ".jpg"
        out[rel] = (ROOT / rel, size, mtime)
    return out


def fail(rel: str, size: int, mtime_ns: int) -> FailureRow:
    return FailureRow(
        root_id=1, relpath=rel, size=size, mtime_ns=mtime_ns, reason="empty file", failed_at=0.0
    )


class Hashes:
    """A fake content hash by path, recording what was hashed."""

    def __init__(self, digests: Mapping[str, str]) -> None:
        self.digests = digests
        self.asked: list[str] = []

    def __call__(self, paths: Sequence[Path]) -> dict[Path, str]:
        self.asked += [p.relative_to(ROOT).as_posix() for p in paths]
        return {
            p: self.digests[p.relative_to(ROOT).as_posix()]
            for p in paths
            if p.relative_to(ROOT).as_posix() in self.digests
        }


def test_new_unchanged_changed_touched_gone_and_moved() -> None:
    rows = {
        "same.jpg": row(1, "same.jpg", 10, 1, "h-same"),
        "edited.jpg": row(2, "edited.jpg", 20, 1, "h-old"),
        "touched.jpg": row(3, "touched.jpg", 30, 1, "h-touched"),
        "deleted.jpg": row(4, "deleted.jpg", 40, 1, "h-deleted"),
        "old/place.jpg": row(5, "old/place.jpg", 50, 1, "h-moved"),
    }
    files = disk(same=(10, 1), edited=(21, 2), touched=(30, 9), new=(60, 1), new__place=(50, 3))
    hashes = Hashes({"edited.jpg": "h-new", "touched.jpg": "h-touched", "new/place.jpg": "h-moved"})
    plan = plan_sync(rows, files, hashes)
    assert plan.unchanged == 1
    assert [(j.relpath, j.image_id) for j in plan.embed] == [("edited.jpg", 2), ("new.jpg", None)]
    assert [(j.relpath, r["id"]) for j, r in plan.touched] == [("touched.jpg", 3)]
    assert [(j.relpath, r["id"]) for j, r in plan.moves] == [("new/place.jpg", 5)]
    assert plan.gone == [4]
    # only what may have moved (a new file of a missing row's size) or changed is hashed
    assert sorted(hashes.asked) == ["edited.jpg", "new/place.jpg", "touched.jpg"]


def test_same_size_other_content_is_not_a_move() -> None:
    rows = {"a.jpg": row(1, "a.jpg", 10, 1, "h-a")}
    plan = plan_sync(rows, disk(b=(10, 1)), Hashes({"b.jpg": "h-b"}))
    assert [j.relpath for j in plan.embed] == ["b.jpg"] and not plan.moves
    assert plan.gone == [1]


def test_two_copies_of_one_missing_file_move_once() -> None:
    rows = {"a.jpg": row(1, "a.jpg", 10, 1, "h")}
    plan = plan_sync(rows, disk(b=(10, 1), c=(10, 1)), Hashes({"b.jpg": "h", "c.jpg": "h"}))
    assert len(plan.moves) == 1 and len(plan.embed) == 1 and plan.gone == []


def test_remembered_failures_are_skipped_until_changed_or_retried() -> None:
    failures = {
        "bad.jpg": fail("bad.jpg", size=5, mtime_ns=1),
        "fixed.jpg": fail("fixed.jpg", size=5, mtime_ns=1),
        "gone.jpg": fail("gone.jpg", size=5, mtime_ns=1),
    }
    files = disk(bad=(5, 1), fixed=(6, 2))
    plan = plan_sync({}, files, Hashes({}), failures)
    assert [f.path for f in plan.remembered] == [str(ROOT / "bad.jpg")]
    assert plan.remembered[0].remembered and plan.remembered[0].reason == "empty file"
    assert [j.relpath for j in plan.embed] == ["fixed.jpg"]
    assert plan.stale_failures == ["gone.jpg"]
    retried = plan_sync({}, files, Hashes({}), failures, retry_failed=True)
    assert [j.relpath for j in retried.embed] == ["bad.jpg", "fixed.jpg"]


def test_unread_folders_keep_their_rows() -> None:
    rows = {
        "locked/a.jpg": row(1, "locked/a.jpg", 10, 1, "h1"),
        "open/b.jpg": row(2, "open/b.jpg", 10, 1, "h2"),
    }
    skipped = [
        IndexFailure(str(ROOT / "locked"), "cannot read folder: Permission denied"),
        IndexFailure(str(ROOT / "x.jpg"), "dangling symlink: its target y does not exist"),
    ]
    unread = unread_prefixes(skipped, ROOT)
    assert unread == ("locked/",)
    assert plan_sync(rows, {}, Hashes({}), unread=unread).gone == [2]


def test_a_partial_run_keeps_rows_still_on_disk() -> None:
    rows = {"a.jpg": row(1, "a.jpg", 10, 1, "h1"), "b.jpg": row(2, "b.jpg", 10, 1, "h2")}
    failures = {"c.jpg": fail("c.jpg", size=1, mtime_ns=1)}
    plan = plan_sync(
        rows, disk(a=(10, 1)), Hashes({}), failures, still_on_disk=lambda rel: rel == "b.jpg"
    )
    assert plan.gone == [] and plan.unchanged == 1 and plan.stale_failures == []
    plan = plan_sync(rows, disk(a=(10, 1)), Hashes({}), still_on_disk=lambda rel: False)
    assert plan.gone == [2]


def test_nothing_on_disk_and_nothing_indexed_is_an_empty_plan() -> None:
    plan = plan_sync({}, {}, Hashes({}))
    assert (plan.embed, plan.moves, plan.touched, plan.gone, plan.unchanged) == ([], [], [], [], 0)
