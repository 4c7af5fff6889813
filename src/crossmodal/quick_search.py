"""`crossmodal search` from the shell in about a second: the quickest way to each answer.

1. A one-text query (t2i / t2t) goes to a running `crossmodal serve` of the same collection
   when there is one (crossmodal/client.py): no model in this process at all. (The CLI
   tries that before it imports even this module: crossmodal/cli/served.py.)
2. Otherwise the query is embedded by the model's exported query bundle
   (crossmodal/models/query_bundle.py): OpenVINO + tokenizers + numpy, no torch.
3. The first search with a model has no bundle yet: it loads the model with torch once,
   exports the bundle (saying so) and searches with it; later searches take path 2.
Models the bundle does not cover (hf:, openclip:, small towers) are searched with the model
itself, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from crossmodal.client import one_text, server_text_search
from crossmodal.collection import (
    Collection,
    QueryItem,
    SearchHit,
    default_collection_path,
)
from crossmodal.models.base import Encoder
from crossmodal.search_filter import SearchFilter

Announce = Callable[[str], None]


def _folder(collection: Path | None) -> Path:
    path = collection.expanduser() if collection is not None else default_collection_path()
    return path.absolute()


def _hits_from_server(col: Collection, results: list[dict]) -> list[SearchHit]:
    """The server's hits with this machine's full paths (as an in-process search gives)."""
    rows = col.catalog.get_images([int(r["id"]) for r in results])
    roots = col.catalog.roots()
    hits: list[SearchHit] = []
    for r in results:
        row = rows.get(int(r["id"]))
        if row is None:
            continue  # deleted since
        hits.append(
            SearchHit(
                rank=len(hits) + 1,
                score=float(r["score"]),
                id=int(r["id"]),
                path=os.path.join(roots[row["root_id"]], row["relpath"]),
                text=r.get("text"),
                caption=r.get("caption"),
                kind=str(r.get("kind", "image")),
                text_id=r.get("text_id"),
                relpath=row["relpath"],
                text_kind=r.get("text_kind"),
                by_person=r.get("by_person"),
                matched=r.get("matched"),
            )
        )
    return hits


def query_encoder(name: str, announce: Announce) -> Encoder | None:
    """The torch-free query encoder of model `name`, exported on first use; None for models
    it does not cover (the caller then lets the collection load the model itself)."""
    from crossmodal.models.query_bundle import load_query_bundle, model_folder

    bundle = load_query_bundle(name)
    if bundle is not None or model_folder(name) is None:
        return bundle
    announce(
        f"preparing the quick query path of model {name!r} (once; later searches start "
        "in about a second)…"
    )
    _setup_torch()
    from crossmodal.models import load_model
    from crossmodal.models.query_export import export_query_bundle

    model = load_model(name)
    export_query_bundle(model)
    return load_query_bundle(name) or model


def _setup_torch() -> None:
    from crossmodal.runtime import prepare_torch

    prepare_torch(1)  # one query: a second thread only waits (docs/benchmarks.md)


def quick_search(
    collection: Path | None,
    terms: Sequence[tuple[float, QueryItem]],
    k: int,
    mode: str,
    model: str | None,
    announce: Announce,
    db: str | None = None,
    filter: SearchFilter | None = None,
    descriptions: bool | None = None,
) -> tuple[list[SearchHit], Collection]:
    """Hits of the query, and the collection (open; the caller closes it). `db`: the
    collection in that PostgreSQL database instead of a folder. A filtered query is answered
    here (the server's quick path takes plain text searches only). `descriptions`: as
    `Collection.search` takes it (False: t2i by the embedding alone)."""
    folder = _folder(collection) if db is None else None
    plain = filter is None or filter.empty
    text = one_text(terms, mode) if model is None and plain else None
    if text is not None and k >= 1 and folder is not None:
        results = server_text_search(
            folder, text, "t2t" if mode == "t2t" else "t2i", k, descriptions=descriptions
        )
        if results is not None:
            col = Collection.open(folder)
            return _hits_from_server(col, results), col
    probe = Collection.open(folder, db=db)  # a missing collection fails here, before any model
    name = model or probe.catalog.get_meta("model_name") or "default"
    probe.close()
    from crossmodal.defaults import normalise_model_name

    encoder = query_encoder(normalise_model_name(name), announce)
    if encoder is None:
        _setup_torch()
        col = Collection.open(folder, model=model, db=db)
    else:
        col = Collection.open(folder, model=encoder, db=db)
    return col.search(query=terms, k=k, mode=mode, filter=filter, descriptions=descriptions), col
