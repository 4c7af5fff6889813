"""Checks of a search's options that need no model: k, mode, and whether the query fits it.

`check_search` refuses with the same words as `Collection.search`, so the CLI (and any other
caller) can fail in milliseconds instead of after loading the towers. It imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossmodal.errors import CrossmodalError

__all__ = ["SEARCH_MODES", "check_search"]

#: kept equal to crossmodal.collection.MODES (tests/test_search_options.py compares them)
SEARCH_MODES = ("auto", "t2i", "i2i", "i2t", "t2t")


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
