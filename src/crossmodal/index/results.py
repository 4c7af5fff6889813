"""What indexing and searching a collection return: hits, image records, index reports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmodal.data.images import IMAGE_EXTENSIONS
from crossmodal.errors import CrossmodalError
from crossmodal.fsnames import shown
from crossmodal.index.catalog_texts import HIDDEN_FROM_TEXT_SEARCH

if TYPE_CHECKING:
    from crossmodal.index.catalog import Catalog, ImageRow

__all__ = [
    "ImageRecord",
    "IndexFailure",
    "IndexReport",
    "SearchHit",
    "check_page",
    "collection_stats",
    "hits_of",
    "image_record",
]

#: the file types a scan picks up, as the "no photos" line names them
EXTENSIONS = " ".join(sorted(IMAGE_EXTENSIONS))


@dataclass
class SearchHit:
    """One result. `kind` is "image" (t2i, i2i) or "text" (i2t, t2t: `text` is the caption or
    annotation found, `path` the image it describes). `id` is always the image's catalogue id."""

    rank: int
    score: float
    id: int
    path: str
    text: str | None = None
    caption: str | None = None
    kind: str = "image"
    text_id: int | None = None
    #: the path inside the indexed folder it was found in
    relpath: str | None = None
    #: i2t / t2t: the found text's kind (caption, annotation, auto_caption) and whether a
    #: person wrote it (an automatic caption is shown marked "auto")
    text_kind: str | None = None
    by_person: bool | None = None
    #: hybrid t2i: the descriptions that lifted the image (index/hybrid.py `hybrid_hits`)
    matched: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        # field by field: `asdict` deep-copies each value, ~10x the time, and a server shapes
        # every hit of every answer (its Python time is taken from the GIL of the forwards)
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "id": self.id,
            "path": shown(self.path),  # JSON: the name as text (the raw one is `self.path`)
            "text": self.text,
            "caption": self.caption,
            "kind": self.kind,
            "text_id": self.text_id,
            "relpath": shown(self.relpath) if self.relpath is not None else None,
            "text_kind": self.text_kind,
            "by_person": self.by_person,
            "matched": self.matched,
        }


@dataclass
class ImageRecord:
    id: int
    path: str
    root: str
    relpath: str
    hash: str
    size: int
    mtime: float
    width: int | None
    height: int | None
    indexed_at: float
    captions: list[str] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    #: photo facts (crossmodal/index/facts.py): taken, taken_offset, taken_source ("exif", or
    #: "file" when the date is the file's time), camera_make, camera_model, gps_lat, gps_lon,
    #: file_type
    facts: dict[str, Any] = field(default_factory=dict)


_ADVICE = (
    ("empty file", "re-copy it from the original, or delete it"),
    ("truncated or corrupt", "the file is damaged: re-copy it from the original"),
    ("not an image", "it is not a picture in a format Pillow reads: convert or move it"),
    ("too large", "downscale it to index it"),
    ("cannot read", "check the file's permissions"),
    ("file not found", "it disappeared during the run"),
    ("not a regular file", "point the index at regular files only"),
    ("dangling symlink", "its target is gone: fix or delete the link"),
    ("symlink loop", "the link points back into its own path: fix or delete it"),
    ("symlinked folder", "links to folders are not followed (they could loop): index the target"),
    ("cannot read folder", "check the folder's permissions"),
)
#: reasons of things the scan skipped (not files that failed to decode): not remembered
_SCAN_REASONS = ("dangling symlink", "symlink loop", "symlinked folder", "cannot read folder")


@dataclass
class IndexFailure:
    """A file that was skipped; `remembered` when it failed on an earlier run and is unchanged."""

    path: str
    reason: str
    remembered: bool = False

    @property
    def message(self) -> str:
        advice = next((a for key, a in _ADVICE if self.reason.startswith(key)), "check the file")
        scanned = self.reason.startswith(_SCAN_REASONS)
        retried = "" if scanned else " (it is retried when it changes)"
        return f"skipping {shown(self.path)}: {shown(self.reason)}; {advice}{retried}."


@dataclass
class IndexReport:
    root: str
    #: image files found in the folder (by extension), whatever became of them
    found: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    moved: int = 0
    unchanged: int = 0
    captions: int = 0
    #: automatic descriptions (tags, breeds, captions) stored for the embedded images
    described: int = 0
    #: seconds of the embedding phase spent on them (classifier, captioner, text vectors)
    describe_seconds: float = 0.0
    failed: list[IndexFailure] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    @property
    def images_per_second(self) -> float:
        """Embedded files per second of the embedding phase (decode + model + commit)."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def no_photos(self) -> bool:
        """The folder holds no image file, and none indexed from it was removed: nothing done."""
        return self.found == 0 and self.removed == 0

    def summary(self) -> str:
        if self.no_photos:
            return (
                f"no photos found in {shown(self.root)}: put image files in it ({EXTENSIONS}, "
                "in subfolders too; hidden ones are skipped) or give the folder that holds them"
            )
        parts = [
            f"{self.added} added",
            f"{self.updated} updated",
            f"{self.moved} moved",
            f"{self.removed} removed",
            f"{self.unchanged} unchanged",
            f"{len(self.failed)} skipped",
        ]
        if self.captions:
            parts.append(f"{self.captions} captions")
        if self.described:
            parts.append(f"{self.described} automatic tags/captions")
        speed = f", {self.images_per_second:.1f} images/s" if self.embedded else ""
        return f"{shown(self.root)}: " + ", ".join(parts) + f" in {self.seconds:.1f} s{speed}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_second"] = round(self.images_per_second, 2)
        return out


def hits_of(
    catalog: Catalog, per_query: list[list[tuple[float, int]]], target: str
) -> list[list[SearchHit]]:
    """The hits of each query's (score, row id) pairs from a store of `target` ("images" or
    "texts"), with one catalogue lookup for them all. Rows deleted by another process since
    the store was read are left out."""
    found = list(dict.fromkeys(i for pairs in per_query for _, i in pairs))
    text_rows = catalog.get_texts(found) if target == "texts" else {}
    if target == "texts":
        image_ids = list(dict.fromkeys(r["image_id"] for r in text_rows.values()))
    else:
        image_ids = found
    rows = catalog.get_images(image_ids)
    roots = catalog.roots()
    firsts = catalog.first_texts(list(rows))  # first caption, else first annotation
    paths = {i: str(Path(roots[row["root_id"]]) / row["relpath"]) for i, row in rows.items()}
    out: list[list[SearchHit]] = []
    for pairs in per_query:
        hits: list[SearchHit] = []
        for score, row_id in pairs:
            text_row = text_rows.get(row_id) if target == "texts" else None
            image_id = text_row["image_id"] if text_row is not None else row_id
            if (target == "texts" and text_row is None) or image_id not in rows:
                continue
            if text_row is not None and text_row["kind"] in HIDDEN_FROM_TEXT_SEARCH:
                continue
            hits.append(
                SearchHit(
                    rank=len(hits) + 1,
                    score=score,
                    id=image_id,
                    path=paths[image_id],
                    text=text_row["text"] if text_row is not None else None,
                    caption=firsts.get(image_id),
                    kind="text" if text_row is not None else "image",
                    text_id=row_id if text_row is not None else None,
                    relpath=rows[image_id]["relpath"],
                    text_kind=text_row["kind"] if text_row is not None else None,
                    by_person=bool(text_row["by_person"]) if text_row is not None else None,
                )
            )
        out.append(hits)
    return out


def image_record(catalog: Catalog, row: ImageRow) -> ImageRecord:
    """Everything the catalogue knows of one image."""
    from crossmodal.index.facts import facts_of

    roots = catalog.roots()
    return ImageRecord(
        id=row["id"],
        path=str(Path(roots[row["root_id"]]) / row["relpath"]),
        root=roots[row["root_id"]],
        relpath=row["relpath"],
        hash=row["hash"],
        size=row["size"],
        mtime=row["mtime_ns"] / 1e9,
        width=row["width"],
        height=row["height"],
        indexed_at=row["indexed_at"],
        captions=catalog.texts_of([row["id"]], "caption").get(row["id"], []),
        annotations=catalog.texts_of([row["id"]], "annotation").get(row["id"], []),
        facts={k: v for k, v in facts_of(catalog, [row["id"]])[row["id"]].items() if k != "size"},
    )


def collection_stats(catalog: Catalog, folder: Path) -> dict[str, Any]:
    """What a collection holds (`Collection.stats`), from its catalogue alone (no model)."""
    meta = catalog.meta()
    texts = catalog.count_texts()
    # (a collection in PostgreSQL has no folder: PgCollection.stats sizes its database)
    disk = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) if folder.is_dir() else 0
    return {
        "path": str(folder),
        "model": meta.get("model_name"),
        "model_fingerprint": meta.get("model_fingerprint"),
        "dim": int(meta["dim"]) if "dim" in meta else None,
        "schema_version": int(meta.get("schema_version", 0)),
        "store": meta.get("store", "flat"),
        "stores": {
            table: json.loads(meta[f"store_info.{table}"])
            for table in ("images", "texts")
            if f"store_info.{table}" in meta
        },
        "images": catalog.count("images"),
        "captions": texts["caption"],
        "annotations": texts["annotation"],
        "tags": texts["tag"],
        "auto_captions": texts["auto_caption"],
        "failed": catalog.count("failures"),
        "roots": sorted(catalog.roots().values()),
        "disk_bytes": disk,
    }


def check_page(k: int, offset: int = 0) -> None:
    """A page of results: k >= 1 rows after `offset` >= 0 (plain integers, not bools)."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise CrossmodalError(f"k must be a positive number of results (got {k})")
    if not isinstance(offset, int | np.integer) or isinstance(offset, bool) or offset < 0:
        raise CrossmodalError(f"offset must be 0 or a positive number of results (got {offset})")
