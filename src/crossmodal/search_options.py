"""A search query from the command line, and the checks of a search that need no model.

`parse_query` turns CLI words into weighted terms; `check_search` refuses bad k / mode / query
combinations with the same words as `Collection.search`. Both import nothing heavy (no torch,
no numpy), so the CLI answers a mistyped command in milliseconds, before any model loads.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

from crossmodal.errors import CrossmodalError, ImageLoadError

__all__ = ["SEARCH_MODES", "QueryTerm", "check_search", "parse_query"]

#: kept equal to crossmodal.collection.MODES (tests/test_search_options.py compares them)
SEARCH_MODES = ("auto", "t2i", "i2i", "i2t", "t2t")

#: a text, or the path of an image
QueryTerm: TypeAlias = str | Path

_WEIGHT = re.compile(r"^(?P<w>[+-]?(?:\d+(?:\.\d*)?|\.\d+)):(?P<rest>.+)$", re.DOTALL)


def parse_query(tokens: Sequence[str], text_only: bool = False) -> list[tuple[float, QueryTerm]]:
    """CLI words -> weighted terms. `"a dog" + beach.jpg - snow`, `2:"golden retriever"`.

    A word that names an existing file is an image; other adjacent words join into one text
    ("a dog" typed unquoted works). `+` / `-` (alone, or glued to the front of a word) start a
    new term with that sign; `W:term` gives a term weight W (multiplied by the sign).
    A word that looks like a path (an image suffix, a `/`, or a leading `./` or `~`) but names
    no file is an `ImageLoadError` naming it, never silently searched as text. A term in
    literal double quotes (`'"AC/DC live"'` in a shell) is always text; `text_only=True`
    (the CLI's --text) reads every term as text.
    """
    terms: list[tuple[float, QueryTerm]] = []
    sign = 1.0
    text_words: list[str] = []
    text_weight = 1.0

    def flush() -> None:
        nonlocal text_words
        if text_words:
            terms.append((text_weight, " ".join(text_words)))
            text_words = []

    def is_file(token: str) -> bool:
        return not text_only and _is_file(token)

    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        if token in ("+", "-"):
            flush()
            sign = -1.0 if token == "-" else 1.0
            continue
        if not is_file(token) and token[0] in "+-" and not _WEIGHT.match(token):
            flush()
            sign = -1.0 if token[0] == "-" else 1.0
            token = token[1:].strip()
            if not token:
                continue
        weight = 1.0
        match = None if is_file(token) else _WEIGHT.match(token)
        if match:
            weight = float(match["w"])
            token = match["rest"].strip()
        quoted = len(token) >= 2 and token[0] == token[-1] == '"'
        if quoted:
            token = token[1:-1].strip()
            if not token:
                continue
        if not quoted and is_file(token):
            flush()
            terms.append((sign * weight, Path(token).expanduser()))
            sign = 1.0
            continue
        if not quoted and not text_only and _looks_like_path(token):
            raise ImageLoadError(
                f"no such image: {token} (to search these words as text, give --text "
                f"or quote them as '\"{token}\"')"
            )
        if match or quoted or not text_words:
            flush()
            text_words, text_weight = [token], sign * weight
            sign = 1.0
        else:
            text_words.append(token)
    flush()
    return terms


def _looks_like_path(token: str) -> bool:
    """A word meant as a file: an image suffix, a path separator, or a leading ./ or ~."""
    if token.startswith("~") or "/" in token or os.sep in token:
        return True
    kind, _ = mimetypes.guess_type(f"x{Path(token).suffix.lower()}", strict=False)
    return kind is not None and kind.startswith("image/")


def _is_file(token: str) -> bool:
    try:
        return Path(token).expanduser().is_file()
    except (OSError, ValueError):
        return False


def check_search(terms: Sequence[tuple[float, Any]], k: int, mode: str) -> str:
    """The mode the query will run in (auto resolved), or a `CrossmodalError` naming the fix.

    `terms` are `parse_query`'s (weight, text or image path) pairs.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CrossmodalError(f"k must be a positive number of results (got {k})")
    mode = mode.strip().lower()
    if mode not in SEARCH_MODES:
        raise CrossmodalError(f"unknown mode {mode!r}: use one of {', '.join(SEARCH_MODES)}")
    if not terms:
        raise CrossmodalError("empty query: give a text, the path of an image, or both")
    has_text = any(isinstance(item, str) for _, item in terms)
    has_image = any(not isinstance(item, str) for _, item in terms)
    if mode == "auto":
        mode = "i2i" if has_image else "t2i"
    if mode.startswith("t") and not has_text:
        raise CrossmodalError(f"mode {mode} searches from text: the query has no text")
    if mode.startswith("i") and not has_image:
        raise CrossmodalError(f"mode {mode} searches from an image: the query has no image")
    return mode
