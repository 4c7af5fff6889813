"""How a served model's work is pinned to threads (a server runs one forward per core)."""

from __future__ import annotations

import threading

__all__ = ["one_blas_thread_per_query", "one_openmp_thread"]


def one_blas_thread_per_query(model: object) -> None:
    """Pin the numpy (BLAS) text towers of a served model to one thread per forward.

    The multilingual USE tower asks BLAS for min(4, cores) threads on every call. A server runs
    one forward per core side by side already (`WebService`'s batcher), so each forward's extra BLAS
    threads only contend for the same two cores (docs/benchmarks.md, web section). torch is
    pinned to one thread by `server.setup_torch` for the same reason.
    """
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return
    for module in modules():
        use = getattr(module, "_use", None)  # crossmodal.models.towers.USETower's encoder
        if use is None or not hasattr(use, "threads"):
            continue
        use.threads = 1
        backend = getattr(use, "_backend", None)  # built on first use, with the threads above
        if backend is not None and hasattr(backend, "threads"):
            backend.threads = 1


_thread_state = threading.local()


def one_openmp_thread() -> None:
    """Run FAISS single-threaded in the calling thread (once per thread, then a no-op).

    Routes run on a pool of threads, and OpenMP gives each new calling thread its own team of
    (by default one per core) threads that spin-wait between searches: a cached search, 1 ms
    of CPU on its own, cost 5-12 ms of CPU that way (docs/benchmarks.md, web section). One
    query gains nothing from a second thread; concurrent requests use the cores instead.
    `omp_set_num_threads` only affects the calling thread, hence once per thread.
    """
    if getattr(_thread_state, "openmp_pinned", False):
        return
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except (ImportError, AttributeError):  # pragma: no cover - faiss is a dependency
        pass
    _thread_state.openmp_pinned = True
