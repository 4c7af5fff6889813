"""Automatic descriptions in a collection: tags, breed tags and automatic captions.

At index time (`Collection.index(..., describe=...)`) the image tower's pooled features of
each batch are handed to `models/tagger.AutoDescriber` and its descriptions stored with
`ingest.describe_images`, right after the batch's images are committed. For a collection
indexed before (or with tags off), `describe_all` computes the features again from the files
(through the feature cache: a file whose features are cached is not decoded) and stores the
same descriptions, one committed batch at a time. It resumes where it stopped: the catalogue
meta key `autodescribe_through` holds the largest image id it finished, and index runs that
describe every new image keep it up to date, so a second `--describe` only does new work.
The writer lock is held by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crossmodal.index.catalog import Catalog
from crossmodal.index.descriptions import Description
from crossmodal.index.ingest import DescribeHook, describe_images
from crossmodal.index.writer import StoreCache, VectorChanges
from crossmodal.models.base import Encoder
from crossmodal.models.tagger import AutoDescriber, TagSettings, supports_tags

__all__ = [
    "GENERATED_SOURCES",
    "WATERMARK_KEY",
    "AutoDescribeMethods",
    "DescribeReport",
    "clear_generated",
    "describe_all",
    "index_describing",
    "make_describer",
    "store_generated",
]

#: (kind, source) of every description the generators write
GENERATED_SOURCES: tuple[tuple[str, str], ...] = (
    ("tag", "imagenet"),
    ("tag", "breed"),
    ("auto_caption", "captioner"),
)
WATERMARK_KEY = "autodescribe_through"


@dataclass
class DescribeReport:
    """What `describe_all` did."""

    images: int = 0  # images looked at this run
    described: int = 0  # descriptions stored
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"described {self.images} images: {self.described} automatic descriptions "
            f"in {self.seconds:.1f} s"
        )
        if self.failed:
            text += f"; {len(self.failed)} files could not be read"
        return text


def clear_generated(catalog: Catalog, stores: StoreCache, image_ids: Sequence[int]) -> int:
    """Drop the generated descriptions of these images (a changed photo's old tags);
    returns how many went."""
    if not image_ids:
        return 0
    stores.load("texts")
    changes = VectorChanges()
    with catalog.transaction():
        for image_id in image_ids:
            for kind, source in GENERATED_SOURCES:
                changes.removed["texts"] += catalog.delete_texts(int(image_id), kind, source)
        changes.bump(catalog)
    stores.apply(changes)
    return len(changes.removed["texts"])


def store_generated(
    catalog: Catalog,
    stores: StoreCache,
    describer: AutoDescriber,
    image_ids: Sequence[int],
    features: np.ndarray,
    replacing: Sequence[int] = (),
) -> int:
    """Describe images from their pooled features and store it (one transaction); `replacing`:
    ids whose earlier generated descriptions go first. Returns descriptions stored."""
    clear_generated(catalog, stores, replacing)
    found = describer.describe(features)
    items: dict[int, Sequence[Description]] = {
        int(i): d for i, d in zip(image_ids, found, strict=True) if d
    }
    stored = describe_images(catalog, stores, describer.encode_texts, items, replace=True)
    return sum(len(ids) for ids in stored.values())


def watermark(catalog: Catalog) -> int:
    try:
        return int(catalog.get_meta(WATERMARK_KEY) or 0)
    except ValueError:
        return 0


def all_described_before(catalog: Catalog) -> bool:
    """True when every image now in the catalogue has been through the generators (an index
    run that describes its new images may then move the watermark past them)."""
    ids = catalog.ids("images")
    return not len(ids) or int(ids.max()) <= watermark(catalog)


def advance_watermark(catalog: Catalog) -> None:
    ids = catalog.ids("images")
    if len(ids):
        catalog.set_meta(WATERMARK_KEY, str(int(ids.max())))


def describe_all(
    catalog: Catalog,
    stores: StoreCache,
    describer: AutoDescriber,
    batch_size: int = 64,
    redo: bool = False,
    show_progress: bool = False,
    cache_dir: str | Path | None = None,
) -> DescribeReport:
    """Describe the images not described yet (all of them with `redo`), a batch at a time."""
    import time

    from crossmodal.models.features import default_cache_dir, embed_image_files

    started = time.perf_counter()
    report = DescribeReport()
    if redo:
        catalog.set_meta(WATERMARK_KEY, "0")
    ids = [int(i) for i in np.sort(catalog.ids("images")) if i > watermark(catalog)]
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    roots = catalog.roots()
    bar = tqdm(total=len(ids), desc="describing", unit="img", disable=not show_progress)
    try:
        for start in range(0, len(ids), max(1, batch_size)):
            chunk = ids[start : start + max(1, batch_size)]
            rows = catalog.get_images(chunk)
            present = [i for i in chunk if i in rows]
            paths = [Path(roots[rows[i]["root_id"]]) / rows[i]["relpath"] for i in present]
            result = embed_image_files(
                describer.model, paths, cache, show_progress=False, features_only=True
            )
            report.failed += [(str(p), why) for p, why in result.failures]
            good = [i for i, ok in zip(present, result.ok, strict=True) if ok]
            report.described += store_generated(
                catalog, stores, describer, good, result.vectors, replacing=good
            )
            report.images += len(chunk)
            catalog.set_meta(WATERMARK_KEY, str(chunk[-1]))
            bar.update(len(chunk))
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def make_describer(model: Encoder, describe: bool | TagSettings) -> AutoDescriber | None:
    """The describer an index run uses: None when off, or (asked for by default) when the
    model has no ImageNet classifier; a model that cannot do what was asked explicitly (e.g.
    automatic captions from a CLIP model) raises ModelNotAvailable."""
    if describe is False:
        return None
    if describe is True:
        return AutoDescriber(model) if supports_tags(model) else None
    return AutoDescriber(model, describe)


@contextmanager
def index_describing(
    catalog: Catalog, stores: StoreCache, model: Encoder, describe: bool | TagSettings
) -> Iterator[DescribeHook | None]:
    """The hook an index run hands `ingest.embed_files` (None: no descriptions). When every
    image so far had been described, a run that completes moves the watermark past its new
    images, so `describe_all` does not look at them again."""
    describer = make_describer(model, describe)
    if describer is None:
        yield None
        return
    in_step = all_described_before(catalog)
    yield partial(store_generated, catalog, stores, describer)
    if in_step:
        advance_watermark(catalog)


class AutoDescribeMethods:
    """`Collection.describe_all`: a mixin (Collection provides the catalogue, the stores, the
    model and the writer lock)."""

    catalog: Catalog
    stores: StoreCache

    @property
    def model(self) -> Encoder:
        raise NotImplementedError  # Collection's

    def _writing(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # Collection's

    def describe_all(
        self,
        batch_size: int = 64,
        redo: bool = False,
        auto_captions: bool = False,
        show_progress: bool = True,
    ) -> DescribeReport:
        """Store automatic tags (and with `auto_captions` captions) for the images not yet
        described, e.g. indexed before tags existed; resumable, `redo` starts over."""
        describer = AutoDescriber(self.model, TagSettings(captions=auto_captions))
        with self._writing():
            report = describe_all(
                self.catalog, self.stores, describer, batch_size, redo, show_progress
            )
            self.stores.save()
        return report
