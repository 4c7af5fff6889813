"""`check_search` refuses what `Collection.search` refuses, with its words, without a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmodal.collection import MODES
from crossmodal.errors import CrossmodalError, ImageLoadError
from crossmodal.search_options import SEARCH_MODES, check_search, parse_query

TEXT = [(1.0, "a dog")]
IMAGE = [(1.0, Path("beach.jpg"))]


def test_modes_match_the_collection() -> None:
    assert SEARCH_MODES == MODES


@pytest.mark.parametrize(
    ("terms", "mode", "resolved"),
    [(TEXT, "auto", "t2i"), (IMAGE, " AUTO ", "i2i"), (TEXT + IMAGE, "auto", "i2i"),
     (IMAGE, "i2t", "i2t"), (TEXT, "t2t", "t2t")],
)  # fmt: skip
def test_resolves_the_mode(terms: list, mode: str, resolved: str) -> None:
    assert check_search(terms, 5, mode) == resolved


@pytest.mark.parametrize(
    ("terms", "k", "mode", "words"),
    [
        (TEXT, 0, "auto", "k must be a positive number of results (got 0)"),
        (TEXT, True, "auto", "k must be a positive number of results (got True)"),
        (TEXT, 3, "sideways", "unknown mode 'sideways': use one of auto, t2i, i2i, i2t, t2t"),
        ([], 3, "auto", "empty query: give a text, the path of an image, or both"),
        (TEXT, 3, "i2t", "mode i2t searches from an image: the query has no image"),
        (IMAGE, 3, "t2i", "mode t2i searches from text: the query has no text"),
    ],
)
def test_refuses_with_the_collections_words(terms: list, k: int, mode: str, words: str) -> None:
    with pytest.raises(CrossmodalError) as caught:
        check_search(terms, k, mode)
    assert str(caught.value) == words


def test_missing_file_like_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for term in ("beach.jpg", "./beach", "~/x", "a/b", "photo.HEIC", "-snow.png"):
        with pytest.raises(ImageLoadError, match="no such image"):
            parse_query(["a dog", term])
    # plain words, numbers with dots, and weights stay text
    assert parse_query(["version", "2.0", "of", "it"]) == [(1.0, "version 2.0 of it")]
    assert parse_query(["0.5:sunset"]) == [(0.5, "sunset")]
