"""The JSON API through FastAPI's TestClient: every endpoint and every rejection."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from crossmodal import Collection
from crossmodal.web import WebSettings, create_app
from crossmodal.web.service import dogs_available
from tests.web.conftest import CAPTIONS, TOKEN, build_collection

AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: the Host a local server answers (TestClient's default, "testserver", is refused)
LOCAL = "http://127.0.0.1"
needs_dogs = pytest.mark.skipif(not dogs_available(), reason="the dog edition is not installed")


@pytest.fixture(scope="module")
def client(api_collection: Collection) -> Iterator[TestClient]:
    app = create_app(api_collection, WebSettings(token=TOKEN))
    with TestClient(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def readonly(api_collection: Collection) -> Iterator[TestClient]:
    """The same collection served with no token: writes are off."""
    app = create_app(api_collection, WebSettings(token=None), warm_up=False)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture()
def writable(tmp_path: Path) -> Iterator[tuple[TestClient, Collection, Path]]:
    """A fresh collection per test, for the endpoints that change it."""
    col = build_collection(tmp_path)
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    with TestClient(app, base_url=LOCAL) as c:
        yield c, col, tmp_path


def photo_bytes(col: Collection, name: str = "p000.jpg") -> bytes:
    path = next(Path(r) for r in col.stats()["roots"]) / "d0" / name
    return path.read_bytes()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height pixels in a few dozen bytes (a decompression
    bomb's header: its pixels are never needed to refuse it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(client: TestClient, data: bytes, name: str = "x.jpg", **form: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/search/image", files={"file": (name, data, "image/jpeg")}, data=form or None
    )


def assert_rejected(response, status: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word in detail.lower(), detail


# ---- read endpoints ---------------------------------------------------------------------------
def test_health(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}


def test_stats_and_capabilities(client: TestClient, readonly: TestClient) -> None:
    stats = client.get("/api/stats").json()
    assert stats["images"] == 12 and stats["captions"] == 12 and stats["texts"] == 12
    caps = stats["capabilities"]
    assert caps["write"] is True and caps["dogs"] is dogs_available()
    assert caps["max_upload_bytes"] == 10 * 1024 * 1024 and caps["max_pixels"] == 40_000_000
    assert client.get("/api/capabilities").json() == caps
    assert readonly.get("/api/capabilities").json()["write"] is False


def test_text_search_pages(client: TestClient) -> None:
    first = client.get("/api/search", params={"q": "a red card", "k": 5}).json()
    assert first["mode"] == "t2i" and first["total"] == 12 and first["next_offset"] == 5
    hits = first["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert all(h["kind"] == "image" and h["thumbnail"] == f"/api/thumbnail/{h['id']}" for h in hits)
    assert all(h["caption"] in CAPTIONS for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    second = client.get("/api/search", params={"q": "a red card", "k": 5, "offset": 5}).json()
    assert [h["rank"] for h in second["results"]] == [6, 7, 8, 9, 10]
    assert second["next_offset"] == 10
    last = client.get("/api/search", params={"q": "a red card", "k": 5, "offset": 10}).json()
    assert len(last["results"]) == 2 and last["next_offset"] is None
    ids = {h["id"] for page in (first, second, last) for h in page["results"]}
    assert len(ids) == 12


def test_text_to_text(client: TestClient) -> None:
    page = client.get("/api/search", params={"q": "a grey striped card", "mode": "t2t"}).json()
    assert page["mode"] == "t2t" and page["total"] == 12
    top = page["results"][0]
    assert top["kind"] == "text" and top["text"] == "a grey striped card"
    assert top["score"] > 0.99


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": ""}, ["empty"]),
        ({"q": "   "}, ["empty"]),
        ({}, ["q", "required"]),
        ({"q": "x", "mode": "i2x"}, ["mode"]),
        ({"q": "x", "mode": "i2i"}, ["mode"]),  # an image mode needs an image
        ({"q": "x", "k": 0}, ["k", "greater"]),
        ({"q": "x", "k": 101}, ["k", "less"]),
        ({"q": "x", "k": "many"}, ["k"]),
        ({"q": "x", "offset": -1}, ["offset"]),
        ({"q": "x", "offset": 1001}, ["offset"]),
        ({"q": "x" * 1001}, ["q"]),
    ],
)
def test_text_search_rejections(client: TestClient, params: dict, words: list[str]) -> None:
    assert_rejected(client.get("/api/search", params=params), 422, *words)


def test_image_search_finds_the_same_image(client: TestClient, api_collection: Collection) -> None:
    data = photo_bytes(api_collection)
    page = upload(client, data, k="3").json()
    assert page["mode"] == "i2i" and len(page["results"]) == 3 and page["next_offset"] == 3
    top = page["results"][0]
    assert top["path"].endswith("p000.jpg") and top["score"] > 0.999
    more = upload(client, data, k="3", offset="3").json()
    assert [h["rank"] for h in more["results"]] == [4, 5, 6]
    texts = upload(client, data, mode="i2t", k="4").json()
    assert texts["mode"] == "i2t" and all(h["kind"] == "text" for h in texts["results"])
    assert {h["text"] for h in texts["results"]} <= set(CAPTIONS)


def test_image_search_decodes_by_content_not_name(
    client: TestClient, api_collection: Collection
) -> None:
    png = io.BytesIO()
    Image.open(io.BytesIO(photo_bytes(api_collection))).save(png, "PNG")
    page = client.post(
        "/api/search/image", files={"file": ("photo.txt", png.getvalue(), "text/plain")}
    )
    assert page.status_code == 200 and page.json()["results"][0]["path"].endswith("p000.jpg")


def test_upload_rejections(client: TestClient, api_collection: Collection) -> None:
    assert_rejected(upload(client, b"just some text, named .jpg"), 415, "not an image")
    assert_rejected(upload(client, b""), 400, "empty")
    truncated = photo_bytes(api_collection)[:300]
    assert_rejected(upload(client, truncated), 422, "truncated")
    # a 48 MP header over the default 40 MP limit, and a 900 MP one over Pillow's own
    assert_rejected(upload(client, png_header(8000, 6000), "a.png"), 413, "too large")
    assert_rejected(upload(client, png_header(30000, 30000), "b.png"), 413, "too large")
    # Pillow could open EPS through Ghostscript: uploads are limited to raster formats
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    assert_rejected(upload(client, eps, "x.eps"), 415)
    photo = photo_bytes(api_collection)
    assert_rejected(upload(client, photo, mode="t2i"), 422, "mode")
    assert_rejected(upload(client, photo, k="0"), 422, "k")
    assert_rejected(upload(client, photo, k="101"), 422, "k")
    missing = client.post("/api/search/image", data={"mode": "i2i"})
    assert_rejected(missing, 422, "file")


def test_oversized_upload_rejected_early_and_while_streaming(client: TestClient) -> None:
    big = b"\xff\xd8" + b"0" * (11 * 1024 * 1024)
    # Content-Length says it all: refused before a byte of the body is read
    assert_rejected(upload(client, big), 413, "too large", "10 mb")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once the limit is crossed
        for _ in range(12):
            yield b"0" * (1024 * 1024)

    streamed = client.post(
        "/api/search/image",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_rejected(streamed, 413, "too large")
    bad = client.post("/api/search/image", content=b"x", headers={"Content-Length": "lots"})
    assert bad.status_code == 400


def test_upload_limit_is_configurable(api_collection: Collection) -> None:
    app = create_app(
        api_collection, WebSettings(max_upload_bytes=100_000, max_pixels=100), warm_up=False
    )
    with TestClient(app, base_url=LOCAL) as small:
        assert_rejected(upload(small, b"\xff" * 200_000), 413, "too large", "97.7 kb")
        assert_rejected(upload(small, photo_bytes(api_collection)), 413, "pixels")


def test_search_by_id(client: TestClient) -> None:
    page = client.get("/api/search/by-id/1", params={"k": 4}).json()
    assert page["total"] == 11 and len(page["results"]) == 4
    assert 1 not in {h["id"] for h in page["results"]}  # the image itself is left out
    texts = client.get("/api/search/by-id/1", params={"mode": "i2t", "k": 3}).json()
    assert all(h["kind"] == "text" for h in texts["results"])
    assert_rejected(client.get("/api/search/by-id/999"), 404, "no image")
    assert_rejected(client.get("/api/search/by-id/0"), 422)
    assert_rejected(client.get("/api/search/by-id/abc"), 422)
    assert_rejected(client.get("/api/search/by-id/1", params={"mode": "t2i"}), 422, "mode")
    assert_rejected(client.get("/api/search/by-id/1", params={"k": 101}), 422, "k")


def test_thumbnail(client: TestClient) -> None:
    response = client.get("/api/thumbnail/1", params={"size": 40})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and max(image.size) <= 40
    again = client.get("/api/thumbnail/1", params={"size": 40}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    other = client.get("/api/thumbnail/1", params={"size": 64})
    assert other.headers["etag"] != etag
    assert_rejected(client.get("/api/thumbnail/1", params={"size": 8}), 422, "size")
    assert_rejected(client.get("/api/thumbnail/1", params={"size": 5000}), 422, "size")
    assert_rejected(client.get("/api/thumbnail/424242"), 404, "no image")


@pytest.mark.parametrize(
    "path",
    [
        "/api/thumbnail/..%2F..%2Fetc%2Fpasswd",
        "/api/thumbnail/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/thumbnail/1%2F..%2F..%2Fetc%2Fpasswd",
        "/api/thumbnail/-1",
        "/api/thumbnail/1.5",
    ],
)
def test_thumbnail_takes_ids_only(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert "root:" not in response.text
    assert isinstance(response.json()["detail"], str)


def test_thumbnail_of_a_vanished_file(writable: tuple[TestClient, Collection, Path]) -> None:
    c, col, _ = writable
    Path(col.get(1).path).unlink()
    assert_rejected(c.get("/api/thumbnail/1"), 404, "missing")


# ---- the dog edition ----------------------------------------------------------------------
@needs_dogs
def test_dogs_ask_json(client: TestClient) -> None:
    en = client.post("/api/dogs/ask", json={"question": "Is a Beagle good with kids?"})
    assert en.status_code == 200, en.text
    body = en.json()
    assert body["lang"] == "en" and "beagle" in [b.lower() for b in body["breeds"]]
    assert body["facts"] and {"breed", "field", "value"} <= set(body["facts"][0])
    zh = client.post("/api/dogs/ask", json={"question": "柯基适合家养吗？"}).json()
    assert zh["lang"] == "zh" and zh["text"]
    forced = client.post(
        "/api/dogs/ask", json={"question": "Is a Beagle good with kids?", "lang": "zh"}
    )
    assert forced.json()["lang"] == "zh"


@needs_dogs
def test_dogs_ask_multipart(client: TestClient, api_collection: Collection) -> None:
    plain = client.post("/api/dogs/ask", data={"question": "How big is a Pug?"})
    assert plain.status_code == 200 and plain.json()["lang"] == "en"
    bad = client.post(
        "/api/dogs/ask",
        data={"question": "what breed is this?"},
        files={"file": ("dog.jpg", b"not a picture", "image/jpeg")},
    )
    assert_rejected(bad, 415, "not an image")
    bomb = client.post(
        "/api/dogs/ask",
        data={"question": "what breed is this?"},
        files={"file": ("dog.png", png_header(8000, 6000), "image/png")},
    )
    assert_rejected(bomb, 413, "too large")


@needs_dogs
def test_dogs_ask_rejections(client: TestClient) -> None:
    assert_rejected(client.post("/api/dogs/ask", json={"question": "  "}), 422, "empty")
    assert_rejected(client.post("/api/dogs/ask", data={"question": " "}), 422, "empty")
    assert_rejected(client.post("/api/dogs/ask", json={}), 422, "question")
    assert_rejected(client.post("/api/dogs/ask", json={"question": 3}), 422, "question")
    assert_rejected(
        client.post(
            "/api/dogs/ask", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
        "json",
    )
    assert_rejected(
        client.post("/api/dogs/ask", content=b"hi", headers={"Content-Type": "text/plain"}),
        415,
    )
    assert_rejected(client.post("/api/dogs/ask", data={"lang": "en"}), 422, "question")
    big = client.post(
        "/api/dogs/ask",
        content=b"{" + b" " * (11 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_rejected(big, 413, "too large")


# ---- writes -----------------------------------------------------------------------------------
WRITES = [
    ("post", "/api/index", {"json": {"folder": "/tmp"}}),
    ("post", "/api/images/1/annotations", {"json": {"text": "hello"}}),
    ("delete", "/api/images/1", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
def test_writes_need_the_token(
    client: TestClient, readonly: TestClient, method: str, path: str, kwargs: dict
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert_rejected(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    # with no token configured, writes are off whatever the client sends
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        assert_rejected(getattr(readonly, method)(path, headers=headers, **kwargs), 401)
    assert client.get("/api/stats").json()["images"] == 12  # nothing changed


def test_annotate_then_find_it(writable: tuple[TestClient, Collection, Path]) -> None:
    c, _, _ = writable
    params = {"q": "my favourite one", "mode": "t2t", "k": 20}
    before = c.get("/api/search", params=params).json()  # answered, and kept in memory
    assert "my favourite one" not in {h["text"] for h in before["results"]}
    assert c.get("/api/search", params=params).json() == before
    made = c.post("/api/images/3/annotations", json={"text": "my favourite one"}, headers=AUTH)
    assert made.status_code == 200, made.text
    assert made.json()["id"] == 3 and made.json()["text"] == "my favourite one"
    # the catalogue changed: the kept answer is not served again
    top = c.get("/api/search", params=params).json()
    assert top["total"] == 13
    assert top["results"][0]["text"] == "my favourite one" and top["results"][0]["id"] == 3
    assert c.get("/api/stats").json()["annotations"] == 1
    assert_rejected(c.post("/api/images/999/annotations", json={"text": "x"}, headers=AUTH), 404)
    assert_rejected(c.post("/api/images/3/annotations", json={"text": ""}, headers=AUTH), 422)
    assert_rejected(c.post("/api/images/3/annotations", json={"text": "  "}, headers=AUTH), 422)


def test_index_and_delete(writable: tuple[TestClient, Collection, Path]) -> None:
    c, _, base = writable
    extra = base / "more"
    from tests.index.helpers import make_pattern

    for i in range(3):
        make_pattern(extra / f"m{i}.png", 20 + i)
    report = c.post("/api/index", json={"folder": str(extra)}, headers=AUTH)
    assert report.status_code == 200, report.text
    assert report.json()["added"] == 3
    assert c.get("/api/stats").json()["images"] == 15
    again = c.post("/api/index", json={"folder": str(extra)}, headers=AUTH).json()
    assert again["added"] == 0 and again["unchanged"] == 3

    removed = c.delete("/api/images/2", headers=AUTH)
    assert removed.status_code == 200 and removed.json() == {"id": 2, "removed": 1}
    assert_rejected(c.get("/api/search/by-id/2"), 404)
    assert_rejected(c.delete("/api/images/2", headers=AUTH), 404)
    assert c.get("/api/stats").json()["images"] == 14

    assert_rejected(
        c.post("/api/index", json={"folder": str(base / "nowhere")}, headers=AUTH),
        400,
        "not a folder",
    )
    assert_rejected(
        c.post(
            "/api/index",
            json={"folder": str(extra), "captions": str(base / "no.tsv")},
            headers=AUTH,
        ),
        400,
        "captions",
    )
    assert_rejected(c.post("/api/index", json={}, headers=AUTH), 422, "folder")


# ---- page and docs ------------------------------------------------------------------------
@needs_dogs
def test_fact_labels_name_the_keys_of_a_replys_facts(client: TestClient) -> None:
    reply = client.post("/api/dogs/ask", json={"question": "Is a Beagle good with kids?"}).json()
    labels = client.get("/api/dogs/labels")
    assert labels.status_code == 200 and "max-age" in labels.headers["cache-control"]
    body = labels.json()
    for fact in reply["facts"]:  # every key the page must word has its names
        assert fact["breed"] in body["breeds"] and fact["field"] in body["fields"], fact
    assert body["breeds"]["beagle"]["zh"] == "比格犬"


def test_page_and_offline_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.split("<body>")[0]
    for asset in ("/static/app.js", "/static/app.css", "/favicon.ico"):
        assert client.get(asset).status_code == 200, asset
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    bundle = client.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    schema = client.get("/openapi.json").json()
    expected = {
        "/api/health",
        "/api/stats",
        "/api/search",
        "/api/search/image",
        "/api/search/by-id/{image_id}",
        "/api/thumbnail/{image_id}",
        "/api/index",
        "/api/images/{image_id}/annotations",
        "/api/images/{image_id}",
    }
    assert expected <= set(schema["paths"])
    assert ("/api/dogs/ask" in schema["paths"]) is dogs_available()
    assert_rejected(client.get("/api/nothing-here"), 404)


def test_searches_answer_while_an_index_request_runs(
    writable: tuple[TestClient, Collection, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Collection holds its lock for a whole index run; the app indexes through a second
    handle, so searches go on meanwhile and a second write is refused (409), not queued."""
    import threading

    import crossmodal.collection as collection_module

    c, _, base = writable
    inside, release = threading.Event(), threading.Event()
    real_scan = collection_module.scan_folder

    def slow_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        inside.set()  # the writer's lock is held from here to the end of the run
        release.wait(30)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(collection_module, "scan_folder", slow_scan)
    replies: list = []
    worker = threading.Thread(
        target=lambda: replies.append(
            c.post("/api/index", json={"folder": str(base / "photos")}, headers=AUTH)
        )
    )
    worker.start()
    try:
        assert inside.wait(30)
        page = c.get("/api/search", params={"q": "stripes", "k": 3})
        assert page.status_code == 200 and len(page.json()["results"]) == 3
        busy = c.post("/api/images/1/annotations", json={"text": "x"}, headers=AUTH)
        assert_rejected(busy, 409, "another request")
    finally:
        release.set()
        worker.join(30)
    assert replies[0].status_code == 200 and replies[0].json()["unchanged"] == 12


def test_a_write_while_another_process_writes_is_a_conflict(
    writable: tuple[TestClient, Collection, Path],
) -> None:
    """The writer lock held elsewhere (an `crossmodal index` run) is a 409 the client may
    retry: told by the error's type (`CollectionBusy`), whatever its words."""
    c, col, base = writable
    other = Collection.open(col.path)
    try:
        with other._writing():
            busy = c.post("/api/index", json={"folder": str(base / "photos")}, headers=AUTH)
            assert_rejected(busy, 409, "another process")
    finally:
        other.close()


def test_a_catalogue_locked_too_long_is_a_503_to_retry(
    writable: tuple[TestClient, Collection, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from crossmodal.index.catalog import database_error

    c, col, _ = writable

    def locked() -> None:
        raise database_error(col.catalog.path, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(c.app.state.service.collection, "stats", locked)  # type: ignore[attr-defined]
    reply = c.get("/api/stats")
    assert_rejected(reply, 503, "is busy")
    assert reply.headers["Retry-After"] == "5"


def test_a_wrong_method_names_every_method_of_the_path(client: TestClient) -> None:
    """405's Allow lists the methods of all the routes at a path, wherever they are defined
    (POST and DELETE of annotations sit in the token-guarded router)."""
    answer = client.request("OPTIONS", "/api/images/1/annotations")
    assert answer.status_code == 405 and answer.json()["detail"] == "Method Not Allowed"
    assert answer.headers["allow"] == "DELETE, POST"
    assert client.request("PUT", "/api/stats").headers["allow"] == "GET"


def test_index_without_tags(writable: tuple[TestClient, Collection, Path]) -> None:
    """`"tags": false` is `crossmodal index --no-tags`: the new photos get no automatic tags."""
    c, _, base = writable
    from tests.index.helpers import make_photos

    make_photos(base / "untagged", 6)
    before = c.get("/api/stats").json()["tags"]
    body = {"folder": str(base / "untagged"), "tags": False}
    report = c.post("/api/index", json=body, headers=AUTH)
    assert report.status_code == 200, report.text
    assert report.json()["added"] == 6 and report.json()["described"] == 0
    assert c.get("/api/stats").json()["tags"] == before
    assert_rejected(c.post("/api/index", json=body | {"tags": "maybe"}, headers=AUTH), 422)
