"""Search filters by photo facts: date taken, camera, GPS, folder, file type, file size.

`SearchFilter` is what the Python API takes (`Collection.search(..., filter=...)`);
`parse_filter` builds one from the strings a person types (CLI options, query parameters of
the JSON API) and refuses bad values with one line that names the option and an example, the
same words on every surface. Light on purpose (no numpy, no torch): the CLI checks a filter
before it opens anything.

The facts themselves are read at indexing (crossmodal/index/facts.py); the SQL that selects
the rows is crossmodal/index/filters.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from crossmodal.errors import CrossmodalError

__all__ = [
    "Filter",
    "SearchFilter",
    "normalise_type",
    "parse_date",
    "parse_filter",
    "parse_size",
]

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$"
)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?i?b?)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY_UNITS = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_TYPE = re.compile(r"^[a-z0-9]{1,10}$")
#: other spellings of a file type -> the one stored
_TYPE_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "tiff": "tif", "heif": "heic", "j2k": "jp2"}


@dataclass(frozen=True)
class SearchFilter:
    """Which photos a search may return (every field None / empty: all of them).

    Dates are local wall-clock text "YYYY-MM-DD HH:MM:SS" (as stored): `taken_from`
    inclusive, `taken_until` exclusive. `camera` matches make or model, case-insensitive,
    anywhere. `gps`: True only photos with a position, False only those without. `within`:
    (south, west, north, east) degrees. `folder`: an
    absolute path (photos under it, in any indexed folder), or a path relative to the
    indexed folders. `types`: file types from the content ("jpg", "png"). Sizes in bytes,
    both inclusive. For text results (i2t, t2t) the filter applies to the texts' images.
    """

    taken_from: str | None = None
    taken_until: str | None = None
    camera: str | None = None
    gps: bool | None = None
    within: tuple[float, float, float, float] | None = None
    folder: str | None = None
    types: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None

    @property
    def empty(self) -> bool:
        """Whether it lets every photo through."""
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


#: what the search methods take: a filter, or None for every photo
Filter: TypeAlias = SearchFilter | None


def parse_date(text: str, option: str, end: bool) -> str:
    """'2024', '2024-05', '2024-05-01', '2024-05-01 13:30[:00]' -> "YYYY-MM-DD HH:MM:SS".

    `end=False` gives the first moment the text names, `end=True` the first moment after it
    (so `--before 2024-05-01` keeps the whole of 1 May, `--before 2024` the whole year)."""
    match = _DATE.match(text.strip())
    if not match:
        raise CrossmodalError(
            f"--{option} {text!r}: not a date: give YYYY, YYYY-MM, YYYY-MM-DD or "
            "'YYYY-MM-DD HH:MM' (e.g. 2024-05-01)"
        )
    month, day, hour, minute, second = (int(g) if g else None for g in match.groups()[1:])
    try:
        start = dt.datetime(
            int(match[1]),
            1 if month is None else month,  # "2024-00" is refused here, not read as January
            1 if day is None else day,
            hour or 0,
            minute or 0,
            second or 0,
        )
        if end:
            start = _end_of(start, month, day, minute, second)
    except (ValueError, OverflowError) as exc:
        raise CrossmodalError(f"--{option} {text!r}: not a date: {exc}") from None
    return start.strftime("%Y-%m-%d %H:%M:%S")


def _end_of(
    start: dt.datetime, month: int | None, day: int | None, minute: int | None, second: int | None
) -> dt.datetime:
    """The first moment after the period `start` names (as precise as the text was)."""
    if second is not None:
        return start + dt.timedelta(seconds=1)
    if minute is not None:
        return start + dt.timedelta(minutes=1)
    if day is not None:
        return start + dt.timedelta(days=1)
    if month is not None:
        return start.replace(year=start.year + (month == 12), month=month % 12 + 1)
    return start.replace(year=start.year + 1)


def parse_size(text: str, option: str) -> int:
    """'2MB', '500k', '1.5 GiB', '123' (bytes) -> bytes (k/M/G are 1000s, Ki/Mi/Gi 1024s)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise CrossmodalError(
            f"--{option} {text!r}: not a size: give a number of bytes with an optional unit "
            "(e.g. 500KB, 2MB, 1.5GiB)"
        )
    unit = (match[2] or "").lower().removesuffix("b")
    factor = _BINARY_UNITS.get(unit) or _UNITS.get(unit)
    if factor is None:
        raise CrossmodalError(f"--{option} {text!r}: unknown unit: use B, KB, MB, GB, KiB, MiB")
    size = round(float(match[1]) * factor)
    if size >= 2**63:  # past what SQLite (and any disk) holds
        raise CrossmodalError(f"--{option} {text!r}: too large a size")
    return size


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'LAT1,LON1,LAT2,LON2' (two opposite corners, in any order) -> (south, west, north,
    east). (A box across the 180th meridian is two searches: it cannot be written here.)"""
    parts = [p.strip() for p in text.split(",")]
    try:
        lat1, lon1, lat2, lon2 = (float(p) for p in parts)
    except ValueError:
        raise CrossmodalError(
            f"--within {text!r}: give four numbers LAT1,LON1,LAT2,LON2 (two opposite corners "
            "in degrees, e.g. 48.8,2.2,48.9,2.5)"
        ) from None
    if not all(abs(v) <= 90 for v in (lat1, lat2)) or not all(abs(v) <= 180 for v in (lon1, lon2)):
        raise CrossmodalError(
            f"--within {text!r}: latitudes must be within -90..90 and longitudes within "
            "-180..180 degrees"
        )
    return (min(lat1, lat2), min(lon1, lon2), max(lat1, lat2), max(lon1, lon2))


def normalise_type(name: str) -> str:
    """'JPEG', '.jpeg', 'jpg' -> 'jpg': one spelling per file type (as facts.py stores it)."""
    kind = name.strip().lower().lstrip(".")
    return _TYPE_ALIASES.get(kind, kind)


def parse_types(text: str) -> tuple[str, ...]:
    """'jpg,PNG, .webp' -> ('jpg', 'png', 'webp') (jpeg and jpg are one type)."""
    kinds = [normalise_type(t) for t in text.split(",") if t.strip()]
    bad = [k for k in kinds if not _TYPE.match(k)]
    if not kinds or bad:
        raise CrossmodalError(
            f"--type {text!r}: give file types separated by commas (e.g. jpg,png,heic)"
        )
    return tuple(dict.fromkeys(kinds))


def parse_filter(
    *,
    after: str | None = None,
    before: str | None = None,
    camera: str | None = None,
    gps: bool | None = None,
    within: str | None = None,
    folder: str | None = None,
    types: str | None = None,
    min_size: str | None = None,
    max_size: str | None = None,
    base: str | None = None,
) -> SearchFilter:
    """A `SearchFilter` from typed strings (None or blank: not given), or a `CrossmodalError`
    naming the option. `base`: the folder a relative `folder` is relative to (the CLI's
    current folder, so that `--in .` means here); None keeps it relative to the indexed
    folders (the web API)."""
    after, before, camera = _given(after), _given(before), _given(camera)
    min_size, max_size, within, types = (
        _given(min_size), _given(max_size), _given(within), _given(types)
    )  # fmt: skip
    low = parse_date(after, "after", end=False) if after is not None else None
    high = parse_date(before, "before", end=True) if before is not None else None
    if low is not None and high is not None and low >= high:
        raise CrossmodalError(f"--after {after} is not before --before {before}: no photo fits")
    small = parse_size(min_size, "min-size") if min_size is not None else None
    large = parse_size(max_size, "max-size") if max_size is not None else None
    if small is not None and large is not None and small > large:
        raise CrossmodalError(f"--min-size {min_size} is above --max-size {max_size}")
    box = parse_box(within) if within is not None else None
    if box is not None and gps is False:
        raise CrossmodalError("--within needs a GPS position: it cannot go with --no-gps")
    return SearchFilter(
        taken_from=low,
        taken_until=high,
        camera=camera,
        gps=gps,
        within=box,
        folder=_folder(_given(folder), base),
        types=parse_types(types) if types is not None else (),
        min_size=small,
        max_size=large,
    )


def _given(value: str | None) -> str | None:
    """A typed value without its outer spaces; None when absent or blank."""
    text = str(value).strip() if value is not None else ""
    return text or None


def _folder(folder: str | None, base: str | None) -> str | None:
    """`--in`'s folder: absolute (joined to `base`, the CLI's current folder), or, without a
    base (the web API), relative to the indexed folders and never leaving them."""
    if folder is None:
        return None
    where = os.path.expanduser(folder)
    if base is not None:
        return os.path.abspath(os.path.join(base, where))
    if os.path.isabs(where) or ".." in where.replace("\\", "/").split("/"):
        raise CrossmodalError(
            f"--in {folder!r}: give a folder inside the collection's indexed folders, "
            "relative to them (e.g. 2024/summer)"
        )
    where = where.strip("/").removeprefix("./").strip("/") if where != "." else ""
    return where or None  # the indexed folders themselves: every photo
