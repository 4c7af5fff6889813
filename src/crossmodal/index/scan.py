"""Walking an indexed folder: the image files under it, what was skipped and why, and hashing.

Nothing here touches the catalogue: `crossmodal.index.sync.plan_sync` compares what this finds
with the catalogue's rows.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from crossmodal.data import is_image_file
from crossmodal.errors import CollectionError
from crossmodal.index.pipeline import file_sha1
from crossmodal.index.results import IndexFailure

__all__ = ["DiskFile", "hash_files", "scan_folder"]

#: relpath (to the root, posix) -> (path, size, mtime_ns) of an image file on disk
DiskFile = tuple[Path, int, int]


def hash_files(paths: Sequence[Path]) -> dict[Path, str]:
    """path -> SHA-1 of its bytes (files that cannot be read are left out)."""
    if not paths:
        return {}

    def one(p: Path) -> tuple[Path, str | None]:
        try:
            return p, file_sha1(p)
        except OSError:
            return p, None

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="hash") as pool:
        return {p: d for p, d in pool.map(one, paths) if d is not None}


def scan_folder(
    folder: Path, root: Path, only: set[str] | None, show_progress: bool
) -> tuple[dict[str, DiskFile], list[IndexFailure]]:
    """(relpath (to `root`, posix) -> (path, size, mtime_ns) of the image files under `folder`,
    what was skipped and why).

    Hidden folders (.git, .thumbnails, ...) are left out; links to folders are not followed
    (they could loop) and, like dangling links, link loops and folders that cannot be read,
    are reported as skipped; files are recognised by extension (`is_image_file`).
    """
    found: dict[str, DiskFile] = {}
    skipped: list[IndexFailure] = []
    bar = tqdm(desc="scanning", unit=" files", disable=not show_progress, leave=False)

    def on_error(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else folder
        skipped.append(IndexFailure(str(where), f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error):
        base = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            sub = base / name
            if sub.is_symlink():
                if only is None:
                    skipped.append(IndexFailure(str(sub), _folder_link_reason(sub)))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if not is_image_file(name):
                continue
            path = base / name
            rel = path.relative_to(root).as_posix()
            if only is not None and name not in only and rel not in only:
                continue
            try:
                st = path.stat()
            except OSError as exc:
                skipped.append(IndexFailure(str(path), _stat_reason(path, exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(IndexFailure(str(path), "not a regular file"))
                continue
            found[rel] = (path, st.st_size, st.st_mtime_ns)
            bar.update(1)
    bar.close()
    return found, skipped


def _stat_reason(path: Path, exc: OSError) -> str:
    if path.is_symlink():
        if exc.errno == errno.ELOOP:
            return "symlink loop: the link leads back to itself"
        with contextlib.suppress(OSError):
            return f"dangling symlink: its target {os.readlink(path)} does not exist"
        return "dangling symlink: its target does not exist"
    return f"cannot read: {exc.strerror or exc}"


def _folder_link_reason(link: Path) -> str:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop, on Python < 3.13
        return "symlink loop: the link leads back to itself"
    if Path(os.path.realpath(link.parent)).is_relative_to(target):
        return f"symlink loop: it points back to {target}, a folder above it"
    return f"symlinked folder not followed: {target}"


def check_index_folder(directory: str | Path) -> Path:
    """The folder to index, made absolute; a `CollectionError` (one line, with the fix) when
    it is missing or not a folder. Check it before creating a collection for it."""
    folder = Path(directory).expanduser()
    if not folder.exists():
        raise CollectionError(
            f"{directory} is not a folder (nothing is there): give the folder of photos to index"
        )
    if not folder.is_dir():
        raise CollectionError(f"{directory} is not a folder: give the folder of photos to index")
    # as given (made absolute), not resolved: a folder reached through a link is indexed
    # under the link's path, and a link and its target are two entries
    return Path(os.path.abspath(folder))
