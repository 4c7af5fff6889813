"""A collection kept in PostgreSQL: `Collection.open(db="postgresql://…")`, `--db`.

`PgCollection` is the `Collection` facade over a `PgCatalog` (catalogue and vectors in the
database), a `PgStoreCache` (search by pgvector) and a `PgWriterLock` (an advisory lock):
indexing, searching four ways, annotations, automatic tags, hybrid search, filters and
removal are `Collection`'s own code, unchanged.
What differs is only what a folder did: there are no files to create, save or delete, the
writer lock is held in the database, and `stats` reports the database's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from crossmodal.collection import Collection
from crossmodal.defaults import normalise_model_name
from crossmodal.errors import CollectionError
from crossmodal.index.catalog import Catalog
from crossmodal.index.pg_catalog import PgCatalog
from crossmodal.index.pg_store import PG_STORE, PgStoreCache, PgWriterLock
from crossmodal.index.results import collection_stats
from crossmodal.models.base import Encoder

__all__ = ["PgCollection", "is_database_url"]


def is_database_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


class PgCollection(Collection):
    """A collection whose catalogue and vectors live in one PostgreSQL database (schema)."""

    def __init__(
        self, path: Path, catalog: Catalog, model: str | Encoder | None, rebuild: bool = False
    ) -> None:
        super().__init__(path, catalog, None, rebuild)
        self.pg = cast(PgCatalog, catalog)
        self._writer = PgWriterLock(self.pg.url, self.pg.url_shown, self._lock)
        self.stores = PgStoreCache(self.pg, self._writer, lambda: self.dim, self._hubness)
        if isinstance(model, Encoder):
            self._use_model(model)
        else:
            self._model_spec = model

    @classmethod
    def open_db(
        cls,
        url: str,
        model: str | Encoder | None = None,
        create: bool = False,
        store: str | None = None,
        rebuild: bool = False,
        max_index_memory: str | int | None = None,
    ) -> PgCollection:
        """The collection in database `url` (see `Collection.open`, whose options it takes)."""
        if not is_database_url(url):
            raise CollectionError(
                f"--db takes a PostgreSQL URL (postgresql://user@host:port/database), not {url!r}"
            )
        if store not in (None, "auto", PG_STORE):
            raise CollectionError(
                f"a collection in PostgreSQL searches with pgvector's HNSW index; --store "
                f"{store} is for a collection folder (--collection)"
            )
        if max_index_memory is not None:
            raise CollectionError(
                "--max-index-memory is for a collection folder (--collection): PostgreSQL "
                "manages the memory of its own index"
            )
        catalog = PgCatalog(url)
        if not create and catalog.count("roots") == 0 and not catalog.get_meta("model_name"):
            catalog.close()
            raise CollectionError(
                f"no collection in database {catalog.url_shown}: create it with "
                f"`crossmodal index DIR --db {catalog.url_shown}`"
            )
        if isinstance(model, str):
            model = normalise_model_name(model)
        collection = cls(catalog.path, cast(Catalog, catalog), model, rebuild)
        if catalog.get_meta("store") is None:
            catalog.set_meta("store", PG_STORE)
        if rebuild and catalog.get_meta("model_fingerprint") is not None:
            _ = collection.model  # compare fingerprints now, before anything is skipped
        elif isinstance(model, str) and catalog.get_meta("model_name") != model:
            _ = collection.model  # a different name may still be the same weights
        return collection

    def __repr__(self) -> str:
        return f"PgCollection({self.pg.url_shown!r})"

    def close(self) -> None:
        with self._lock:
            self.pg.close()
            cast(PgWriterLock, self._writer).close()

    def _discard_if_new(self) -> None:
        """Nothing to remove: the database stays (its tables are empty)."""

    def _reset_vectors(self) -> None:
        with self._writing():
            self.pg.reset_vectors()
            self.stores.forget()

    def rebuild_caches(self) -> None:
        """Every embedding and the HNSW indexes made again from the stored vectors."""
        with self._writing():
            self.stores.refresh(force=True)

    def stats(self) -> dict[str, Any]:
        info = collection_stats(self.catalog, self.path)
        info.update(path=self.pg.url_shown, disk_bytes=self.pg.database_bytes())
        return info
