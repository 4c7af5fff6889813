"""The web service's own parts: query batching, the LRU, vectors equal to the Python API's.

The batcher itself is tested in tests/test_batching.py; here, the service's use of it."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from crossmodal import Collection
from crossmodal.web import WebSettings, create_app
from crossmodal.web.service import LRU, WebService
from tests.web.conftest import CAPTIONS

#: Queries of different lengths (texts in a batch are padded to the longest) and scripts.
QUERIES = [
    *CAPTIONS,
    "x",
    "stripes",
    "a card on a table in the light with thin and wide stripes of many colours",
    "一只狗",
    "红色的卡片",
]


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


def test_batched_encoding_equals_one_query_at_a_time(api_collection: Collection) -> None:
    """Queries encoded in one batch get the vectors they get alone (the text tower's fast
    path keeps a text's numbers independent of its batch companions)."""
    service = WebService(api_collection, WebSettings(max_batch=32))
    try:
        batched = service._encode_texts(QUERIES)
        alone = np.stack([api_collection.embed_query(text=q)[0] for q in QUERIES])
        np.testing.assert_allclose(batched, alone, atol=1e-5)
    finally:
        service.close()


def test_concurrent_queries_are_batched_and_match(api_collection: Collection) -> None:
    service = WebService(api_collection, WebSettings(max_batch=16, encode_threads=1))
    try:
        texts = QUERIES * 3
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            vectors = list(pool.map(service._embed_text, texts))
        for text, vector in zip(texts, vectors, strict=True):
            np.testing.assert_allclose(vector, api_collection.embed_query(text=text)[0], atol=1e-5)
        stats = service.stats()["query_batches"]
        assert stats["texts"] <= len(texts) and stats["batches"] <= stats["texts"]
    finally:
        service.close()


def api_get(client: httpx.AsyncClient, q: str) -> Any:
    return client.get("/api/search", params={"q": q, "k": 3})


def test_concurrent_requests_are_all_answered(api_collection: Collection) -> None:
    """Many requests at once through the app (one event loop, as uvicorn runs it): every one
    answered, each with the page its query gets on its own."""
    app = create_app(api_collection, WebSettings(max_batch=8), warm_up=False)
    service: WebService = app.state.service
    expected = {q: [h.id for h in api_collection.search(text=q, k=3)] for q in QUERIES}

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await asyncio.gather(*(api_get(client, q) for q in QUERIES * 4))

    try:
        responses = asyncio.run(main())
        assert all(r.status_code == 200 for r in responses)
        for q, r in zip(QUERIES * 4, responses, strict=True):
            assert [hit["id"] for hit in r.json()["results"]] == expected[q]
        assert service.stats()["query_batches"]["batches"] >= 1
    finally:
        service.close()


def test_a_failing_query_does_not_fail_its_batch(
    api_collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = api_collection.model
    encode = model.encode_texts

    def fragile(texts: list[str], *args: Any, **kwargs: Any) -> np.ndarray:
        if any("boom" in t for t in texts):
            raise RuntimeError("the text tower failed on 'boom'")
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode_texts", fragile)
    service = WebService(api_collection, WebSettings(max_batch=16, encode_threads=1))

    async def one(q: str) -> bytes | BaseException:
        try:
            return await service.search_text_json(q, "t2i", 3, 0)
        except RuntimeError as exc:
            return exc

    async def main() -> list[bytes | BaseException]:
        return await asyncio.gather(*(one(q) for q in [*CAPTIONS[:6], "boom", *CAPTIONS[6:]]))

    try:
        answers = asyncio.run(main())
    finally:
        service.close()
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1 and "boom" in str(failed[0])
    pages = [json.loads(a) for a in answers if isinstance(a, bytes)]
    assert len(pages) == len(CAPTIONS) and all(len(p["results"]) == 3 for p in pages)


def test_child_encoders_give_the_vectors_of_the_server(api_collection: Collection) -> None:
    """Text queries encoded in child processes (`crossmodal serve`'s default) get the vectors
    the server process gives them."""
    settings = WebSettings(child_encoders=True, encode_threads=2)
    service = WebService(api_collection, settings)
    try:
        service.warm_up()
        assert service._children is not None and service._children.usable
        vectors = service._encode_texts(QUERIES)
        alone = np.stack([api_collection.embed_query(text=q)[0] for q in QUERIES])
        np.testing.assert_allclose(np.stack(vectors), alone, atol=1e-5)
        page = service.search_text("a red striped card", "t2i", 3, 0)
        assert [h["id"] for h in page.results] == [
            h.id for h in api_collection.search(text="a red striped card", k=3)
        ]
    finally:
        service.close()


def test_child_encoders_that_cannot_start_leave_encoding_in_process() -> None:
    from crossmodal.web.encoders import ChildEncoders, ChildEncodersFailed

    children = ChildEncoders("no-such-model-anywhere", "dual:0", processes=1)
    assert children.start() is False and not children.usable
    with pytest.raises(ChildEncodersFailed):
        children.encode(["a dog"])
    children.close()
