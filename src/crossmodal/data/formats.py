"""Parsers for every caption file shape Flickr8k-style data is passed around in.

The same captions circulate as a TSV, the original `Flickr8k.token.txt`, Kaggle's CSV and
Karpathy's JSON; users have whichever they downloaded. Each parser yields `CaptionRecord`s that
remember their line, so a bad row is reported as `file line N: reason` and can be fixed by hand.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossmodal.data.images import IMAGE_EXTENSIONS
from crossmodal.errors import DatasetError

__all__ = [
    "CaptionRecord",
    "describe_dirs",
    "detect_caption_format",
    "display_name",
    "existing_dirs",
    "find_file",
    "normalize_token_image",
    "parse_captions_json",
    "parse_captions_tsv",
    "parse_kaggle_csv",
    "parse_karpathy_json",
    "parse_token_file",
    "read_captions_file",
    "read_split_list",
    "read_text",
]

CAPTION_FORMATS = ("tsv", "token", "kaggle-csv", "karpathy-json", "captions-json")


@dataclass(frozen=True)
class CaptionRecord:
    """One caption as found in a file, with where it was found for error messages."""

    image: str
    caption: str
    line: int  # 1-based; for JSON files the 1-based entry number (unit == "entry")
    split: str | None = None  # only formats that carry their own split (Karpathy JSON)
    unit: str = "line"

    def location(self, where: str) -> str:
        """`captions.tsv line 17` / `captions.json entry 3`."""
        return f"{where} {self.unit} {self.line}"


def display_name(path: Path, root: Path | None = None) -> str:
    """How a file is named in error messages: relative to the dataset root when inside it."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name


def existing_dirs(dirs: Sequence[Path]) -> list[Path]:
    """The folders of `dirs` that exist, in order (a dataset's candidate image folders)."""
    return [d for d in dirs if d.is_dir()]


def find_file(dirs: Sequence[Path], filename: str) -> Path | None:
    """`filename` in the first of `dirs` that has it."""
    for d in dirs:
        p = d / filename
        if p.is_file():
            return p
    return None


def describe_dirs(dirs: Sequence[Path], base: Path) -> str:
    """The folders looked in, relative to `base`, for an error message."""
    names = []
    for d in dirs:
        rel = display_name(d, base)
        names.append("the root folder" if rel == "." else f"{rel}/")
    return ", ".join(names)


def read_text(path: Path, where: str) -> str:
    """File text for parsing; I/O and encoding problems become DatasetErrors naming `where`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{where}: file not found ({path})") from None
    except IsADirectoryError:
        raise DatasetError(f"{where}: is a directory, expected a file ({path})") from None
    except OSError as e:
        raise DatasetError(f"{where}: cannot read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DatasetError(f"{where} line {line}: not valid UTF-8 text") from None
    return text


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline), blank lines skipped."""
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield i, line


_EXT_RE = "|".join(sorted((e[1:] for e in IMAGE_EXTENSIONS), key=len, reverse=True))
# `2258277193_586949ec62.jpg.1` -> `2258277193_586949ec62.jpg` (a real typo in Flickr8k).
_TRAILING_JUNK = re.compile(rf"^(.*\.(?:{_EXT_RE}))\.[^/\\]+$", re.IGNORECASE)
_TOKEN_ID = re.compile(r"^(?P<image>.+)#(?P<n>\d+)$")


def normalize_token_image(name: str) -> str:
    """The image file name inside a caption id, minus junk pasted after its extension."""
    m = _TRAILING_JUNK.match(name)
    return m.group(1) if m else name


def _record(
    image: str,
    caption: str,
    where: str,
    line: int,
    split: str | None = None,
    unit: str = "line",
) -> CaptionRecord:
    image = image.strip()
    caption = caption.strip()
    if not image:
        raise DatasetError(f"{where} {unit} {line}: empty image name")
    if not caption:
        raise DatasetError(f"{where} {unit} {line}: empty caption for {image}")
    return CaptionRecord(image=image, caption=caption, line=line, split=split, unit=unit)


def parse_captions_tsv(path: Path, where: str | None = None) -> list[CaptionRecord]:
    """`image<TAB>caption` rows; the header is optional. Quotes are literal, not CSV quoting."""
    where = where or path.name
    out: list[CaptionRecord] = []
    first = True
    for n, line in _lines(read_text(path, where)):
        if first:
            first = False
            cols = [c.strip().lower() for c in line.split("\t")]
            if cols[:2] == ["image", "caption"]:
                continue
        if "\t" not in line:
            raise DatasetError(
                f"{where} line {n}: expected 'image<TAB>caption', found no tab: {line[:60]!r}"
            )
        image, caption = line.split("\t", 1)
        out.append(_record(image, caption, where, n))
    return out


def parse_token_file(path: Path, where: str | None = None) -> list[CaptionRecord]:
    """Flickr8k.token.txt: `<image>#<n><TAB>caption`."""
    where = where or path.name
    out: list[CaptionRecord] = []
    for n, line in _lines(read_text(path, where)):
        if "\t" not in line:
            raise DatasetError(
                f"{where} line {n}: expected '<image>#<n><TAB>caption', found no tab: {line[:60]!r}"
            )
        cid, caption = line.split("\t", 1)
        m = _TOKEN_ID.match(cid.strip())
        if not m:
            raise DatasetError(
                f"{where} line {n}: caption id {cid.strip()!r} is not '<image>#<number>'"
            )
        out.append(_record(normalize_token_image(m.group("image")), caption, where, n))
    return out


def parse_kaggle_csv(path: Path, where: str | None = None) -> list[CaptionRecord]:
    """Kaggle's captions.txt: CSV with header `image,caption`; captions may be quoted."""
    where = where or path.name
    text = read_text(path, where)
    reader = csv.reader(text.splitlines(keepends=True))
    out: list[CaptionRecord] = []
    header_seen = False
    last_line = 0
    try:
        for row in reader:
            start, last_line = last_line + 1, reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if not header_seen:
                header_seen = True
                cols = [c.strip().lower() for c in row]
                if cols[:2] != ["image", "caption"]:
                    raise DatasetError(
                        f"{where} line {start}: expected the header 'image,caption', "
                        f"found {','.join(row)[:60]!r}"
                    )
                continue
            if len(row) < 2:
                raise DatasetError(
                    f"{where} line {start}: expected 'image,caption', found one column: "
                    f"{row[0][:60]!r}"
                )
            # An unquoted caption containing commas splits into extra columns; rejoin them.
            out.append(_record(row[0], ",".join(row[1:]), where, start))
    except csv.Error as e:
        raise DatasetError(f"{where} line {reader.line_num}: malformed CSV ({e})") from None
    if not header_seen:
        raise DatasetError(f"{where}: empty file, expected the header 'image,caption'")
    return out


def _load_json(path: Path, where: str) -> Any:
    text = read_text(path, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where} line {e.lineno}: invalid JSON ({e.msg})") from None


def parse_karpathy_json(path: Path, where: str | None = None) -> list[CaptionRecord]:
    """Karpathy's dataset_*.json; `line` is the 1-based entry number in `images`."""
    where = where or path.name
    data = _load_json(path, where)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DatasetError(f"{where}: expected an object with an 'images' list (Karpathy format)")
    out: list[CaptionRecord] = []
    for k, entry in enumerate(images, start=1):
        at = f"{where} entry {k}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{at} (images[{k - 1}]): expected an object")
        fname = entry.get("filename")
        if not isinstance(fname, str) or not fname.strip():
            raise DatasetError(f"{at} (images[{k - 1}]): missing 'filename'")
        split = entry.get("split")
        if not isinstance(split, str):
            raise DatasetError(f"{at} (images[{k - 1}]): missing 'split' for {fname}")
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise DatasetError(f"{at} (images[{k - 1}]): no 'sentences' for {fname}")
        for s in sentences:
            raw = s.get("raw") if isinstance(s, dict) else None
            if raw is None and isinstance(s, dict) and isinstance(s.get("tokens"), list):
                raw = " ".join(str(t) for t in s["tokens"])
            if not isinstance(raw, str):
                raise DatasetError(f"{at} (images[{k - 1}]): sentence without 'raw' for {fname}")
            out.append(_record(fname, raw, where, k, split=split.strip().lower(), unit="entry"))
    return out


def parse_captions_json(path: Path, where: str | None = None) -> list[CaptionRecord]:
    """`[{"image": "rel/path.jpg", "captions": [...]}, ...]`; `line` is the entry number."""
    where = where or path.name
    data = _load_json(path, where)
    if not isinstance(data, list):
        raise DatasetError(
            f"{where}: expected a list of {{'image': ..., 'captions': [...]}} objects"
        )
    out: list[CaptionRecord] = []
    for k, entry in enumerate(data, start=1):
        at = f"{where} entry {k}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{at}: expected an object with 'image' and 'captions'")
        image = entry.get("image")
        if not isinstance(image, str) or not image.strip():
            raise DatasetError(f"{at}: missing 'image'")
        caps = entry.get("captions", entry.get("caption"))
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not caps:
            raise DatasetError(f"{at}: no captions for {image}")
        for c in caps:
            if not isinstance(c, str):
                raise DatasetError(f"{at}: caption for {image} is not a string: {c!r}")
            out.append(_record(image, c, where, k, unit="entry"))
    return out


_PARSERS = {
    "tsv": parse_captions_tsv,
    "token": parse_token_file,
    "kaggle-csv": parse_kaggle_csv,
    "karpathy-json": parse_karpathy_json,
    "captions-json": parse_captions_json,
}


def detect_caption_format(path: Path) -> str:
    """Which of CAPTION_FORMATS a file is, judged by its content (names are unreliable)."""
    where = path.name
    text = read_text(path, where)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        data = _load_json(path, where)
        if isinstance(data, dict) and "images" in data:
            return "karpathy-json"
        if isinstance(data, list):
            return "captions-json"
        raise DatasetError(
            f"{where}: JSON is neither Karpathy's {{'images': [...]}} nor a list of "
            "{'image': ..., 'captions': [...]}"
        )
    first = next((line for _, line in _lines(text)), None)
    if first is None:
        raise DatasetError(f"{where}: empty caption file")
    head = first.split("\t", 1)[0].strip()
    if "\t" in first and _TOKEN_ID.match(head):
        return "token"
    if "\t" not in first and first.replace(" ", "").lower().startswith("image,caption"):
        return "kaggle-csv"
    if "\t" in first:
        return "tsv"
    raise DatasetError(
        f"{where} line 1: unrecognised caption format (expected a TSV 'image<TAB>caption', "
        "Flickr8k.token.txt, a CSV with header 'image,caption', or JSON)"
    )


def parse_caption_file(
    path: Path, fmt: str | None = None, where: str | None = None
) -> list[CaptionRecord]:
    """Records of a caption file in any known format (auto-detected when fmt is None)."""
    fmt = fmt or detect_caption_format(path)
    try:
        parser = _PARSERS[fmt]
    except KeyError:
        raise DatasetError(
            f"unknown caption format {fmt!r}; known: {', '.join(_PARSERS)}"
        ) from None
    return parser(path, where)


def read_captions_file(path: str | Path) -> dict[str, list[str]]:
    """Captions by image file name, from any supported caption file, for labelling a gallery.

    Keys are base names because a user's photo folder rarely mirrors the dataset's layout;
    captions of two images that share a base name end up under the same key.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"caption file not found: {p}")
    out: dict[str, list[str]] = {}
    for rec in parse_caption_file(p):
        key = rec.image.replace("\\", "/").rsplit("/", 1)[-1]
        out.setdefault(key, []).append(rec.caption)
    return out


def read_split_list(path: Path, where: str | None = None) -> list[tuple[str, int]]:
    """(image name, 1-based line) per listed image; a name listed twice is an error."""
    where = where or path.name
    seen: dict[str, int] = {}
    out: list[tuple[str, int]] = []
    for n, line in _lines(read_text(path, where)):
        name = line.strip()
        if name in seen:
            raise DatasetError(
                f"{where} line {n}: {name} is listed twice (first on line {seen[name]})"
            )
        seen[name] = n
        out.append((name, n))
    return out
