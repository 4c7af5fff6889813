"""crossmodal.batching.MicroBatcher: concurrent single calls run as batches, each answered."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from crossmodal.batching import BatcherClosed, MicroBatcher


def lengths(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), 1.0] for t in texts], np.float32)


def test_concurrent_calls_are_batched_and_each_gets_its_own_result() -> None:
    sizes: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        time.sleep(0.05)  # a forward: calls arriving meanwhile wait for the next batch
        return lengths(texts)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=8, workers=1)
    texts = [f"query {'x' * n}" for n in range(24)] + ["same"] * 6
    with ThreadPoolExecutor(max_workers=30) as pool:
        vectors = list(pool.map(batcher, texts))
    batcher.close()
    assert [v[0] for v in vectors] == [len(t) for t in texts]
    assert max(sizes) <= 8 and len(sizes) < len(texts)
    assert batcher.largest == max(sizes) and batcher.batches == len(sizes)


def test_a_lone_call_is_not_kept_waiting() -> None:
    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(lengths, max_batch=32)
    started = time.perf_counter()
    assert batcher("alone")[0] == 5
    assert time.perf_counter() - started < 1.0  # no timer waits for companions
    batcher.close()


def test_equal_items_queued_together_are_processed_once() -> None:
    started, gate = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        batches.append(texts)
        started.set()
        gate.wait(10)  # the first batch runs while the others queue up
        return np.ones((len(texts), 2), np.float32)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=16)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(batcher, "first")
        assert started.wait(10)
        rest = [pool.submit(batcher, t) for t in ["same"] * 6 + ["other"]]
        time.sleep(0.2)
        gate.set()
        assert first.result().shape == (2,) and all(f.result().shape == (2,) for f in rest)
    batcher.close()
    assert batches == [["first"], ["same", "other"]]


def test_an_error_in_one_item_fails_only_that_item() -> None:
    calls: list[list[str]] = []
    gate = threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        gate.wait(10)
        if "bad" in texts:
            raise ValueError("cannot encode 'bad'")
        return lengths(texts)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {t: pool.submit(batcher, t) for t in ["warm", "a", "bad", "ccc", "dd"]}
        time.sleep(0.2)  # all queued behind the first batch
        gate.set()
        with pytest.raises(ValueError, match="cannot encode 'bad'"):
            futures["bad"].result()
        assert {t: futures[t].result()[0] for t in ["warm", "a", "ccc", "dd"]} == {
            "warm": 4,
            "a": 1,
            "ccc": 3,
            "dd": 2,
        }
    batcher.close()
    assert ["bad"] in calls  # alone in the end, whatever batch it first came in


def test_an_exception_returned_in_place_of_a_result_fails_only_its_item() -> None:
    def search(texts: list[str]) -> list[object]:
        return [KeyError(t) if t.startswith("?") else t.upper() for t in texts]

    batcher: MicroBatcher[str, object] = MicroBatcher(search, max_batch=8)
    good, bad = batcher.submit("dog"), batcher.submit("?cat")
    assert good.result(5) == "DOG"
    with pytest.raises(KeyError):
        bad.result(5)
    batcher.close()


def test_a_wrong_number_of_results_is_an_error_not_a_hang() -> None:
    batcher: MicroBatcher[str, int] = MicroBatcher(lambda items: [], max_batch=4)
    with pytest.raises(ValueError, match="0 results for 1"):
        batcher.submit("x").result(5)
    batcher.close()


def test_coroutines_wait_without_threads_and_all_are_answered() -> None:
    sizes: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        time.sleep(0.01)
        return lengths(texts)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=16, workers=2)

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.run("t" * n) for n in range(1, 101)))

    vectors = asyncio.run(main())
    batcher.close()
    assert [int(v[0]) for v in vectors] == list(range(1, 101))
    assert sum(sizes) == 100 and len(sizes) < 100 and max(sizes) <= 16


def test_a_cancelled_call_does_not_disturb_the_others() -> None:
    started, gate = threading.Event(), threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        started.set()
        gate.wait(10)
        return lengths(texts)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=8)

    async def main() -> tuple[float, float]:
        first = asyncio.ensure_future(batcher.run("first"))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        gone = asyncio.ensure_future(batcher.run("client went away"))
        kept = asyncio.ensure_future(batcher.run("kept"))
        await asyncio.sleep(0.05)
        gone.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return float((await first)[0]), float((await kept)[0])

    assert asyncio.run(main()) == (5.0, 4.0)
    batcher.close()


def test_close_finishes_queued_items_then_refuses_new_ones() -> None:
    gate = threading.Event()

    def encode(texts: list[str]) -> np.ndarray:
        gate.wait(10)
        return lengths(texts)

    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(encode, max_batch=2, workers=2)
    queued = [batcher.submit(f"item {n}") for n in range(7)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert [q.result(5)[0] for q in queued] == [6.0] * 7
    with pytest.raises(BatcherClosed):
        batcher.submit("late")


def test_settings() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lengths, max_batch=0)
    seen: list[str] = []
    batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
        lengths, workers=2, on_start=lambda: seen.append(threading.current_thread().name)
    )
    batcher("x")
    batcher.close()
    assert sorted(seen) == ["batch-0", "batch-1"]
