"""The descriptions side of `Collection`: annotate, remove annotations, describe.

A mixin of `crossmodal.collection.Collection` (which provides the catalogue, the stores, the
model and the writer lock), kept apart so each module reads in one sitting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from crossmodal.errors import CollectionError
from crossmodal.index.catalog import Catalog, ImageRow
from crossmodal.index.descriptions import Description, check_description_text
from crossmodal.index.ingest import add_annotation, describe_images, remove_texts
from crossmodal.index.writer import StoreCache
from crossmodal.models.base import Encoder

__all__ = ["DescriptionMethods"]


class DescriptionMethods:
    """Writing an image's descriptions; `uses_descriptions` says whether t2i scores them."""

    path: Path
    catalog: Catalog
    stores: StoreCache

    @property
    def model(self) -> Encoder:
        raise NotImplementedError  # Collection's

    def _row(self, image_id: int) -> ImageRow:
        raise NotImplementedError  # Collection's

    def _writing(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # Collection's

    def image_id_of(self, path: Path) -> int | None:
        """The id of the indexed photo at `path` (as given, made absolute), or None."""
        target = Path(os.path.abspath(Path(path).expanduser()))
        for root_id, root in self.catalog.roots().items():
            if target.is_relative_to(root) and target != Path(root):
                row = self.catalog.image_at(root_id, target.relative_to(root).as_posix())
                if row is not None:
                    return row["id"]
        return None

    def uses_descriptions(self, wanted: bool | None = None) -> bool:
        """Whether a t2i search scores descriptions: asked (`wanted`: None = by default) and
        the collection has some."""
        return wanted is not False and self.catalog.count("texts") > 0

    def annotate(self, image_id: int, text: str) -> int:
        """Attach a person's text to an image (found by every search direction); returns the
        text's id. Empty, over-long or control-character text is a `DescriptionError`."""
        text = check_description_text(text, "annotation")
        self._row(image_id)
        vector = self.model.encode_texts([text])[0]
        with self._writing():
            text_id = add_annotation(self.catalog, self.stores, image_id, text, vector)
            self.stores.save()
        return text_id

    def remove_annotations(
        self, image_id: int, text: str | None = None, text_id: int | None = None
    ) -> int:
        """Remove an image's annotations: the one with id `text_id`, those reading `text`, or
        (neither given) all of them; returns how many went. Captions and generated texts stay."""
        self._row(image_id)
        rows = self.catalog.descriptions_of([int(image_id)], "annotation").get(int(image_id), [])
        if text_id is not None:
            rows = [r for r in rows if r["id"] == int(text_id)]
        elif text is not None:
            rows = [r for r in rows if r["text"] == text.strip()]
        if not rows:
            return 0
        with self._writing():
            removed = remove_texts(self.catalog, self.stores, image_id, [r["id"] for r in rows])
            self.stores.save()
        return len(removed)

    def describe(
        self, image_id: int, descriptions: Sequence[Description], replace: bool = True
    ) -> list[int]:
        """Store descriptions of one image (tags, automatic captions, a person's texts), each
        embedded by the text tower for t2t and hybrid search; returns their text ids.
        `replace`: the image's earlier texts of the same (kind, source) are dropped first."""
        return self.describe_many({int(image_id): descriptions}, replace).get(int(image_id), [])

    def describe_many(
        self, items: dict[int, Sequence[Description]], replace: bool = True
    ) -> dict[int, list[int]]:
        """`describe` for many images, their texts embedded in one batch."""
        missing = set(map(int, items)) - set(self.catalog.get_images([int(i) for i in items]))
        if missing:
            raise CollectionError(f"no image with id {min(missing)} in collection {self.path}")
        with self._writing():
            out = describe_images(
                self.catalog, self.stores, self.model.encode_texts, items, replace
            )
            self.stores.save()
        return out
