"""Text-tower forwards in child processes, for a server answering many new queries at once.

A forward spends most of its time in torch / BLAS kernels, which release Python's GIL, but
its tokenisers, op dispatch and the multilingual USE tower's glue code hold it. With two
forwards running as threads beside the event loop and the catalogue lookups of one server
process, they take turns on that one GIL: on two cores the process used ~1.65 of them and
answered 380-390 new queries/s (docs/benchmarks.md, web section). In child processes, each with
its own interpreter, the forwards use the cores fully (1.84 cores, 430-460 queries/s), while
the parent keeps everything else (one process, so no per-connection split of clients between
processes, as `--workers 2` has: there all 50 connections of a run once landed on one).

The children load the same model by name and check its fingerprint, so their vectors are the
parent's. Anything going wrong with them (a child that fails to start or dies) turns this off
and the parent encodes in-process again: slower, never wrong.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

__all__ = ["ChildEncoders"]

log = logging.getLogger("crossmodal.web")

_model: Any = None  # the model of a child process


def _start_child(model_name: str, fingerprint: str) -> None:
    """Initialiser of a child: one thread for everything (one forward per child at a time;
    the parent runs as many children as cores), then the model, checked."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # [fast-cli] the exported query bundle when there is one: a child starts in about a
    # second, without torch, instead of loading the torch model (models/query_bundle.py)
    from crossmodal.models.query_bundle import load_query_bundle

    model: Any = load_query_bundle(model_name)
    if model is None:
        import torch

        torch.set_num_threads(1)
        from crossmodal.models.towers import ConcatTextTower

        # the children are the server's throughput: one thread each, towers one after the other
        ConcatTextTower.side_by_side_up_to = 0
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
    except ImportError:  # pragma: no cover - a dependency of the USE tower's package
        pass
    from crossmodal.models import load_model
    from crossmodal.web.threads import one_blas_thread_per_query

    global _model
    model = model or load_model(model_name)
    if model.fingerprint != fingerprint:
        raise RuntimeError(f"model {model_name} in a child is not the server's ({fingerprint})")
    if getattr(model, "image_tower", None) is not None:
        model.image_tower = None  # never used here: memory back
    one_blas_thread_per_query(model)
    _model = model
    _encode(["a photo"])  # lazy initialisation (fast paths, kernels) before the first query
    # the model's objects, kept out of the collector's full passes as in the server process
    # (crossmodal.web.server.build_app): such a pass walking them stalls a batch
    gc.collect()
    gc.freeze()


def _encode(texts: list[str]) -> np.ndarray:
    vectors = np.asarray(_model.encode_texts(texts), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class ChildEncoders:
    """`encode(texts)` -> unit vectors, run in one of `processes` child processes.

    Started with `start()` (blocks until every child has loaded the model, ~10 s for
    `default`); `encode` raises `ChildEncodersFailed` once the children are unusable, after
    which `usable` is False and callers encode in-process.
    """

    def __init__(self, model_name: str, fingerprint: str, processes: int) -> None:
        self.model_name = model_name
        self.fingerprint = fingerprint
        self.processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.usable = False

    def start(self) -> bool:
        """Start the children and wait for them; False (and logged) when they cannot start."""
        # spawned, not forked: a fork of a process with threads and OpenMP pools is unsafe
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.processes,
            mp_context=context,
            initializer=_start_child,
            initargs=(self.model_name, self.fingerprint),
        )
        try:
            # one task per child, all at once: each child is up once its task returns
            warm = [pool.submit(_encode, [f"warm-up {n}"]) for n in range(self.processes)]
            for future in warm:
                future.result(timeout=600)
        except Exception as exc:  # any failure: encode in-process instead
            log.warning("text encoding stays in the server process: %s", exc)
            pool.shutdown(wait=False, cancel_futures=True)
            return False
        self._pool = pool
        self.usable = True
        return True

    def encode(self, texts: list[str]) -> np.ndarray:
        pool = self._pool
        if pool is None or not self.usable:
            raise ChildEncodersFailed("no child processes")
        try:
            return pool.submit(_encode, texts).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self.usable:
                    log.warning("a text-encoding process died; encoding in-process from now")
                self.usable = False
            raise ChildEncodersFailed(str(exc)) from exc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        self.usable = False
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ChildEncodersFailed(RuntimeError):
    """The child processes cannot encode (they died or never started)."""
