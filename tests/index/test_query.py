"""The one mode rule and the query encoder, with a fake model (no towers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from crossmodal.errors import CrossmodalError
from crossmodal.index.query import LRU, QueryEncoder, direction


class FakeModel:
    """Texts and images -> fixed vectors (not unit: the encoder must normalise them)."""

    dim = 3
    name = "fake"

    def __init__(self) -> None:
        self.texts: list[list[str]] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.append(list(texts))
        table = {"dog": [2.0, 0.0, 0.0], "cat": [0.0, 3.0, 0.0]}
        return np.array([table.get(t, [0.0, 0.0, 1.0]) for t in texts], np.float32)

    def encode_query_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([[0.0, 0.0, 1.0] for _ in images], np.float32)


def test_direction_is_the_one_mode_rule() -> None:
    assert direction("t2i") == direction("auto", has_text=True, has_image=False)
    assert (direction("t2i").target, direction("t2i").cross_modal) == ("images", True)
    assert (direction("t2t").target, direction("t2t").cross_modal) == ("texts", False)
    assert (direction("i2t").target, direction("i2t").cross_modal) == ("texts", True)
    assert direction("auto", has_text=True, has_image=True).mode == "i2i"
    with pytest.raises(CrossmodalError, match="unknown mode"):
        direction("x2y")
    with pytest.raises(CrossmodalError, match="has no image"):
        direction("i2t", has_text=True, has_image=False)
    with pytest.raises(CrossmodalError, match="has no text"):
        direction("t2i", has_text=False, has_image=True)


def test_text_vectors_are_unit_and_cached() -> None:
    model = FakeModel()
    encoder = QueryEncoder(lambda: model, cache_size=2)  # type: ignore[arg-type, return-value]
    vecs = encoder.text_vectors(["dog", "cat", "dog"])
    np.testing.assert_allclose(vecs, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert model.texts == [["dog", "cat"]]  # one forward, each text once
    encoder.text_vectors(["cat"])
    assert model.texts == [["dog", "cat"]] and encoder.cache.hits == 1
    encoder.clear()
    encoder.text_vectors(["cat"])
    assert model.texts[-1] == ["cat"]


def test_embed_sums_weights_and_normalises() -> None:
    model = FakeModel()
    encoder = QueryEncoder(lambda: model)  # type: ignore[arg-type, return-value]
    picture = Image.new("RGB", (4, 4))
    vector = encoder.embed([(1.0, "dog"), (-0.5, "cat")], [(2.0, picture)])
    expected = np.array([1.0, -0.5, 2.0]) / np.linalg.norm([1.0, -0.5, 2.0])
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    assert vector.dtype == np.float32
    with pytest.raises(CrossmodalError, match="empty query"):
        encoder.embed([], [])
    with pytest.raises(CrossmodalError, match="weight 0"):
        encoder.embed([(0.0, "dog")], [])
    with pytest.raises(CrossmodalError, match="cancel out"):
        encoder.embed([(1.0, "dog"), (-1.0, "dog")], [])


def test_image_vectors_cached_by_key_and_a_text_backend_used_first() -> None:
    model = FakeModel()
    encoder = QueryEncoder(lambda: model)  # type: ignore[arg-type, return-value]
    decoded: list[int] = []

    def decode() -> Image.Image:
        decoded.append(1)
        return Image.new("RGB", (4, 4))

    first = encoder.image_vector("digest", decode)
    again = encoder.image_vector("digest", decode)
    assert decoded == [1] and np.array_equal(first, again)
    encoder.text_backend = lambda texts: np.ones((len(texts), 3), np.float32)
    np.testing.assert_allclose(encoder.text_vectors(["new"])[0], np.ones(3) / np.sqrt(3))
    encoder.text_backend = lambda texts: None  # the backend is gone: the model encodes
    np.testing.assert_allclose(encoder.text_vectors(["dog"])[0], [1, 0, 0])
    assert model.texts == [["dog"]]


def test_lru_keeps_the_recent_ones() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
