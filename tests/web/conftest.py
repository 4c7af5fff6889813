"""Fixtures of the web tests: small real collections, an app per collection, a live server."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal import Collection
from tests.conftest import FLICKR8K
from tests.index.helpers import make_photos, tiny_model_dir

#: Token of the apps that allow writes.
TOKEN = "test-token-123"

#: A caption per generated photo (p000.jpg ... p011.jpg), so i2t and t2t have texts to find.
CAPTIONS = [
    "a red striped card on a table",
    "a green striped card",
    "a blue striped card in the light",
    "a yellow card with thin stripes",
    "a purple card with stripes",
    "a cyan striped pattern",
    "an orange card with wide stripes",
    "a grey striped card",
    "a red card with wide stripes",
    "a green pattern of stripes",
    "a dark blue striped card",
    "a yellow pattern of wide stripes",
]


def write_captions(path: Path, names: list[str], captions: list[str]) -> Path:
    lines = ["image\tcaption"] + [f"{n}\t{c}" for n, c in zip(names, captions, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_collection(base: Path, flickr: int = 0) -> Collection:
    """12 generated photos with captions (+ `flickr` Flickr8k test images and their captions
    when ../shared/data has them), indexed with the tiny test model."""
    photos = base / "photos"
    make_photos(photos, 12)
    write_captions(base / "captions.tsv", [f"p{i:03d}.jpg" for i in range(12)], CAPTIONS)
    col = Collection.open(base / "col", model=str(tiny_model_dir(0)), create=True)
    report = col.index(photos, captions=base / "captions.tsv", show_progress=False)
    assert report.added == 12 and not report.failed
    if flickr and (FLICKR8K / "captions.tsv").is_file():
        names = (FLICKR8K / "test.txt").read_text().split()[:flickr]
        extra = base / "flickr"
        extra.mkdir()
        for name in names:
            shutil.copy(FLICKR8K / "images" / name, extra / name)
        col.index(extra, captions=FLICKR8K / "captions.tsv", show_progress=False)
    return col


@pytest.fixture(scope="session")
def api_collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """Read-only tests share this one (12 generated photos, all captioned)."""
    return build_collection(tmp_path_factory.mktemp("web-api"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from crossmodal.web.guards import http_protocol

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            http=http_protocol(),  # as `crossmodal serve` runs it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server over 12 generated photos and ~30 Flickr8k test images (when present)."""
    from crossmodal.web import WebSettings, create_app

    col = build_collection(tmp_path_factory.mktemp("web-live"), flickr=30)
    app = create_app(col, WebSettings(token=TOKEN, max_upload_bytes=4 * 1024 * 1024))
    with LiveServer(app) as server:
        yield server
