"""Hybrid text->image search: the embedding score plus how well the query matches each
image's descriptions (captions, annotations, tags, automatic captions; descriptions.py).

    score = embedding
          + w_dense[who]   * max(0, cos(query, best description) - t) / (1 - t)
          + w_lexical[who] * BM25(query, best description) / best BM25 of this query

for `who` = written by a person, or generated, each image's best description of each. The
dense part is the text tower's text-text cosine (the vectors t2t search already keeps); the
lexical part is SQLite FTS5's BM25 over the description words (PostgreSQL's full-text rank
`ts_rank_cd` in a collection kept there: pg_texts.py). The threshold `t` keeps
loosely related descriptions from lifting an image: an annotated photo must not push an
unannotated one that the embedding ranks first out of its place.

The weights are chosen on val by `benchmarks/descriptions.py --select` and shipped in
`hybrid_weights.json`: a person's on Flickr8k val (its first captions as annotations), the
generated descriptions' (their own threshold too) on Stanford Dogs val breed search among
those that keep Flickr8k val's text->image R@1 with generated descriptions only at or above
the embedding's. Candidates: the embedding's top
`candidates` images (or more for a deep page), the images of the nearest descriptions and
those of the best FTS matches; every candidate gets every feature computed exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmodal.index.query import LRU
from crossmodal.index.results import SearchHit, hits_of
from crossmodal.models.hubness import query_columns

if TYPE_CHECKING:
    from crossmodal.index.catalog import Catalog
    from crossmodal.index.writer import StoreCache

__all__ = [
    "WEIGHTS_FILE",
    "Candidates",
    "HybridWeights",
    "candidates",
    "fuse",
    "hybrid_hits",
    "reasons",
]

WEIGHTS_FILE = Path(__file__).with_name("hybrid_weights.json")
#: columns of the per-candidate feature arrays: a person's text (caption, annotation), an
#: automatic tag, an automatic caption
PERSON, TAG, AUTO_CAPTION = 0, 1, 2
COLUMNS = 3
_COLUMN_OF_KIND = {"tag": TAG, "auto_caption": AUTO_CAPTION}


def column_of(kind: str) -> int:
    """The feature column of a description kind (captions and annotations: PERSON)."""
    return _COLUMN_OF_KIND.get(kind, PERSON)


@dataclass(frozen=True)
class HybridWeights:
    """How much the descriptions add to the embedding score (see the module's text)."""

    dense_person: float = 0.0
    dense_tag: float = 0.0
    dense_auto_caption: float = 0.0
    lexical_person: float = 0.0
    lexical_tag: float = 0.0
    lexical_auto_caption: float = 0.0
    threshold: float = 0.5
    #: each generated kind has its own threshold (None: `threshold`): a tag is a class name,
    #: close in meaning to many queries that do not ask for it, and an automatic caption is
    #: a generic sentence many photos share
    threshold_tag: float | None = None
    threshold_auto_caption: float | None = None
    candidates: int = 100

    def thresholds(self) -> np.ndarray:
        """The dense threshold of each column (PERSON, TAG, AUTO_CAPTION)."""
        tag, auto = self.threshold_tag, self.threshold_auto_caption
        return np.array(
            [
                self.threshold,
                self.threshold if tag is None else tag,
                self.threshold if auto is None else auto,
            ],
            np.float32,
        )

    def dense_weights(self) -> np.ndarray:
        return np.array([self.dense_person, self.dense_tag, self.dense_auto_caption], np.float32)

    def lexical_weights(self) -> np.ndarray:
        return np.array(
            [self.lexical_person, self.lexical_tag, self.lexical_auto_caption], np.float32
        )

    @classmethod
    def packaged(cls) -> HybridWeights:
        return _packaged()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridWeights:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _packaged() -> HybridWeights:
    return HybridWeights.from_dict(json.loads(WEIGHTS_FILE.read_text())["weights"])


@dataclass
class Candidates:
    """The images a hybrid query may rank, and each one's features (row per image)."""

    image_ids: np.ndarray  # (n,)
    embedding: np.ndarray  # (n,) the embedding score (hubness-corrected like t2i search)
    dense: np.ndarray  # (n, 3) best cosine to a description of each column; -1: none
    dense_text: np.ndarray  # (n, 3) that description's text id; -1: none
    lexical: np.ndarray  # (n, 3) best BM25 / the query's best BM25, in [0, 1]; 0: none
    lexical_text: np.ndarray  # (n, 3)
    words: dict[int, list[str]]  # text id -> its words that matched the query (FTS5)


def candidates(
    catalog: Catalog,
    stores: StoreCache,
    dim: int,
    vector: np.ndarray,
    text: str,
    depth: int,
) -> Candidates:
    """The features of the images a hybrid query ranks: the embedding's top `depth`, the
    owners of the `depth` nearest descriptions and of the `depth` best FTS matches."""
    query = np.asarray(vector, np.float32).reshape(-1)
    images = stores.get("images")
    cross = query_columns(query[None], True) if images.dim != dim else query[None]
    scores, ids = images.search(cross, depth)
    embedding = {int(i): float(s) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0}
    owners: set[int] = set(embedding)

    texts = stores.get("texts")
    if len(texts):
        same = query_columns(query[None], False) if texts.dim != dim else query[None]
        _, near = texts.search(same, depth)
        found = catalog.get_texts([int(i) for i in near[0] if i >= 0])
        owners.update(row["image_id"] for row in found.values())
    matches = catalog.lexical_matches(text, depth)
    owners.update(m.image_id for m in matches)

    missing = [i for i in owners if i not in embedding]
    if missing:
        found_ids, vectors = catalog.image_vectors(missing, dim)
        rows = _stored_rows(stores, vectors)
        embedding.update(zip(found_ids.tolist(), (rows @ cross[0]).tolist(), strict=True))
    image_ids = np.array(sorted(embedding), np.int64)
    position = {int(i): n for n, i in enumerate(image_ids)}
    out = Candidates(
        image_ids=image_ids,
        embedding=np.array([embedding[int(i)] for i in image_ids], np.float32),
        dense=np.full((len(image_ids), COLUMNS), -1.0, np.float32),
        dense_text=np.full((len(image_ids), COLUMNS), -1, np.int64),
        lexical=np.zeros((len(image_ids), COLUMNS), np.float32),
        lexical_text=np.full((len(image_ids), COLUMNS), -1, np.int64),
        words={},
    )
    _dense_features(out, catalog, dim, query, position)
    _lexical_features(out, matches, position)
    return out


#: image vector bytes -> its row as the store keeps it: the hubness offset of a row costs a
#: product with the whole bank of training queries, and the same described images come back
#: as candidates query after query
_ROWS: LRU[tuple[int, bytes], np.ndarray] = LRU(65536)


def _stored_rows(stores: StoreCache, vectors: np.ndarray) -> np.ndarray:
    """Catalogue vectors with their hubness offset, as the image store has them."""
    keys = [(id(stores), v.tobytes()) for v in vectors]
    rows = [_ROWS.get(key) for key in keys]
    todo = [n for n, row in enumerate(rows) if row is None]
    if todo:
        made = stores.rows("images", vectors[todo])
        for n, row in zip(todo, made, strict=True):
            rows[n] = row
            _ROWS.put(keys[n], row)
    return np.stack(rows)  # type: ignore[arg-type]  # every row set above


def _dense_features(
    out: Candidates, catalog: Catalog, dim: int, query: np.ndarray, position: dict[int, int]
) -> None:
    text_ids, owners, kinds, vectors = catalog.description_vectors(out.image_ids.tolist(), dim)
    if not len(text_ids):
        return
    cosines = vectors @ query
    for text_id, owner, kind, cosine in zip(text_ids, owners, kinds, cosines, strict=True):
        row, col = position[int(owner)], column_of(str(kind))
        if cosine > out.dense[row, col]:
            out.dense[row, col] = cosine
            out.dense_text[row, col] = text_id


def _lexical_features(out: Candidates, matches: list[Any], position: dict[int, int]) -> None:
    if not matches:
        return
    out.words.update((m.text_id, m.words) for m in matches)
    best = max(m.score for m in matches)
    if best <= 0:
        return
    for m in matches:
        row = position.get(m.image_id)
        if row is None:
            continue
        col = column_of(m.kind)
        value = m.score / best
        if value > out.lexical[row, col]:
            out.lexical[row, col] = value
            out.lexical_text[row, col] = m.text_id


def contributions(c: Candidates, w: HybridWeights) -> tuple[np.ndarray, np.ndarray]:
    """(dense, lexical) parts of each candidate's score, each (n, 3): one column per kind of
    description (PERSON, TAG, AUTO_CAPTION)."""
    return weighted(c.dense, c.lexical, w)


def weighted(
    dense: np.ndarray, lexical: np.ndarray, w: HybridWeights
) -> tuple[np.ndarray, np.ndarray]:
    """What the best cosines and lexical scores (any leading shape, last axis the columns)
    add to the embedding score under `w`, column by column."""
    thresholds = w.thresholds()
    span = np.maximum(1e-6, 1.0 - thresholds)
    added = np.clip(dense - thresholds, 0.0, None) / span * w.dense_weights()
    return added, lexical * w.lexical_weights()


def fuse(c: Candidates, w: HybridWeights) -> np.ndarray:
    """The hybrid score of each candidate."""
    dense, lexical = contributions(c, w)
    fused: np.ndarray = c.embedding + dense.sum(axis=1) + lexical.sum(axis=1)
    return fused


def reasons(c: Candidates, w: HybridWeights, row: int) -> list[dict[str, Any]]:
    """Why candidate `row` scored above its embedding: (text id, how, its similarity, the
    query's words it holds, the score it added), largest first. The caller fills in the
    texts."""
    dense, lexical = contributions(c, w)
    out: list[dict[str, Any]] = []
    for col in range(COLUMNS):
        if dense[row, col] > 0:
            text_id = int(c.dense_text[row, col])
            out.append(
                {
                    "text_id": text_id,
                    "how": "meaning",
                    "similarity": round(float(c.dense[row, col]), 4),
                    "words": c.words.get(text_id, []),
                    "added": round(float(dense[row, col]), 4),
                }
            )
        if lexical[row, col] > 0:
            text_id = int(c.lexical_text[row, col])
            out.append(
                {
                    "text_id": text_id,
                    "how": "words",
                    "words": c.words.get(text_id, []),
                    "added": round(float(lexical[row, col]), 4),
                }
            )
    return sorted(out, key=lambda r: -r["added"])


def hybrid_hits(
    catalog: Catalog,
    stores: StoreCache,
    dim: int,
    vector: np.ndarray,
    text: str,
    k: int,
    offset: int = 0,
    weights: HybridWeights | None = None,
) -> list[SearchHit]:
    """The page (`k` from rank `offset + 1`) of a hybrid text->image search, each hit with
    `matched`: the descriptions that lifted it (text, kind, who wrote it, how it matched)."""
    w = weights or HybridWeights.packaged()
    found = candidates(catalog, stores, dim, vector, text, max(w.candidates, offset + k))
    scores = fuse(found, w)
    order = np.argsort(-scores, kind="stable")[: offset + k]
    pairs = [(float(scores[n]), int(found.image_ids[n])) for n in order]
    hits = hits_of(catalog, [pairs], "images")[0][offset:]
    rows = {int(found.image_ids[n]): int(n) for n in order}
    why = {hit.id: reasons(found, w, rows[hit.id]) for hit in hits}
    texts = catalog.get_texts([r["text_id"] for found_why in why.values() for r in found_why])
    for hit in hits:
        hit.matched = [
            {**r, "text": row["text"], "kind": row["kind"], "by_person": bool(row["by_person"])}
            for r in why[hit.id]
            if (row := texts.get(r["text_id"])) is not None
        ]
    return hits
