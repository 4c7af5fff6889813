"""The folder diff of an index run: what the files on disk mean for the catalogue's rows.

`plan_sync` is pure (given a hash function): it compares the image files a scan found with the
rows and remembered failures of the same folder and says what to embed, what moved (same size
and content, another path: re-pathed without embedding), what changed only in its timestamps,
what is gone, and which failures are stale. `Collection.index` carries the plan out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crossmodal.index.catalog import Catalog, FailureRow, ImageRow
from crossmodal.index.results import IndexFailure
from crossmodal.index.scan import DiskFile

__all__ = ["FileJob", "SyncPlan", "plan_sync", "root_for", "unread_prefixes"]

#: paths -> SHA-1 of their bytes (files that cannot be read left out): `scan.hash_files`
HashFiles = Callable[[Sequence[Path]], Mapping[Path, str]]


@dataclass
class FileJob:
    """A file to embed (or re-path): where it is and its stat at the scan."""

    relpath: str
    path: Path
    size: int
    mtime_ns: int
    image_id: int | None = None  # set when the file replaces an indexed version


@dataclass
class SyncPlan:
    #: files to embed, by relpath: new ones, and changed ones (with the `image_id` they replace)
    embed: list[FileJob] = field(default_factory=list)
    #: (file at its new path, the row it is): same size and content, another path
    moves: list[tuple[FileJob, ImageRow]] = field(default_factory=list)
    #: (file, row): a new size or mtime but the same content: only the stat is updated
    touched: list[tuple[FileJob, ImageRow]] = field(default_factory=list)
    #: ids of rows whose file is gone
    gone: list[int] = field(default_factory=list)
    #: files that failed on an earlier run and are unchanged (not retried)
    remembered: list[IndexFailure] = field(default_factory=list)
    #: relpaths of remembered failures whose file is no longer there
    stale_failures: list[str] = field(default_factory=list)
    #: rows whose file is the same (size and mtime)
    unchanged: int = 0


def unread_prefixes(skipped: Iterable[IndexFailure], root: Path) -> tuple[str, ...]:
    """ "relpath/" of each folder under `root` the scan could not list (its rows are kept)."""
    return tuple(
        (Path(f.path).relative_to(root).as_posix() + "/").removeprefix("./")
        for f in skipped
        if f.reason.startswith("cannot read folder") and Path(f.path).is_relative_to(root)
    )


def plan_sync(
    rows: Mapping[str, ImageRow],
    files: Mapping[str, DiskFile],
    hash_files: HashFiles,
    failures: Mapping[str, FailureRow] | None = None,
    *,
    retry_failed: bool = False,
    unread: tuple[str, ...] = (),
    still_on_disk: Callable[[str], bool] | None = None,
) -> SyncPlan:
    """What to do to bring `rows` (relpath -> catalogue row) up to date with `files` (relpath
    -> (path, size, mtime_ns) found by the scan).

    `failures`: remembered failures by relpath; `unread`: folder prefixes the scan could not
    list (their rows stay); `still_on_disk`: for a partial run (`index(only=...)`), whether a
    row's file exists although the scan did not look at it (then it is not gone, and no
    failure is stale). Only files that may have moved or changed are hashed.
    """
    failures = failures or {}
    plan = SyncPlan()
    new: list[FileJob] = []
    stat_changed: list[tuple[FileJob, ImageRow]] = []
    for rel, (path, size, mtime_ns) in files.items():
        job = FileJob(rel, path, size, mtime_ns)
        row = rows.get(rel)
        if row is not None:
            if row["size"] == size and row["mtime_ns"] == mtime_ns:
                plan.unchanged += 1
            else:
                stat_changed.append((job, row))
            continue
        failed = failures.get(rel)
        if (
            failed is not None
            and not retry_failed
            and (failed["size"], failed["mtime_ns"]) == (size, mtime_ns)
        ):
            plan.remembered.append(IndexFailure(str(path), failed["reason"], True))
            continue
        new.append(job)

    missing = [
        row
        for rel, row in rows.items()
        if rel not in files
        and not (unread and (rel + "/").startswith(unread))
        and (still_on_disk is None or not still_on_disk(rel))
    ]
    # a moved file has the same size and hash as a missing row: hash only those
    by_size: dict[int, list[ImageRow]] = {}
    for row in missing:
        by_size.setdefault(row["size"], []).append(row)
    candidates = [j for j in new if j.size in by_size]
    digests = hash_files([j.path for j in candidates] + [j.path for j, _ in stat_changed])
    for job in candidates:
        digest = digests.get(job.path)
        same = [r for r in by_size[job.size] if digest is not None and r["hash"] == digest]
        if same:
            by_size[job.size].remove(same[0])
            plan.moves.append((job, same[0]))
    moved_paths = {job.relpath for job, _ in plan.moves}
    plan.embed = [j for j in new if j.relpath not in moved_paths]
    for job, row in stat_changed:
        if digests.get(job.path) == row["hash"]:
            plan.touched.append((job, row))
        else:
            job.image_id = row["id"]
            plan.embed.append(job)
    plan.embed.sort(key=lambda j: j.relpath)
    moved_ids = {row["id"] for _, row in plan.moves}
    plan.gone = [row["id"] for row in missing if row["id"] not in moved_ids]
    if still_on_disk is None:
        plan.stale_failures = [rel for rel in failures if rel not in files]
    return plan


def root_for(catalog: Catalog, folder: Path) -> tuple[int, str]:
    """(root id, path prefix inside it) for an indexed folder, in one transaction.

    A folder inside an indexed root belongs to that root (no second copy of its photos);
    a folder holding indexed roots absorbs them (their rows are re-pathed, not re-embedded).
    """
    with catalog.transaction():
        roots = catalog.roots()
        containing = [(rid, Path(r)) for rid, r in roots.items() if folder.is_relative_to(Path(r))]
        if containing:
            root_id, top = min(containing, key=lambda item: len(item[1].parts))
            prefix = "" if folder == top else folder.relative_to(top).as_posix()
        else:
            root_id, top, prefix = catalog.add_root(str(folder)), folder, ""
        for child_id, child in roots.items():
            child_path = Path(child)
            if child_id != root_id and child_path.is_relative_to(top):
                dropped = catalog.merge_root(
                    child_id, root_id, child_path.relative_to(top).as_posix()
                )
                if dropped:  # duplicates of rows the parent has: their vectors went too
                    for table in ("images", "texts"):
                        catalog.bump_generation(table)
    return root_id, prefix
