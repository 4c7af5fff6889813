"""Embedding an index run's files on a Ray cluster (`crossmodal index DIR --ray [ADDRESS]`).

The driver (the `crossmodal index` process) keeps everything that touches the catalogue: it
lists the folder, hashes what may have moved, plans the sync, and commits each embedded batch
in its own transaction, exactly as in-process indexing does (`ingest.embed_files`): an
interrupted run resumes, and `kill -9` of the driver loses nothing committed. Only decoding
and embedding move out: each Ray actor holds the model (one actor per CPU core of the
cluster) and turns a batch of file paths into the same `(loaded, vectors, text_vectors)` that
`pipeline.iter_embedded_batches` yields, with the same loader (`pipeline.load_file`), so bad
files fail with the same words. The actors read the files by path: every node must see the
folder at the path the driver sees (a shared or replicated file system).

A worker that dies mid-run (killed, out of memory) is restarted by Ray and its batches are
retried; a batch whose actor is gone for good is re-queued on the others. Batches are yielded
in order, so images get the same ids as an in-process run; nothing is committed twice because
only a batch's one delivered result is committed.

Without an address a local Ray is started for the run (one CPU per core, no dashboard, quiet
logs, its temporary folder under /tmp) and shut down after; a process that already called
`ray.init()` is used as it is and left running. After a `kill -9` of the driver the local
Ray's processes exit by themselves (measured: within about two minutes); only its temporary
folder, a few hundred KB, is left in /tmp.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import crossmodal
from crossmodal.errors import ConfigError, CrossmodalError
from crossmodal.index.ingest import BatchSource
from crossmodal.index.pipeline import (
    LoadedImage,
    _model_input,
    embed_loaded,
    iter_embedded_batches,
    load_file,
)
from crossmodal.models.base import Encoder

__all__ = [
    "LOCAL",
    "RaySettings",
    "batch_source",
    "check_ray_settings",
    "is_ray_address",
    "ray_embedded_batches",
]

#: `--ray` without an address: start a local Ray for the run
LOCAL = "local"
#: batches queued per actor beyond the one it is running, so it never waits for the driver
QUEUED_PER_ACTOR = 2
#: how often Ray restarts one actor, and retries a task on it, before giving up on it
ACTOR_RESTARTS = 3
#: how often the driver re-queues one batch whose actor died for good
BATCH_ATTEMPTS = 3
#: environment the actors get from the driver, so they take the same numeric path
PASSED_ENV = ("CROSSMODAL_FAST", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

#: timings of each run at INFO ("workers ready", "last batch"): benchmarks/ray_index.py reads them
log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/:]+(:\d+)?|[^\s/:]+:\d+)$")


@dataclass(frozen=True)
class RaySettings:
    """Where to embed: `address` LOCAL, 'auto' (the cluster `ray start` made on this
    machine, or $RAY_ADDRESS), HOST:PORT or ray://HOST:PORT; `workers` actors (None: one per
    CPU core of the cluster)."""

    address: str = LOCAL
    workers: int | None = None


def is_ray_address(text: str) -> bool:
    """Whether `text` has the form of a Ray address (not whether a cluster is there)."""
    return bool(_ADDRESS.match(text.strip()))


def check_ray_settings(address: str | None, workers: int | None) -> RaySettings | None:
    """The settings of `index(ray=..., ray_workers=...)`, checked before anything starts;
    None for an in-process run. A `ConfigError` (one line) for a malformed address or count."""
    if address is None:
        if workers is not None:
            raise ConfigError("--ray-workers needs --ray / --ray-workers 需要 --ray")
        return None
    address = address.strip() or LOCAL
    if not is_ray_address(address):
        raise ConfigError(
            f"--ray address {address!r} is not one: give HOST:PORT (a `ray start --head` "
            "cluster), ray://HOST:PORT, auto, or nothing for a local Ray; put the folder "
            "before --ray / --ray 地址应为 HOST:PORT、ray://HOST:PORT 或 auto"
        )
    if workers is not None and workers < 1:
        raise ConfigError(
            f"--ray-workers must be at least 1 (got {workers}) / --ray-workers 至少为 1"
        )
    return RaySettings(address, workers)


def batch_source(settings: RaySettings | None) -> BatchSource:
    """What embeds an index run's batches: this process, or Ray actors per `settings`."""
    if settings is None:
        return iter_embedded_batches
    return functools.partial(ray_embedded_batches, settings)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CrossmodalError(
            "--ray needs the ray package: pip install 'crossmodal[ray]' / 需要安装 ray"
        ) from None
    return ray


@contextlib.contextmanager
def _connected(settings: RaySettings) -> Iterator[tuple[Any, int]]:
    """(the ray module, CPUs of the cluster), connected for the block: a local Ray started
    for it (and shut down after) when there is none in this process and no address."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage report
    if ray.is_initialized():  # the caller's own Ray session: use it, leave it running
        yield ray, int(ray.cluster_resources().get("CPU", 1))
        return
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    temp_dir = None
    try:
        if settings.address == LOCAL:
            cpus = max(os.cpu_count() or 1, settings.workers or 1)
            temp_dir = tempfile.mkdtemp(prefix="crossmodal-ray-")
            ray.init(
                num_cpus=cpus, include_dashboard=False, _temp_dir=temp_dir,
                object_store_memory=256 << 20, **quiet,
            )  # fmt: skip
        else:
            ray.init(address=settings.address, **quiet)
    except CrossmodalError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: one line for all
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        where = "start a local Ray" if settings.address == LOCAL else f"reach {settings.address}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CrossmodalError(
            f"cannot {where} for --ray: {reason} (start a cluster with `ray start --head`) "
            "/ 无法连接 Ray 集群"
        ) from None
    try:
        yield ray, int(ray.cluster_resources().get("CPU", 1))
    finally:
        ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


class _Embedder:
    """A Ray actor's body: the model, loaded once, and batches of paths -> vectors."""

    def __init__(self, model_name: str) -> None:
        from crossmodal.models import load_model
        from crossmodal.runtime import prepare_torch

        prepare_torch(1)  # one core per actor: intra-op threads would fight each other
        self.model = load_model(model_name)
        self.preprocess, self.draft = _model_input(self.model)

    def ready(self) -> tuple[str, int]:
        """(the model's fingerprint, this worker's pid): the driver checks the model matches."""
        return self.model.fingerprint, os.getpid()

    def embed(
        self,
        paths: list[str],
        indices: list[int],
        texts: list[list[str]],
        keep_features: bool = False,
    ) -> tuple[list[LoadedImage], np.ndarray, np.ndarray]:
        loaded = [
            load_file(Path(p), i, self.preprocess, self.draft)
            for p, i in zip(paths, indices, strict=True)
        ]
        wanted = [t for x, ts in zip(loaded, texts, strict=True) if x.error is None for t in ts]
        vectors, text_vectors = embed_loaded(self.model, loaded, wanted, keep_features)
        return loaded, vectors, text_vectors


def ray_embedded_batches(
    settings: RaySettings,
    model: Encoder,
    paths: Sequence[Path],
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
    texts_for: Callable[[int], Sequence[str]] | None = None,
    keep_features: bool = False,
) -> Iterator[tuple[list[LoadedImage], np.ndarray, np.ndarray]]:
    """`pipeline.iter_embedded_batches` on Ray actors (`settings`), batches in order.
    `keep_features`: the actors also send back each image's pooled tower features, from
    which the driver stores the automatic tags as an in-process run does."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    chunks = [
        list(range(s, min(s + batch_size, len(paths)))) for s in range(0, len(paths), batch_size)
    ]
    if not chunks:
        return
    started = time.perf_counter()
    with _connected(settings) as (ray, cpus):
        workers = min(settings.workers or cpus, len(chunks))
        if settings.workers and settings.workers > cpus:  # its actors would wait forever
            raise CrossmodalError(
                f"--ray-workers {settings.workers}: the Ray cluster has {cpus} CPU(s) "
                f"/ 集群只有 {cpus} 个 CPU"
            )
        actors = _start_actors(ray, model, workers)
        log.info("%d Ray workers ready in %.2f s", workers, time.perf_counter() - started)
        try:

            def submit(actor: Any, chunk: list[int]) -> Any:
                texts = [list(texts_for(i)) if texts_for else [] for i in chunk]
                return actor.embed.remote(
                    [str(paths[i]) for i in chunk], chunk, texts, keep_features
                )

            for result in _run_in_order(ray, actors, chunks, submit):
                if on_progress is not None:
                    on_progress(len(result[0]))
                yield result
            log.info("last batch after %.2f s", time.perf_counter() - started)
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)


def _start_actors(ray: Any, model: Encoder, workers: int) -> list[Any]:
    """`workers` actors holding the model, ready; a `CrossmodalError` when they cannot load it
    or load another version of it than the driver's."""
    name = model.name
    if Path(name).expanduser().exists():  # a model folder: the workers' cwd is not ours
        name = str(Path(name).expanduser().resolve())
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    # the workers import this crossmodal (a checkout run with PYTHONPATH=src, say), not
    # another one installed in the venv; on other nodes the path is the same or absent
    package_root = str(Path(crossmodal.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p
    )
    actor_class = ray.remote(
        num_cpus=1, max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS
    )(_Embedder)
    actors = [
        actor_class.options(runtime_env={"env_vars": env}).remote(name) for _ in range(workers)
    ]
    try:
        ready = ray.get([a.ready.remote() for a in actors])
    except Exception as exc:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        reason = _first_line(exc)
        if "TemporaryActor" in reason:  # Ray's stand-in for a class the worker cannot import
            reason = "they cannot import crossmodal (install the same version on every node)"
        raise CrossmodalError(
            f"the Ray workers could not load model {name!r}: {reason} / Ray 工作进程无法加载模型"
        ) from None
    if any(fingerprint != model.fingerprint for fingerprint, _ in ready):
        for actor in actors:
            ray.kill(actor, no_restart=True)
        raise CrossmodalError(
            f"the Ray workers load another version of model {name!r} than this machine: "
            "install the same crossmodal and model on every node / 各节点的模型版本不一致"
        )
    return actors


def _first_line(exc: BaseException) -> str:
    """The reason of a Ray error in one line (its cause's last line for a task error)."""
    cause = getattr(exc, "cause", None)
    text = str(cause if cause is not None else exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if cause is not None and lines else (lines[0] if lines else "")


def _run_in_order(
    ray: Any, actors: list[Any], chunks: list[list[int]], submit: Callable[[Any, list[int]], Any]
) -> Iterator[tuple[list[LoadedImage], np.ndarray, np.ndarray]]:
    """Each chunk's result, in chunk order, with at most QUEUED_PER_ACTOR + 1 chunks per
    actor in flight; a chunk whose actor died for good goes to the others."""
    alive = list(range(len(actors)))
    load = dict.fromkeys(alive, 0)
    todo = deque(range(len(chunks)))
    running: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (chunk, actor)
    attempts = [0] * len(chunks)
    done: dict[int, tuple[list[LoadedImage], np.ndarray, np.ndarray]] = {}
    next_out = 0
    window = (QUEUED_PER_ACTOR + 1) * len(actors)
    while next_out < len(chunks):
        # bounded look-ahead: results waiting for an earlier chunk count against the window
        while todo and alive and todo[0] < next_out + window:
            actor = min(alive, key=lambda a: load[a])
            if load[actor] > QUEUED_PER_ACTOR:
                break
            chunk = todo.popleft()
            running[submit(actors[actor], chunks[chunk])] = (chunk, actor)
            load[actor] += 1
        if not running:
            raise CrossmodalError(
                "every Ray worker died (out of memory?): the batches committed so far are "
                "kept; run the same command again to go on / 所有 Ray 工作进程都已退出"
            )
        (ref,), _ = ray.wait(list(running), num_returns=1)
        chunk, actor = running.pop(ref)
        load[actor] -= 1
        try:
            done[chunk] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised by the batch's code, not a crash
            if isinstance(exc.cause, CrossmodalError):
                raise exc.cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            # gone for good (Ray's restarts and retries are spent): re-queue the batch
            if actor in alive and isinstance(exc, ray.exceptions.ActorDiedError):
                alive.remove(actor)
            attempts[chunk] += 1
            if attempts[chunk] >= BATCH_ATTEMPTS:
                raise CrossmodalError(
                    f"a Ray worker died {attempts[chunk]} times on the same batch "
                    f"({_first_line(exc)}): the batches before it are kept / Ray 工作进程反复退出"
                ) from None
            todo.appendleft(chunk)
            continue
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
