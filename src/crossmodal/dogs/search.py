"""Dog search over a gallery `Collection`: text -> image with a breed filter, and look-alikes.

Both work on any collection (`crossmodal index DIR`); the breed of a hit is what the breed
recogniser says about that image (features are cached by file hash, so a hit is analysed once).

* `dog_search(collection, "a dog running on the beach", breed="golden retriever")`: Chinese or
  English text. A breed named in the text ("草地上的金毛") becomes the breed filter, so the
  filter works whatever text tower the collection's model has; for a Chinese query whose model
  has no multilingual text tower, the text sent to the model is the English prompt for the
  named breed ("a photo of a Golden Retriever"), since an English-only tower cannot read it.
* `similar_dogs(collection, "rex.jpg")`: nearest images in the collection's image space, by
  default only those recognised as the query dog's breed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from crossmodal.dogs.knowledge import BreedInfo
from crossmodal.dogs.nlu import spot_breeds
from crossmodal.dogs.qa import DogQuestionError, default_kb
from crossmodal.dogs.recognize import identify, identify_many

__all__ = ["DogHit", "dog_search", "similar_dogs"]

#: the most candidate images a filtered search analyses before giving up on finding k
MAX_CANDIDATES = 2000


@dataclass
class DogHit:
    """A search hit with the breed the recogniser sees in it."""

    rank: int
    score: float
    id: int
    path: str
    is_dog: bool
    breed: str | None  # classes.tsv name of the recognised breed
    breed_score: float
    caption: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "id": self.id,
            "path": self.path,
            "is_dog": self.is_dog,
            "breed": self.breed,
            "breed_score": round(float(self.breed_score), 4),
            "caption": self.caption,
        }


def _resolve_breed(breed: str | None) -> BreedInfo | None:
    if breed is None or not breed.strip():
        return None
    info = default_kb().find(breed.strip())
    if info is None:
        raise DogQuestionError(
            f"unknown breed {breed!r}: use a Stanford Dogs breed name in English or Chinese "
            "(e.g. 'golden retriever', '金毛')"
        )
    return info


def _has_multilingual(model: Any) -> bool:
    """Whether the model sends Chinese text to a multilingual tower (only our dual encoder can
    say so; other backends are taken to be English-only, as CLIP is)."""
    route = getattr(model, "route_texts", None)
    return route is not None and bool(route(["中文"])[0])


def _filtered(
    collection: Any,
    vector: Any,
    k: int,
    wnid: str | None,
    drop_id: int | None = None,
    cross_modal: bool = False,
) -> list[DogHit]:
    """Top-k images for a query vector, keeping those recognised as `wnid` (None: dogs or not)."""
    total = len(collection)
    fetch = min(total, k if wnid is None else max(4 * k, 50))
    seen = 0
    out: list[DogHit] = []
    while True:
        hits = (
            collection.search_vector(vector, fetch, target="images", cross_modal=cross_modal)
            if fetch
            else []
        )
        fresh = [h for h in hits[seen:] if h.id != drop_id]
        seen = len(hits)
        results, _ = identify_many([h.path for h in fresh], top=1)
        by_path = {r.image: r for r in results}
        for h in fresh:
            r = by_path.get(h.path)
            best = r.best if r is not None else None
            if wnid is not None and (best is None or best.wnid != wnid):
                continue
            out.append(
                DogHit(
                    rank=len(out) + 1,
                    score=h.score,
                    id=h.id,
                    path=h.path,
                    is_dog=bool(r and r.is_dog),
                    breed=best.breed if best else None,
                    breed_score=best.score if best else 0.0,
                    caption=getattr(h, "caption", None),
                )
            )
            if len(out) >= k:
                return out
        if fetch >= min(total, MAX_CANDIDATES):
            return out
        fetch = min(total, MAX_CANDIDATES, fetch * 4)


def dog_search(
    collection: Any,
    text: str,
    breed: str | None = None,
    k: int = 10,
) -> list[DogHit]:
    """Text -> images (Chinese or English), optionally only images of one breed."""
    if not isinstance(text, str) or not text.strip():
        raise DogQuestionError("empty search text: describe the dog, e.g. '草地上的金毛'")
    if k < 1:
        raise DogQuestionError(f"k must be at least 1 (got {k})")
    info = _resolve_breed(breed)
    mentions = spot_breeds(text, default_kb())
    if info is None and mentions:
        info = mentions[0].breeds[0]
    query = text.strip()
    from crossmodal.models.dual import contains_cjk

    if contains_cjk(query) and not _has_multilingual(collection.model):
        if info is None:
            raise DogQuestionError(
                f"the model of collection {collection.path} reads English only: name a breed "
                "(e.g. 金毛) or search in English"
            )
        query = f"a photo of a {info.name_en}"
    vector, _, _ = collection.embed_query(text=query)
    return _filtered(collection, vector, k, info.wnid if info else None, cross_modal=True)


def similar_dogs(
    collection: Any,
    image: str | Path | Image.Image | int,
    k: int = 10,
    same_breed: bool = True,
) -> list[DogHit]:
    """Dogs in the collection that look like this one (an image file, PIL image or image id)."""
    if k < 1:
        raise DogQuestionError(f"k must be at least 1 (got {k})")
    drop: int | None = None
    if isinstance(image, int):
        record = collection.get(image)
        drop, query_image = image, record.path
        vector = collection.catalog.image_vector(image)
    else:
        query_image = image
        vector, _, _ = collection.embed_query(image=image)
    wnid = None
    if same_breed:
        ident = identify(query_image)
        if not ident.is_dog or ident.best is None:
            raise DogQuestionError(
                f"{query_image if not isinstance(query_image, Image.Image) else 'the photo'} "
                "does not look like a dog; use same_breed=False to find look-alike images"
            )
        wnid = ident.best.wnid
    return _filtered(collection, vector, k, wnid, drop_id=drop)
