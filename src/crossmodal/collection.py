"""A gallery on disk: index a photo folder incrementally, search it four ways.

A collection is one folder:

    catalog.sqlite        rows of images and texts, with their vectors (the source of truth)
    images.g<N>.faiss     exact inner-product index of image vectors, as of generation N
                          (images.g<N>.ann: an approximate one, HNSW or IVF-PQ)
    texts.g<N>.faiss      the same for caption / annotation vectors
    lock                  held (flock) by the one process that is changing the collection

Vectors are committed to SQLite in the same transaction as their rows, batch by batch, and the
FAISS files are caches rebuilt whenever their generation is not the catalogue's (see
`crossmodal.index.catalog`), so an indexing run killed at any moment - even with `kill -9` -
and started again ends with every file indexed exactly once.

Search directions: t2i (text -> images), i2i (image -> images), i2t (image -> captions and
annotations), t2t (text -> captions and annotations). Queries may combine several texts and
images with weights ("a dog" + beach.jpg - "snow"); their vectors are summed and renormalised.

This module is the facade; the parts are in `crossmodal.index`: `scan` (the files under a
folder), `sync` (the pure folder diff `plan_sync`), `ingest` (batches embedded and committed),
`writer` (the writer lock and the vector stores that cache the catalogue), `query` (the query
encoder with its cache, and the one mode -> target rule), `results` (hits, reports).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crossmodal.defaults import DEFAULT_MODEL, default_collection_path, normalise_model_name
from crossmodal.errors import CollectionEmpty, CollectionError, CrossmodalError
from crossmodal.index.ann import ALL_KINDS, parse_memory
from crossmodal.index.annotations import DescriptionMethods
from crossmodal.index.autodescribe import AutoDescribeMethods, index_describing
from crossmodal.index.catalog import Catalog, ImageRow, database_error, integrity_line
from crossmodal.index.descriptions import Description
from crossmodal.index.facts import fill_missing_facts
from crossmodal.index.filters import filtered_hits
from crossmodal.index.hybrid import hybrid_hits
from crossmodal.index.ingest import (
    apply_moves,
    embed_files,
    forget_images,
    read_caption_map,
    sync_captions,
)
from crossmodal.index.query import MODES, QueryEncoder, QueryItem, direction, query_terms
from crossmodal.index.ray_index import batch_source, check_ray_settings
from crossmodal.index.results import (
    ImageRecord,
    IndexFailure,
    IndexReport,
    SearchHit,
    check_page,
    collection_stats,
    image_record,
)
from crossmodal.index.scan import check_index_folder, hash_files, scan_folder
from crossmodal.index.store import VectorStore
from crossmodal.index.sync import plan_sync, root_for, unread_prefixes
from crossmodal.index.writer import (
    TABLES,
    StoreCache,
    WriterLock,
    make_folder,
    remove_new_collection,
)
from crossmodal.models.base import Encoder
from crossmodal.models.hubness import query_columns
from crossmodal.models.tagger import TagSettings

# parse_query and Filter live in light modules: the CLI checks a query without importing torch
from crossmodal.search_filter import Filter
from crossmodal.search_options import parse_query

__all__ = [
    "MODES",
    "Collection",
    "Description",
    "ImageRecord",
    "IndexFailure",
    "IndexReport",
    "QueryItem",
    "SearchHit",
    "check_index_folder",
    "default_collection_path",
    "parse_query",
]

CATALOG_FILE = "catalog.sqlite"


# ---- the collection -----------------------------------------------------------------------
class Collection(DescriptionMethods, AutoDescribeMethods):
    """A gallery folder: open, index, search. Thread-safe for one process's readers and writer.

    Use `Collection.open(path, model=None, create=False)`. `model` is a registry name, a model
    folder or an `Encoder`; by default the model the collection was built with. A collection
    built with one model refuses another (their vectors live in different spaces).
    """

    def __init__(
        self, path: Path, catalog: Catalog, model: str | Encoder | None, rebuild: bool = False
    ) -> None:
        self.path = path
        self.catalog = catalog
        self._lock = threading.RLock()
        self._model: Encoder | None = None
        self._model_spec: str | None = None
        self._rebuild = rebuild
        #: set by `open` when it made the catalogue: the folders it made for it (all removed
        #: again if the first index run fails)
        self._created: list[Path] | None = None
        self._writer = WriterLock(path, self._lock)
        self.stores = StoreCache(path, catalog, self._writer, lambda: self.dim, self._hubness)
        #: query vectors (texts, and images by a caller's key), shared with the web service
        self.queries = QueryEncoder(lambda: self.model)
        if isinstance(model, Encoder):
            self._use_model(model)
        else:
            self._model_spec = model

    # ---- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        model: str | Encoder | None = None,
        create: bool = False,
        store: str | None = None,
        rebuild: bool = False,
        max_index_memory: str | int | None = None,
        db: str | None = None,
    ) -> Collection:
        """Open the collection at `path` (default: `default_collection_path()`), or the one
        in PostgreSQL database `db` ("postgresql://user@host/database": index/pg_collection.py).

        `create=True` makes it if missing. `store` picks the vector store of a new collection:
        "auto" (the default: exact while that is fast, then the fastest approximate store that
        keeps recall@10 >= 0.95 and fits `max_index_memory`, by the thresholds of
        benchmarks/scale.py), "flat" (exact fp32), "flat-fp16" (every vector scanned, half
        the memory and about twice the speed per query, scores within ~1e-4), "hnsw",
        "hnsw-fp16" or "ivfpq" (crossmodal/index/ann.py). `max_index_memory` ("4G", bytes)
        is a budget for "auto", kept in the catalogue. `rebuild=True`:
        if the collection was built with another model (or another version of this one, as
        when the shipped default is retrained), forget its vectors so that the next `index`
        re-embeds everything, instead of refusing.
        """
        if db is not None:
            if path is not None:
                raise CollectionError("give a collection folder or a database (--db), not both")
            from crossmodal.index.pg_collection import PgCollection

            return PgCollection.open_db(db, model, create, store, rebuild, max_index_memory)
        if store is not None and store not in ALL_KINDS:
            raise CollectionError(f"unknown store {store!r}: use one of {', '.join(ALL_KINDS)}")
        budget = parse_memory(str(max_index_memory)) if max_index_memory is not None else None
        path = (
            Path(path).expanduser() if path is not None else default_collection_path()
        ).absolute()
        created: list[Path] | None = None  # a new catalogue: the folders made for it
        if not (path / CATALOG_FILE).is_file():
            if not create:
                raise CollectionError(
                    f"no collection at {path}: create it with "
                    f"`crossmodal index DIR --collection {path}`"
                )
            created = make_folder(path)
        if isinstance(model, str):
            model = normalise_model_name(model)
        collection = cls(path, Catalog(path / CATALOG_FILE), model, rebuild)
        collection._created = created
        collection._check_settings(store, budget)
        if rebuild and collection.catalog.get_meta("model_fingerprint") is not None:
            _ = collection.model  # compare fingerprints now, before anything is skipped
        elif isinstance(model, str):
            recorded = collection.catalog.get_meta("model_name")
            if recorded is None or recorded != model:
                # load now: a different name may still be the same weights (fingerprints decide)
                _ = collection.model
        return collection

    def _check_settings(self, store: str | None, budget: int | None) -> None:
        recorded_store = self.catalog.get_meta("store")
        if recorded_store is None:
            self.catalog.set_meta("store", store or "auto")
        elif store is not None and store != recorded_store:
            raise CollectionError(
                f"collection {self.path} uses the {recorded_store!r} store, not {store!r}: "
                "index into a new collection to change it"
            )
        if budget is not None and str(budget) != self.catalog.get_meta("max_index_memory"):
            self.catalog.set_meta("max_index_memory", str(budget))

    def close(self) -> None:
        with self._lock:
            if self.catalog.path.is_file():
                self.stores.try_save()
            self.catalog.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r})"

    def _discard_if_new(self) -> None:
        """Remove the collection again if `open(create=True)` made it and nothing was indexed
        into it (a failed first index run leaves no empty collection behind)."""
        if self._created is not None and not self.catalog.roots():
            self.catalog.close()
            remove_new_collection(self.path, [CATALOG_FILE], self._created)
            self._created = None

    # ---- the model ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return (
            self.catalog.get_meta("model_name")
            or (self._model.name if self._model is not None else None)
            or self._model_spec
            or DEFAULT_MODEL
        )

    @property
    def model(self) -> Encoder:
        """The encoder (loaded on first use: opening a collection for stats needs none)."""
        with self._lock:
            if self._model is None:
                from crossmodal.models import load_model

                name = self._model_spec or self.catalog.get_meta("model_name") or DEFAULT_MODEL
                self._use_model(load_model(name))
            assert self._model is not None
            return self._model

    def _use_model(self, model: Encoder) -> None:
        fingerprint = model.fingerprint
        recorded = self.catalog.get_meta("model_fingerprint")
        if recorded is not None and recorded != fingerprint:
            name = self.catalog.get_meta("model_name")
            if self._rebuild:
                self._reset_vectors()
                recorded = None
            elif name == model.name:
                raise CollectionError(
                    f"collection {self.path} was built with another version of model {name!r} "
                    f"({recorded}, now {fingerprint}): its vectors no longer match; index "
                    "again with --rebuild to re-embed everything"
                )
            else:
                raise CollectionError(
                    f"collection {self.path} was built with model {name!r} ({recorded}) and "
                    f"cannot be used with model {model.name!r} ({fingerprint}): drop --model "
                    f"to use {name!r}, index into a new collection with --collection, or "
                    "re-embed everything with --rebuild"
                )
        self.queries.clear()  # vectors of another model
        if recorded is None:
            with self.catalog.transaction():
                self.catalog.set_meta("model_name", model.name)
                self.catalog.set_meta("model_fingerprint", fingerprint)
                self.catalog.set_meta("dim", str(model.dim))
                self.catalog.set_meta("created_at", str(time.time()))
        self._model = model

    @property
    def dim(self) -> int:
        recorded = self.catalog.get_meta("dim")
        return int(recorded) if recorded else self.model.dim

    def _hubness(self) -> Any:
        """The model's hubness correction (crossmodal/models/hubness.py): when there is one,
        every stored row carries its offset as one extra coordinate."""
        return self.model.hubness

    # ---- vector stores and the writer lock (crossmodal.index.writer) ------------------------
    def _store(self, table: str) -> VectorStore:
        return self.stores.get(table)

    def store_info(self, table: str = "images") -> dict[str, Any]:
        """What the store of `table` is: kind, rows, memory, recall@10 against exact."""
        return self.stores.info(table)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer per collection; a second one gets `CollectionBusy`, not a wait."""
        with self._writer.hold():
            yield

    def _reset_vectors(self) -> None:
        """Forget every image, text and failure (the model changed): the next index run
        embeds the folders again. Annotations go too: they are only as good as their vectors."""
        with self._writing():
            with self.catalog.transaction() as con:
                for table in ("texts", "images", "failures"):
                    con.execute(f"DELETE FROM {table}")
                for key in ("model_name", "model_fingerprint", "dim"):
                    con.execute("DELETE FROM meta WHERE key=?", (key,))
                for table in TABLES:
                    self.catalog.bump_generation(table)
            self.stores.forget("*.faiss", "*.ann")

    def rebuild_caches(self) -> None:
        """Build every FAISS cache again from the catalogue's vectors and save it."""
        with self._writing():
            self.stores.forget("*.faiss")
            self.stores.load(*TABLES)
            self.stores.save()

    def optimize(self, show_progress: bool = True) -> dict[str, dict[str, Any]]:
        """Rebuild the vector stores from the catalogue (`crossmodal index --optimize`):
        tombstones dropped, the search effort tuned again, the kind the size calls for.
        Returns `store_info` of each table."""
        with self._writing():
            self.stores.refresh(force=True, show_progress=show_progress)
            return {table: self.store_info(table) for table in TABLES}

    # ---- indexing ---------------------------------------------------------------------------
    def index(
        self,
        directory: str | Path,
        captions: str | Path | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
        only: Iterable[str] | None = None,
        retry_failed: bool = False,
        ray: str | None = None,
        ray_workers: int | None = None,
        describe: bool | TagSettings = True,
    ) -> IndexReport:
        """Bring the collection up to date with `directory` (recursively); returns what changed.

        New files are embedded, changed ones re-embedded, deleted ones removed, moved ones (same
        content) re-pathed without embedding. Undecodable files are reported and remembered,
        and not retried until they change (or `retry_failed`). `captions` (captions.tsv,
        captions.json, a Flickr8k token file) attaches texts to images by file name, for
        i2t / t2t search. `only` restricts the run to these file names (or relative paths).
        A folder with no image file gives a report whose `no_photos` is true.
        `ray`: decode and embed on a Ray cluster ("local", "auto", HOST:PORT; see
        `crossmodal.index.ray_index`) with `ray_workers` actors; committed here all the same.
        `describe`: automatic tags for the embedded images from the tower's features (False:
        none; `TagSettings(captions=True)`: automatic captions too)."""
        if batch_size < 1:
            raise CrossmodalError(f"batch size must be at least 1 (got {batch_size})")
        on_ray = check_ray_settings(ray, ray_workers)
        started = time.perf_counter()
        try:
            folder = check_index_folder(directory)
        except CollectionError:
            self._discard_if_new()
            raise
        caption_map = read_caption_map(captions)
        only_set = {str(o).strip() for o in only if str(o).strip()} if only is not None else None
        report = IndexReport(root=str(folder))
        with self._writing():
            self._refuse_damaged()
            root_id, prefix = root_for(self.catalog, folder)
            root_path = Path(self.catalog.roots()[root_id])
            files, skipped = scan_folder(folder, root_path, only_set, show_progress)
            report.found = len(files)
            report.failed += skipped
            plan = plan_sync(
                self.catalog.images_under(root_id, prefix),
                files,
                hash_files,
                self.catalog.failures_under(root_id, prefix),
                retry_failed=retry_failed,
                unread=unread_prefixes(skipped, root_path),
                still_on_disk=(lambda rel: (root_path / rel).exists()) if only_set else None,
            )
            report.failed += plan.remembered
            apply_moves(self.catalog, self.stores, root_id, plan, report)
            embed_started = time.perf_counter()
            try:
                # the model is loaded only when there is something to embed: a run that finds
                # nothing new (a nightly cron job) takes a second, not a model load
                if plan.embed:
                    with index_describing(self.catalog, self.stores, self.model, describe) as on:
                        embed_files(
                            self.catalog, self.stores, self.model, root_id, plan.embed,
                            caption_map, batch_size, show_progress, report,
                            batch_source(on_ray), on,
                        )  # fmt: skip
                if caption_map is not None:
                    rows = self.catalog.images_under(root_id, prefix)
                    ids = {rel: row["id"] for rel, row in rows.items()}
                    sync_captions(self.catalog, self.stores, lambda: self.model, ids,
                                  caption_map, batch_size, report, show_progress)  # fmt: skip
            finally:
                report.embed_seconds = time.perf_counter() - embed_started
                self.stores.save()
            fill_missing_facts(self.catalog, show_progress)  # rows from before photo facts
            self.stores.refresh(show_progress=show_progress)
        report.seconds = time.perf_counter() - started
        return report

    def _refuse_damaged(self) -> None:
        """A run must not add to (and report success on) a damaged file: one read of every
        page first (~0.1 s per 100 MB)."""
        damage = self.catalog.quick_check()
        if damage:
            raise database_error(self.catalog.path, sqlite3.DatabaseError(integrity_line(damage)))

    # ---- other changes ----------------------------------------------------------------------
    def remove(self, paths: Iterable[str | Path]) -> int:
        """Forget these files, or everything under these folders; returns images removed."""
        removed = 0
        with self._writing():
            roots = self.catalog.roots()
            for given in paths:
                # compared as given (absolute), never through links: `links/a.jpg` is not
                # its target's row
                target = Path(os.path.abspath(Path(given).expanduser()))
                for root_id, root in roots.items():
                    root_path = Path(root)
                    if not (target == root_path or target.is_relative_to(root_path)):
                        continue
                    rel = target.relative_to(root_path).as_posix() if target != root_path else ""
                    ids = [
                        r["id"]
                        for key, r in self.catalog.images_under(root_id, "").items()
                        if not rel or key == rel or key.startswith(rel + "/")
                    ]
                    if ids:
                        forget_images(self.catalog, self.stores, ids)
                        removed += len(ids)
            self.stores.save()
        return removed

    def remove_ids(self, ids: Iterable[int]) -> int:
        """Forget the images with these ids (unknown ids are ignored); returns images removed."""
        with self._writing():
            found = list(self.catalog.get_images([int(i) for i in ids]))
            if found:
                forget_images(self.catalog, self.stores, found)
                self.stores.save()
        return len(found)

    # ---- reading ----------------------------------------------------------------------------
    def _row(self, image_id: int) -> ImageRow:
        row = self.catalog.get_images([int(image_id)]).get(int(image_id))
        if row is None:
            raise CollectionError(f"no image with id {image_id} in collection {self.path}")
        return row

    def get(self, image_id: int) -> ImageRecord:
        return image_record(self.catalog, self._row(image_id))

    def __len__(self) -> int:
        return self.catalog.count("images")

    def stats(self) -> dict[str, Any]:
        return collection_stats(self.catalog, self.path)

    # ---- searching --------------------------------------------------------------------------
    def embed_query(
        self,
        text: str | None = None,
        image: Image.Image | str | Path | None = None,
        query: Sequence[tuple[float, QueryItem]] | None = None,
    ) -> tuple[np.ndarray, bool, bool]:
        """(unit query vector, has a text term, has an image term)."""
        texts, images = query_terms(text, image, query)
        vector = self.queries.embed(texts, images)
        return vector, bool(texts), bool(images)

    def search(
        self,
        text: str | None = None,
        image: Image.Image | str | Path | None = None,
        k: int = 10,
        mode: str = "auto",
        query: Sequence[tuple[float, QueryItem]] | None = None,
        offset: int = 0,
        filter: Filter = None,
        descriptions: bool | None = None,
    ) -> list[SearchHit]:
        """Nearest images (t2i, i2i) or texts (i2t, t2t) to the combined query, best first:
        the `k` from rank `offset + 1` on (a page; ranks count from the first result).

        `mode="auto"` searches images: t2i for text-only queries, i2i when an image is in it.
        `filter` (a `SearchFilter`): only photos, or texts of photos, with these facts.
        t2i also scores the images' descriptions (index/hybrid.py; each hit's `matched` says
        which) where the collection has some; `descriptions=False` ranks by the embedding only.
        """
        check_page(k, offset)
        direction(mode)  # an unknown mode is refused before any model work
        self._check_not_empty()
        texts, images = query_terms(text, image, query)
        vector = self.queries.embed(texts, images)
        way = direction(mode, bool(texts), bool(images))
        words = " ".join(t for w, t in texts if w > 0)
        return self.search_vectors(
            vector[None], k, way.target, way.cross_modal, offset, filter, [words], descriptions
        )[0]

    def search_by_id(
        self, image_id: int, k: int = 10, mode: str = "i2i", offset: int = 0, filter: Filter = None
    ) -> list[SearchHit]:
        """Images like an indexed image (i2i, the image itself left out) or texts for it (i2t)."""
        check_page(k, offset)
        if mode not in ("i2i", "i2t"):
            raise CrossmodalError(f"search by id takes mode i2i or i2t, not {mode!r}")
        self._row(image_id)
        vector = self.catalog.image_vector(int(image_id))
        assert vector is not None
        if mode == "i2t":
            return self.search_vector(vector, k, "texts", True, offset, filter)
        found = self.search_vector(vector, offset + k + 1, "images", filter=filter)
        hits = [h for h in found if h.id != image_id][: offset + k]
        for rank, hit in enumerate(hits, 1):
            hit.rank = rank
        return hits[offset:]

    def search_vector(
        self,
        vector: np.ndarray,
        k: int,
        target: str = "images",
        cross_modal: bool = False,
        offset: int = 0,
        filter: Filter = None,
    ) -> list[SearchHit]:
        """Nearest rows of `target` ("images" or "texts") to one unit vector; `cross_modal`
        (a text vector searching images, an image vector searching texts) applies the
        model's hubness correction."""
        vectors = np.asarray(vector, np.float32).reshape(1, -1)
        return self.search_vectors(vectors, k, target, cross_modal, offset, filter)[0]

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int,
        target: str = "images",
        cross_modal: bool = False,
        offset: int = 0,
        filter: Filter = None,
        texts: Sequence[str] | None = None,
        descriptions: bool | None = None,
    ) -> list[list[SearchHit]]:
        """`search_vector` for each row of `vectors`, with one index search and one
        catalogue lookup for them all (what a server answering concurrent queries needs:
        per query, the catalogue's lock and queries cost more than the search itself).
        `texts`: the query text of each row, for t2i over descriptions (see `search`)."""
        check_page(k, offset)
        store = self.stores.get(target)
        queries = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        plain = filter is None or filter.empty  # hybrid search does not take filters yet
        if (
            target == "images"
            and cross_modal
            and texts
            and plain
            and self.uses_descriptions(descriptions)
        ):
            return [
                hybrid_hits(self.catalog, self.stores, self.dim, row, text, k, offset)
                for row, text in zip(queries, texts, strict=True)
            ]
        if store.dim != self.dim:  # rows carry their hubness offset
            queries = query_columns(queries, cross_modal)
        return filtered_hits(self.catalog, store, filter, target, queries, k, offset)

    def _check_not_empty(self) -> None:
        if not len(self):
            raise CollectionEmpty(
                f"no results: collection {self.path} holds no images yet; add some with "
                f"`crossmodal index DIR --collection {self.path}`"
            )
