"""Dynamic micro-batching: single calls from many threads or coroutines, run as batches.

A transformer forward over 32 short texts costs far less than 32 forwards over one text (the
weights are read once per batch, and the matrix products run near the core's peak only with
many rows), so a server answering concurrent queries should encode them together. The
`MicroBatcher` collects the calls that arrive while its workers are busy and hands them to
`process` in one list:

    batcher = MicroBatcher(model.encode_texts, max_batch=32)
    vector = batcher("a dog on a beach")                 # from any thread, blocks
    vector = await batcher.run("a dog on a beach")       # from a coroutine, blocks nothing

There is no timer: a worker that is free takes whatever is queued at once (a lone call is a
batch of one, without added latency), so batches grow exactly as far as the load makes them.
Equal items queued together are processed once. One failing item does not fail the others:
`process` may return an exception instance in an item's place, and when `process` raises for
a whole batch, its items are retried one by one so that only the culprit gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Generic, TypeVar

__all__ = ["BatcherClosed", "MicroBatcher"]

T = TypeVar("T", bound=Hashable)
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """A call arrived after `MicroBatcher.close()`."""


class MicroBatcher(Generic[T, R]):
    """Runs `process(items) -> results` (same length and order) over batches of single calls.

    `workers` threads take batches from one queue, each at most `max_batch` distinct items.
    With more than one worker, `process` must be thread-safe. `on_start` runs once in each
    worker thread before its first batch (per-thread settings such as FAISS's OpenMP threads).
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        max_batch: int = 32,
        workers: int = 1,
        name: str = "batch",
        on_start: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1")
        self._process = process
        self.max_batch = max_batch
        self._on_start = on_start
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | None] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        #: batches run, distinct items processed, and the largest batch so far
        self.batches = 0
        self.items = 0
        self.largest = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # ---- calling ------------------------------------------------------------------------------
    def submit(self, item: T) -> Future[R]:
        """Queue one item; the future gets its result, or the exception its processing raised."""
        future: Future[R] = Future()
        with self._close_lock:  # no item may slip in behind the workers' stop signals
            if self._closed:
                raise BatcherClosed("this batcher is closed")
            self._queue.put((item, future))
        return future

    def __call__(self, item: T) -> R:
        return self.submit(item).result()

    async def run(self, item: T) -> R:
        """`self(item)` for a coroutine: waits without holding a thread. Cancelling the
        coroutine (a client that went away) drops the item unless its batch has started."""
        return await asyncio.wrap_future(self.submit(item))

    def close(self, wait: bool = True) -> None:
        """Stop the workers once the items queued so far are processed."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    # ---- the workers --------------------------------------------------------------------------
    def _work(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:  # what is queued now, without waiting for more
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:  # closing: finish this batch, then stop
                    stop = True
                    break
                batch.append(more)
            try:
                self._run(batch)
            except BaseException as exc:  # never leave a caller waiting on a dead worker
                for _, future in batch:
                    with contextlib.suppress(InvalidStateError):  # done or cancelled meanwhile
                        future.set_exception(exc)
                raise
            if stop:
                return

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        # a future cancelled while queued (its caller gave up) is dropped; the others are
        # marked running, after which they cannot be cancelled and set_result cannot fail
        waiting: dict[T, list[Future[R]]] = {}
        for item, future in batch:
            if future.set_running_or_notify_cancel():
                waiting.setdefault(item, []).append(future)
        if not waiting:
            return
        items = list(waiting)  # equal items once, in arrival order
        results = self._results(items)
        for item, result in zip(items, results, strict=True):
            for future in waiting[item]:
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        with self._stats_lock:
            self.batches += 1
            self.items += len(items)
            self.largest = max(self.largest, len(items))

    def _results(self, items: list[T]) -> list[R | BaseException]:
        try:
            results = list(self._process(items))
            if len(results) != len(items):
                raise ValueError(f"batch function gave {len(results)} results for {len(items)}")
            return results
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        # one bad item (a text the tokenizer chokes on, say) must not fail the others: each
        # again on its own, so that only the culprit gets the error
        out: list[R | BaseException] = []
        for item in items:
            try:
                (result,) = self._process([item])
            except Exception as exc:
                result = exc
            out.append(result)
        return out
