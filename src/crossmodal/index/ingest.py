"""Embedding files and captions into a collection, one committed transaction per batch.

Each batch's rows and vectors are committed together (so a run killed at any moment resumes
where it stopped), and then applied to the loaded vector stores (`StoreCache.apply`).
The writer lock is held by the caller (`Collection.index`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crossmodal.data import read_captions_file
from crossmodal.index.catalog import Catalog
from crossmodal.index.descriptions import Description
from crossmodal.index.facts import facts_or_file_time, set_facts
from crossmodal.index.pipeline import LoadedImage, iter_embedded_batches
from crossmodal.index.results import IndexFailure, IndexReport
from crossmodal.index.sync import FileJob, SyncPlan
from crossmodal.index.writer import StoreCache, VectorChanges
from crossmodal.models.base import Encoder

#: (image ids, their pooled features, the ids among them that replaced a file) -> stored
DescribeHook = Callable[[list[int], np.ndarray, list[int]], int]

__all__ = [
    "CaptionMap",
    "add_annotation",
    "apply_moves",
    "describe_images",
    "embed_files",
    "forget_images",
    "read_caption_map",
    "remove_texts",
    "sync_captions",
]

#: `iter_embedded_batches`, or its Ray twin (`ray_index.ray_embedded_batches`, settings bound)
BatchSource = Callable[..., Iterator[tuple[list[LoadedImage], np.ndarray, np.ndarray]]]


def apply_moves(
    catalog: Catalog, stores: StoreCache, root_id: int, plan: SyncPlan, report: IndexReport
) -> None:
    """Moves, deletions and stat refreshes of a plan, in one transaction."""
    if plan.moves or plan.gone or plan.touched:
        stores.load(*(("images", "texts") if plan.gone else ()))
        with catalog.transaction():
            changes = VectorChanges()
            for job, row in plan.moves:
                catalog.move_image(row["id"], root_id, job.relpath, job.size, job.mtime_ns)
            for job, row in plan.touched:
                catalog.touch_image(row["id"], job.size, job.mtime_ns)
            if plan.gone:
                changes.removed["texts"] += catalog.delete_images(plan.gone)
                changes.removed["images"] += plan.gone
            changes.bump(catalog)
        stores.apply(changes)
    report.moved, report.removed = len(plan.moves), len(plan.gone)
    report.unchanged += plan.unchanged + len(plan.touched)
    if plan.stale_failures:
        catalog.clear_failures(root_id, plan.stale_failures)


def embed_files(
    catalog: Catalog,
    stores: StoreCache,
    model: Encoder,
    root_id: int,
    jobs: list[FileJob],
    caption_map: CaptionMap | None,
    batch_size: int,
    show_progress: bool,
    report: IndexReport,
    batches_of: BatchSource = iter_embedded_batches,
    describe: DescribeHook | None = None,
) -> None:
    """Embed `jobs` (new files, and changed ones replacing `image_id`) with their captions,
    by `batches_of` (in this process, or on Ray actors); committed here, batch by batch.
    `describe(image_ids, features, replacing)`, when given, stores each committed batch's
    automatic descriptions from the tower's pooled features (`index/autodescribe.py`)."""
    if not jobs:
        return
    stores.load("images", "texts")
    bar = tqdm(total=len(jobs), desc="indexing", unit="img", disable=not show_progress)

    def captions_of(index: int) -> list[str]:
        return caption_map.get(jobs[index].path.name, []) if caption_map is not None else []

    try:
        batches = batches_of(
            model,
            [j.path for j in jobs],
            batch_size=batch_size,
            on_progress=bar.update,
            texts_for=captions_of if caption_map is not None else None,
            keep_features=describe is not None,
        )
        for loaded, vectors, text_vecs in batches:
            ok = [x for x in loaded if x.error is None]
            # (position in ok, captions), in the order their vectors are in text_vecs
            texts = [(n, found) for n, x in enumerate(ok) if (found := captions_of(x.index))]
            changes = VectorChanges()
            with catalog.transaction():
                owner = _commit_images(catalog, root_id, jobs, ok, vectors, changes, report)
                start = 0
                for n, found in texts:
                    vecs = text_vecs[start : start + len(found)]
                    start += len(found)
                    source = caption_map.source if caption_map is not None else None
                    _replace_captions(catalog, owner[n], found, vecs, changes, source)
                    report.captions += len(found)
                if ok:
                    catalog.clear_failures(root_id, [jobs[x.index].relpath for x in ok])
                _record_failures(catalog, root_id, jobs, loaded, changes, report)
                changes.bump(catalog)
            stores.apply(changes)
            kept = [n for n, x in enumerate(ok) if x.features is not None]
            if describe is not None and kept:
                started = time.perf_counter()
                report.described += describe(
                    [owner[n] for n in kept],
                    np.stack([ok[n].features for n in kept]),  # type: ignore[misc]  # kept: not None
                    [owner[n] for n in kept if jobs[ok[n].index].image_id is not None],
                )
                report.describe_seconds += time.perf_counter() - started
    finally:
        bar.close()


def _commit_images(
    catalog: Catalog,
    root_id: int,
    jobs: list[FileJob],
    ok: Sequence[LoadedImage],
    vectors: np.ndarray,
    changes: VectorChanges,
    report: IndexReport,
) -> dict[int, int]:
    """Insert (or replace) the rows of the decoded files; returns position in ok -> image id."""
    owner: dict[int, int] = {}
    for n, x in enumerate(ok):
        job = jobs[x.index]
        assert x.digest is not None
        if job.image_id is not None:
            catalog.replace_image(
                job.image_id, x.digest, job.size, job.mtime_ns, x.width, x.height, vectors[n]
            )
            image_id = job.image_id
            changes.removed["images"].append(image_id)
            report.updated += 1
        else:
            image_id = catalog.insert_image(
                root_id, job.relpath, x.digest, job.size, job.mtime_ns, x.width, x.height,
                vectors[n],
            )  # fmt: skip
            report.added += 1
        owner[n] = image_id
        changes.add("images", image_id, vectors[n])
    set_facts(catalog, [(owner[n], facts_or_file_time(x, jobs)) for n, x in enumerate(ok)])
    return owner


class CaptionMap(dict[str, list[str]]):
    """Captions by image file name, and the captions file they came from (each caption's
    source in the catalogue)."""

    source: str | None = None


def read_caption_map(path: str | Path | None) -> CaptionMap | None:
    """The captions of a captions file (see `crossmodal.data.read_captions_file`), or None."""
    if path is None:
        return None
    found = CaptionMap(read_captions_file(path))
    found.source = Path(path).name
    return found


def _replace_captions(
    catalog: Catalog,
    image_id: int,
    texts: list[str],
    vecs: np.ndarray,
    changes: VectorChanges,
    source: str | None,
) -> None:
    changes.removed["texts"] += catalog.delete_texts(image_id, "caption")
    added = catalog.add_texts(image_id, "caption", texts, vecs, source)
    for text_id, vec in zip(added, vecs, strict=True):
        changes.add("texts", text_id, vec)


def _record_failures(
    catalog: Catalog,
    root_id: int,
    jobs: list[FileJob],
    loaded: Sequence[LoadedImage],
    changes: VectorChanges,
    report: IndexReport,
) -> None:
    """Remember the files that failed to decode (and drop the rows of their old versions)."""
    for x in loaded:
        if x.error is None:
            continue
        job = jobs[x.index]
        if job.image_id is not None:  # the new version of an indexed file is bad
            changes.removed["texts"] += catalog.delete_images([job.image_id])
            changes.removed["images"].append(job.image_id)
            report.removed += 1
        catalog.set_failure(root_id, job.relpath, job.size, job.mtime_ns, x.error)
        report.failed.append(IndexFailure(str(job.path), x.error))


def sync_captions(
    catalog: Catalog,
    stores: StoreCache,
    model: Callable[[], Encoder],
    rows_of_folder: dict[str, int],
    caption_map: CaptionMap,
    batch_size: int,
    report: IndexReport,
    show_progress: bool,
) -> None:
    """Give already-indexed images (relpath -> id) the captions the file lists for them, if
    they differ."""
    have = catalog.texts_of(list(rows_of_folder.values()), "caption")
    todo = [
        (image_id, caption_map[name])
        for rel, image_id in rows_of_folder.items()
        if (name := rel.rsplit("/", 1)[-1]) in caption_map
        and have.get(image_id, []) != caption_map[name]
    ]
    if not todo:
        return
    per_batch = max(1, batch_size)
    encoder = model()  # loaded before the first transaction, not inside it
    stores.load("texts")
    bar = tqdm(total=len(todo), desc="captions", unit="img", disable=not show_progress)
    for start in range(0, len(todo), per_batch):
        chunk = todo[start : start + per_batch]
        vectors = encoder.encode_texts([t for _, ts in chunk for t in ts])
        changes = VectorChanges()
        with catalog.transaction():
            offset = 0
            for image_id, found in chunk:
                vecs = vectors[offset : offset + len(found)]
                _replace_captions(catalog, image_id, found, vecs, changes, caption_map.source)
                offset += len(found)
                report.captions += len(found)
            changes.bump(catalog)
        stores.apply(changes)
        bar.update(len(chunk))
    bar.close()


def forget_images(catalog: Catalog, stores: StoreCache, ids: list[int]) -> None:
    """Delete these images' rows and texts, and their vectors from the stores (lock held)."""
    stores.load("images", "texts")
    changes = VectorChanges()
    with catalog.transaction():
        changes.removed["texts"] += catalog.delete_images(ids)
        changes.removed["images"] += ids
        changes.bump(catalog)
    stores.apply(changes)


def add_annotation(
    catalog: Catalog, stores: StoreCache, image_id: int, text: str, vector: np.ndarray
) -> int:
    """Attach a text and its vector to an image (lock held); returns the text's id."""
    stores.load("texts")
    changes = VectorChanges()
    with catalog.transaction():
        (text_id,) = catalog.add_texts(image_id, "annotation", [text], vector[None])
        changes.add("texts", text_id, vector)
        changes.bump(catalog)
    stores.apply(changes)
    return text_id


def describe_images(
    catalog: Catalog,
    stores: StoreCache,
    encode: Callable[[list[str]], np.ndarray],
    items: Mapping[int, Sequence[Description]],
    replace: bool = True,
) -> dict[int, list[int]]:
    """Store descriptions of images (lock held), their texts embedded by `encode` in one
    batch; returns image id -> the new texts' ids. `replace`: an image's earlier texts of the
    same (kind, source) go first, so running a tagger again leaves one set of its tags.

    What an index-time generator (tags, breeds, the captioner) calls, inside
    `Collection.index`; outside it, `Collection.describe`."""
    todo = {int(i): list(found) for i, found in items.items() if found}
    if not todo:
        return {}
    texts = [d.text for found in todo.values() for d in found]
    vectors = np.asarray(encode(texts), np.float32)
    stores.load("texts")
    changes = VectorChanges()
    out: dict[int, list[int]] = {}
    with catalog.transaction():
        offset = 0
        for image_id, found in todo.items():
            if replace:
                for kind, source in dict.fromkeys((d.kind, d.source) for d in found):
                    changes.removed["texts"] += catalog.delete_texts(image_id, kind, source)
            part = vectors[offset : offset + len(found)]
            offset += len(found)
            out[image_id] = catalog.add_descriptions(image_id, found, part)
            for text_id, vec in zip(out[image_id], part, strict=True):
                changes.add("texts", text_id, vec)
        changes.bump(catalog)
    stores.apply(changes)
    return out


def remove_texts(
    catalog: Catalog, stores: StoreCache, image_id: int, text_ids: Sequence[int]
) -> list[int]:
    """Delete these texts of one image and their vectors (lock held); returns those deleted."""
    stores.load("texts")
    changes = VectorChanges()
    with catalog.transaction():
        changes.removed["texts"] += catalog.delete_text_ids(image_id, text_ids)
        changes.bump(catalog)
    stores.apply(changes)
    return changes.removed["texts"]
