"""The annotation side of the web service: add, remove and list an image's descriptions.

A mixin of `WebService` (service.py), which provides the collection, the record lookup (404)
and the one-writer-at-a-time handle; the text check is `crossmodal annotate`'s, so the page
and the command refuse the same things with the same words.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from crossmodal.collection import Collection
from crossmodal.index.descriptions import DescriptionError, check_description_text
from crossmodal.web.errors import Rejected

__all__ = ["AnnotationMethods"]


class AnnotationMethods:
    collection: Collection

    def _record(self, image_id: int) -> Any:
        raise NotImplementedError  # WebService's

    def _write(self) -> AbstractContextManager[Collection]:
        raise NotImplementedError  # WebService's

    def annotate(self, image_id: int, text: str) -> dict[str, Any]:
        self._record(image_id)
        try:  # the check `crossmodal annotate` makes, with the same words
            text = check_description_text(text, "annotation")
        except DescriptionError as exc:
            raise Rejected(422, str(exc)) from None
        with self._write() as writer:
            text_id = writer.annotate(image_id, text)
        return {"id": image_id, "text_id": text_id, "text": text}

    def remove_annotations(self, image_id: int, text_id: int | None = None) -> dict[str, Any]:
        """Remove one annotation (`text_id`) or all of an image's; 404 for an unknown one."""
        self._record(image_id)
        with self._write() as writer:
            removed = writer.remove_annotations(image_id, text_id=text_id)
        if text_id is not None and not removed:
            raise Rejected(404, f"image {image_id} has no annotation with id {text_id}")
        return {"id": image_id, "removed": removed}

    def descriptions(self, image_id: int) -> dict[str, Any]:
        """An image's texts: captions, annotations (editable), tags and automatic captions."""
        self._record(image_id)
        rows = self.collection.catalog.descriptions_of([image_id]).get(image_id, [])
        keep = ("id", "text", "kind", "source", "lang", "confidence")
        return {
            "id": image_id,
            "descriptions": [
                {**{k: r[k] for k in keep}, "by_person": bool(r["by_person"])}  # type: ignore[literal-required]  # keys of TextRow
                for r in rows
            ],
        }
