"""Photo facts kept in the catalogue for filters: when a photo was taken, by which camera,
where (GPS), and what kind of file it is.

They come from the image's header (EXIF through Pillow), read in the same `Image.open` that
already gives the pixel size, so indexing reads no extra bytes for them. A photo without an
EXIF date gets its file's modification time, and the row says so (`taken_source` "file").
Dates are kept as local wall-clock text ("2024-05-01 12:30:00"), as the camera wrote them,
with the UTC offset beside them when the camera recorded one: "photos of 1 May" means
the photographer's 1 May, wherever the search runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image
from tqdm.auto import tqdm

from crossmodal.index.catalog import MAX_ID, Catalog
from crossmodal.index.catalog_sql import dialect_of, execute_many, fetch_dicts
from crossmodal.search_filter import normalise_type

__all__ = [
    "FACT_COLUMNS",
    "PhotoFacts",
    "facts_of",
    "facts_or_file_time",
    "file_facts",
    "fill_missing_facts",
    "header_facts",
    "normalise_type",
    "rows_without_facts",
    "set_facts",
]

_ORIENTATION = 0x0112
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _OFFSET, _OFFSET_ORIGINAL = 0x9003, 0x9010, 0x9011
_EXIF_DATE = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_TEXT = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")

#: Pillow's format names -> the file type a person types (`--type jpg`)
_TYPE_OF_FORMAT = {"JPEG": "jpg", "MPO": "jpg", "TIFF": "tif", "HEIF": "heic", "JPEG2000": "jp2"}

#: the columns of `images` that hold the facts (schema.py `_add_photo_facts`)
FACT_COLUMNS = (
    "taken",
    "taken_offset",
    "taken_source",
    "camera_make",
    "camera_model",
    "gps_lat",
    "gps_lon",
    "file_type",
)


@dataclass
class PhotoFacts:
    """What the filters need to know about one photo (None: not known)."""

    taken: str | None = None  # "YYYY-MM-DD HH:MM:SS", local time of the camera / file
    taken_offset: str | None = None  # "+02:00" when the camera recorded one
    taken_source: str = "file"  # "exif" or "file" (the modification time)
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    file_type: str | None = None  # from the content (Pillow's format), not the suffix

    def row(self) -> tuple[Any, ...]:
        """The values of `FACT_COLUMNS`, in order."""
        return tuple(getattr(self, name) for name in FACT_COLUMNS)

    @property
    def camera(self) -> str | None:
        """'Google Pixel 7': the make, then the model unless it repeats the make."""
        make, model = (self.camera_make or "").strip(), (self.camera_model or "").strip()
        if make and model.lower().startswith(make.lower()):
            return model
        return " ".join(p for p in (make, model) if p) or None


def header_facts(im: Image.Image, mtime_ns: int) -> tuple[tuple[int, int], PhotoFacts]:
    """((width, height) as displayed, facts) of an opened image, from its header alone."""
    facts = PhotoFacts(file_type=_type_of(im.format))
    w, h = im.size
    try:
        exif = im.getexif()
    except Exception:  # a damaged EXIF block is not a damaged photo: no facts from it
        exif = Image.Exif()
    orientation = exif.get(_ORIENTATION, 1)
    size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    with contextlib.suppress(Exception):  # odd types in a hand-edited block: keep what was read
        _read_exif(exif, facts)
    if facts.taken is None:
        facts.taken = _local_text(mtime_ns / 1e9)
        facts.taken_offset, facts.taken_source = None, "file"
    return size, facts


def _read_exif(exif: Image.Exif, facts: PhotoFacts) -> None:
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    for date_tag, offset_tag, where in (
        (_DATETIME_ORIGINAL, _OFFSET_ORIGINAL, sub),
        (_DATETIME, _OFFSET, exif),
    ):
        taken = _exif_date(where.get(date_tag))
        if taken is not None:
            facts.taken, facts.taken_source = taken, "exif"
            facts.taken_offset = _exif_offset(sub.get(offset_tag))
            break
    facts.camera_make = _clean_text(exif.get(_MAKE))
    facts.camera_model = _clean_text(exif.get(_MODEL))
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
        facts.gps_lat, facts.gps_lon = lat, lon


def _type_of(pillow_format: str | None) -> str | None:
    if not pillow_format:
        return None
    return _TYPE_OF_FORMAT.get(pillow_format, normalise_type(pillow_format))


def _clean_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:200] or None


def _exif_date(value: Any) -> str | None:
    """'2024:05:01 12:30:00' -> '2024-05-01 12:30:00'; None for blanks and nonsense."""
    match = _EXIF_DATE.match(_clean_text(value) or "")
    if not match:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups())
    try:
        return dt.datetime(y, mo, d, h, mi, s).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", the blank some cameras write
        return None


def _exif_offset(value: Any) -> str | None:
    match = _OFFSET_TEXT.match(_clean_text(value) or "")
    if not match or int(match[2]) > 14 or int(match[3]) > 59:
        return None
    return f"{match[1]}{match[2]}:{match[3]}"


def _degrees(value: Any, ref: Any) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals and a N/S/E/W reference -> signed degrees."""
    try:
        d, m, s = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if any(x != x for x in (d, m, s)):  # NaN from a 0/0 rational
        return None
    degrees = d + m / 60 + s / 3600
    return -degrees if (_clean_text(ref) or "").upper() in ("S", "W") else degrees


def _local_text(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def facts_or_file_time(loaded: Any, jobs: Any) -> PhotoFacts:
    """The facts the pipeline read for a `LoadedImage`, or (its header could not be read
    again) only the date of its file job's mtime."""
    if loaded.facts is not None:
        return loaded.facts  # type: ignore[no-any-return]
    return PhotoFacts(taken=_local_text(jobs[loaded.index].mtime_ns / 1e9))


def file_facts(path: Path, mtime_ns: int) -> PhotoFacts | None:
    """The facts of a file on disk from its header (None when it cannot be opened)."""
    try:
        with Image.open(path) as im:
            return header_facts(im, mtime_ns)[1]
    except Exception:  # facts are metadata only: an unreadable header gives none
        return None


def set_facts(catalog: Catalog, facts: Sequence[tuple[int, PhotoFacts]]) -> None:
    """(image id, facts) pairs -> the fact columns of those rows (one transaction); the same
    SQL on either catalogue (catalog_sql.py)."""
    mark = dialect_of(catalog).mark
    assigns = ", ".join(f"{name}={mark}" for name in FACT_COLUMNS)
    execute_many(
        catalog,
        f"UPDATE images SET {assigns} WHERE id={mark}",
        [(*f.row(), i) for i, f in facts],
    )


def rows_without_facts(catalog: Catalog) -> list[dict[str, Any]]:
    """id, root_id, relpath, mtime_ns of the rows indexed before facts were kept."""
    sql = "SELECT id, root_id, relpath, mtime_ns FROM images WHERE taken_source IS NULL"
    return fetch_dicts(catalog, sql + " ORDER BY id")


def facts_of(catalog: Catalog, image_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """image id -> its fact columns and `size`, for showing them."""
    ids = [int(i) for i in image_ids if -MAX_ID <= int(i) <= MAX_ID]
    dialect = dialect_of(catalog)
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 900):  # SQLite's limit of bound parameters
        chunk = ids[start : start + 900]
        sql = (
            f"SELECT id, size, {', '.join(FACT_COLUMNS)} FROM images "
            f"WHERE id IN ({dialect.marks(len(chunk))})"
        )
        for r in fetch_dicts(catalog, sql, chunk):
            out[int(r["id"])] = {k: r[k] for k in ("size", *FACT_COLUMNS)}
    return out


def fill_missing_facts(catalog: Catalog, show_progress: bool = False) -> int:
    """Give the rows indexed before facts existed (`taken_source` NULL) their facts, from the
    files' headers (no pixels decoded, nothing re-embedded); returns the rows filled.
    A file that cannot be opened gets its row's mtime as the date, so it is not retried."""
    todo = rows_without_facts(catalog)
    if not todo:
        return 0
    roots = catalog.roots()
    bar = tqdm(total=len(todo), desc="photo facts", unit="img", disable=not show_progress)
    done = 0
    for start in range(0, len(todo), 256):
        batch = todo[start : start + 256]
        found = []
        for row in batch:
            path = Path(os.path.join(roots[row["root_id"]], row["relpath"]))
            facts = file_facts(path, row["mtime_ns"]) or PhotoFacts(
                taken=_local_text(row["mtime_ns"] / 1e9)
            )
            found.append((row["id"], facts))
        set_facts(catalog, found)
        done += len(batch)
        bar.update(len(batch))
    bar.close()
    return done
