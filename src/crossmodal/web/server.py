"""Running the app under uvicorn: one process, or several workers that each open the collection.

Several workers need the app by import name (`app_from_env`), so the parent hands the
collection and settings to them through environment variables.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crossmodal.errors import ConfigError, CrossmodalError
from crossmodal.web.settings import WebSettings

if TYPE_CHECKING:
    from fastapi import FastAPI  # (imported lazily at run time: `serve --help` stays quick)

__all__ = ["app_from_env", "build_app", "check_port", "serve"]

_ENV_COLLECTION = "CROSSMODAL_WEB_COLLECTION"
_ENV_MODEL = "CROSSMODAL_WEB_MODEL"
_ENV_DB = "CROSSMODAL_WEB_DB"


def setup_torch(import_torch: bool = True) -> None:
    """One thread per forward: a query is too small to gain from two, and concurrent
    requests already keep every core busy (a second thread each only adds contention).
    `import_torch=False` (the torch-free query bundle serves): torch only if loaded already."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import sys

    if import_torch or "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)
    # BLAS (numpy's, under the USE text tower, and FAISS's) process-wide too: the USE tower
    # limits BLAS around each call and restores the previous count after it, so with two
    # forwards overlapping, one restoring the default (a thread per core) while the other
    # still runs, the default has to be one already
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
    if "transformers" not in sys.modules and not import_torch:
        return
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def build_app(
    collection: str | Path | None,
    model: str | None,
    settings: WebSettings,
    after_open: Callable[[], None] | None = None,
    db: str | None = None,
) -> FastAPI:
    """Open the collection and build the app; a missing collection or a model that does not
    match it raises a `CrossmodalError` here, before the server starts listening.
    `after_open` runs between opening and loading the model (a port check, say)."""
    from crossmodal.collection import Collection
    from crossmodal.web.app import create_app

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    col = Collection.open(collection, model=model, db=db)  # first: a missing one fails in a blink
    # [fast-cli] queries through the exported query bundle (made once if missing): the
    # server answers seconds after start, not after loading the towers with torch
    from crossmodal.defaults import normalise_model_name
    from crossmodal.quick_search import query_encoder

    encoder = query_encoder(normalise_model_name(model or col.model_name), lambda _: None)
    if encoder is not None:
        col.close()
        col = Collection.open(collection, model=encoder, db=db)
    damage = col.catalog.quick_check()  # once per start: a damaged file, said before serving
    if damage:
        import sqlite3

        from crossmodal.index.catalog import database_error

        raise database_error(col.catalog.path, sqlite3.DatabaseError(damage[0]))
    if after_open is not None:
        after_open()
    setup_torch(import_torch=encoder is None)
    from crossmodal.web.uploads import tune_malloc

    tune_malloc()  # memory freed after a large upload goes back to the OS
    app = create_app(col, settings)
    # Everything allocated so far (the model, tokenisers, FastAPI) lives as long as the
    # process: kept out of the garbage collector's full passes, which otherwise walk it all
    # every few seconds under load, holding the GIL: with it, 1% of answers waited 100-250 ms
    # longer (p99 368 -> 223 ms at 50 clients, docs/benchmarks.md, web section)
    gc.collect()
    gc.freeze()
    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process (`uvicorn --factory`)."""
    return build_app(
        os.environ.get(_ENV_COLLECTION) or None,
        os.environ.get(_ENV_MODEL) or None,
        WebSettings.from_env(),
        db=os.environ.get(_ENV_DB) or None,
    )


def check_port(host: str, port: int) -> None:
    """Fail with one clear line when the address cannot be bound, instead of uvicorn's log."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535 (got {port})")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CrossmodalError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "pass another --port (or stop the server already there)"
            ) from None


def serve(
    collection: str | Path | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: WebSettings | None = None,
    model: str | None = None,
    workers: int = 1,
    access_log: bool = True,
    announce: Callable[[str], None] = print,
    db: str | None = None,
) -> None:
    """Serve until interrupted. The collection and model are checked before listening."""
    import uvicorn

    settings = settings or WebSettings()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    announce("loading model…")  # [fast-cli]
    # validates the collection and model for the workers too
    app = build_app(collection, model, settings, after_open=lambda: check_port(host, port), db=db)
    shown = f"[{host}]" if ":" in host else host
    service = app.state.service
    announce(
        f"serving {service.collection.path} ({len(service.collection)} images, model "
        f"{service.collection.model_name}) at http://{shown}:{port}  (API docs: /docs)"
    )
    from crossmodal.web.guards import http_protocol

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"
    folder = service.collection.path
    announcer = _announce_when_listening(folder, url, settings, announce)
    try:
        if workers == 1:
            uvicorn.run(
                app,
                host=host,
                port=port,
                access_log=access_log,
                log_level="info",
                http=http_protocol(),
            )
            return
        del app, service  # each worker opens its own copy: this process need not keep one
        _run_workers(collection, model, settings, host, port, workers, access_log, db)
    finally:
        announcer.set()
        from crossmodal.client import remove_server_file

        remove_server_file(folder)


def _announce_when_listening(
    folder: Path, url: str, settings: WebSettings, announce: Callable[[str], None]
) -> threading.Event:
    """[fast-cli] Once the port answers: say "ready on …" and write the collection's
    `server.json`, by which `crossmodal search` finds this server (crossmodal/client.py).
    Setting the returned event stops the wait (the server ended first)."""
    import urllib.parse

    from crossmodal.client import write_server_file

    stop = threading.Event()
    address = urllib.parse.urlsplit(url)

    def wait() -> None:
        while not stop.is_set():
            try:
                socket.create_connection((address.hostname, address.port), timeout=0.5).close()
            except OSError:
                stop.wait(0.05)
                continue
            write_server_file(folder, url, settings.token, settings.token_reads, settings.local_key)
            announce(f"ready on {url}")
            return

    threading.Thread(target=wait, name="announce-ready", daemon=True).start()
    return stop


def _run_workers(
    collection: str | Path | None,
    model: str | None,
    settings: WebSettings,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    db: str | None = None,
) -> None:
    import uvicorn

    from crossmodal.models.registry import forget_loaded_models
    from crossmodal.web.guards import http_protocol

    forget_loaded_models()
    gc.unfreeze()  # (build_app froze everything: the model's cycles would never be collected)
    gc.collect()
    folder = Path(collection).expanduser().absolute() if collection else None
    os.environ[_ENV_COLLECTION] = str(folder) if folder else ""
    os.environ[_ENV_MODEL] = model or ""
    os.environ[_ENV_DB] = db or ""
    if settings.token:
        os.environ["CROSSMODAL_TOKEN"] = settings.token
    os.environ["CROSSMODAL_MAX_UPLOAD_MB"] = str(settings.max_upload_bytes / (1024 * 1024))
    os.environ["CROSSMODAL_MAX_PIXELS"] = str(settings.max_pixels)
    os.environ["CROSSMODAL_QUERY_BATCH"] = str(settings.max_batch)
    os.environ["CROSSMODAL_QUERY_CACHE"] = str(settings.query_cache_size)
    # each process runs its own batches of searches: together, one per core, not per core each
    os.environ["CROSSMODAL_ENCODE_THREADS"] = str(max(1, settings.encode_threads // workers))
    os.environ["CROSSMODAL_CHILD_ENCODERS"] = "1" if settings.child_encoders else "0"
    os.environ["CROSSMODAL_ALLOWED_HOSTS"] = ",".join(settings.allowed_hosts)
    os.environ["CROSSMODAL_CORS_ORIGINS"] = ",".join(settings.cors_origins)
    os.environ["CROSSMODAL_TOKEN_READS"] = "1" if settings.token_reads else "0"
    os.environ["CROSSMODAL_LOCAL_KEY"] = settings.local_key  # the one in server.json
    uvicorn.run(
        "crossmodal.web.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        http=http_protocol(),
    )
