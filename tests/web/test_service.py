"""The web service's own parts: query batching, the LRU, vectors equal to the Python API's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from crossmodal import Collection
from crossmodal.web import WebSettings
from crossmodal.web.service import LRU, TextBatcher, WebService


def test_batcher_encodes_concurrent_queries_together() -> None:
    sizes: list[int] = []
    lock = threading.Lock()

    def encode(texts: list[str]) -> np.ndarray:
        with lock:
            sizes.append(len(texts))
        time.sleep(0.05)  # a forward: queries arriving meanwhile wait for the next batch
        return np.array([[len(t), 1.0] for t in texts], np.float32)

    batcher = TextBatcher(encode, max_batch=8, threads=1)
    texts = [f"query {'x' * n}" for n in range(24)] + ["same"] * 6
    with ThreadPoolExecutor(max_workers=30) as pool:
        vectors = list(pool.map(batcher, texts))
    batcher.close()
    assert [v[0] for v in vectors] == [len(t) for t in texts]  # each got its own vector
    assert max(sizes) <= 8 and len(sizes) < len(texts)


def test_batcher_encodes_a_repeated_query_once() -> None:
    started, gate = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        batches.append(texts)
        started.set()
        gate.wait(10)  # the first forward runs while the others queue up
        return np.ones((len(texts), 2), np.float32)

    batcher = TextBatcher(encode, max_batch=16, threads=1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(batcher, "first")
        assert started.wait(10)
        rest = [pool.submit(batcher, t) for t in ["same"] * 6 + ["other"]]
        time.sleep(0.2)
        gate.set()
        assert first.result().shape == (2,) and all(f.result().shape == (2,) for f in rest)
    batcher.close()
    assert batches == [["first"], ["same", "other"]]


def test_batcher_hands_errors_to_the_callers() -> None:
    def encode(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model broke")

    batcher = TextBatcher(encode, max_batch=4, threads=2)
    with pytest.raises(RuntimeError, match="model broke"):
        batcher("anything")
    batcher.close()


def test_lru_keeps_the_recent_ones() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.get_or_make("d", lambda: 4) == 4 and cache.get("d") == 4
    assert cache.hits == 4 and cache.misses == 2


@pytest.mark.parametrize("max_batch", [1, 16])
def test_service_vectors_match_the_python_api(api_collection: Collection, max_batch: int) -> None:
    service = WebService(api_collection, WebSettings(max_batch=max_batch))
    try:
        for text in ["a red striped card", "一只狗", "x"]:
            expected = api_collection.embed_query(text=text)[0]
            got = service._embed_text(text)
            assert np.allclose(got, expected, atol=1e-5)
        page = service.search_text("a red striped card", "t2i", 5, 0)
        direct = api_collection.search(text="a red striped card", k=5)
        assert [h["id"] for h in page.results] == [h.id for h in direct]
    finally:
        service.close()
