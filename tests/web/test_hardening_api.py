"""Issue 19's defects of the web API, each with the request that showed it: a delete that
removed another image, ids past 64 bits, a name that is not UTF-8, a damaged catalogue, the
Host header, absolute paths, read tokens, an overlong URL, and decoding under load."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crossmodal import Collection
from crossmodal.client import LOCAL_KEY_HEADER
from crossmodal.web import WebSettings, create_app
from crossmodal.web.errors import Rejected
from crossmodal.web.uploads import DecodeSlots
from tests.index.helpers import make_pattern, tiny_model_dir
from tests.web.conftest import TOKEN, LiveServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = "http://127.0.0.1"
LATIN1 = os.fsdecode(b"latin1_\xe9t\xe9.jpg")


@pytest.fixture()
def linked(tmp_path: Path) -> Iterator[tuple[TestClient, Collection, Path]]:
    """targets/IMG1.jpg, IMG2.jpg, links/IMG1.jpg -> targets/IMG1.jpg, and a latin-1 name."""
    photos = tmp_path / "photos"
    target = make_pattern(photos / "targets" / "IMG1.jpg", 1)
    make_pattern(photos / "targets" / "IMG2.jpg", 2)
    (photos / "links").mkdir()
    (photos / "links" / "IMG1.jpg").symlink_to(target)
    col = Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True)
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    with TestClient(app, base_url=LOCAL) as client:
        report = client.post("/api/index", json={"folder": str(photos)}, headers=AUTH)
        assert report.status_code == 200 and report.json()["added"] == 3, report.text
        yield client, col, photos


def hits(client: TestClient, **params: object) -> list[dict]:
    page = client.get("/api/search", params={"q": "a card", "k": 50, **params}, headers=AUTH)
    assert page.status_code == 200, page.text
    return page.json()["results"]


def test_delete_removes_the_row_asked_for_never_its_link_target(linked) -> None:
    client, _, _ = linked
    ids = {h["path"]: h["id"] for h in hits(client)}
    assert set(ids) == {"links/IMG1.jpg", "targets/IMG1.jpg", "targets/IMG2.jpg"}
    gone = client.delete(f"/api/images/{ids['links/IMG1.jpg']}", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["removed"] == 1
    assert {h["path"] for h in hits(client)} == {"targets/IMG1.jpg", "targets/IMG2.jpg"}
    again = client.delete(f"/api/images/{ids['links/IMG1.jpg']}", headers=AUTH)
    assert again.status_code == 404 and "no image" in again.json()["detail"]


def test_a_name_that_is_not_utf8_is_indexed_and_shown_escaped(linked) -> None:
    client, _, photos = linked
    make_pattern(photos / LATIN1, 7)
    report = client.post("/api/index", json={"folder": str(photos)}, headers=AUTH)
    assert report.status_code == 200 and report.json()["added"] == 1, report.text
    assert "latin1_\\xe9t\\xe9.jpg" in {h["path"] for h in hits(client)}
    full = {h["path"] for h in hits(client, absolute="true")}
    assert str(photos / "latin1_\\xe9t\\xe9.jpg") in full


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/api/thumbnail/{id}", {}),
        ("get", "/api/search/by-id/{id}", {}),
        ("post", "/api/images/{id}/annotations", {"json": {"text": "hi"}}),
        ("delete", "/api/images/{id}", {}),
    ],
)
def test_ids_past_64_bits_are_refused_not_500(linked, method: str, path: str, kwargs) -> None:
    client, _, _ = linked
    for image_id in (2**63, 2**64 + 1, 10**30):
        response = getattr(client, method)(path.format(id=image_id), headers=AUTH, **kwargs)
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
    largest = getattr(client, method)(path.format(id=2**63 - 1), headers=AUTH, **kwargs)
    assert largest.status_code == 404


def test_hits_and_stats_show_paths_inside_the_folder_unless_asked_with_the_token(linked) -> None:
    client, _, photos = linked
    assert all(not h["path"].startswith("/") for h in hits(client))
    stats = client.get("/api/stats").json()
    assert stats["roots"] == ["photos"] and stats["path"] == "col"
    assert str(photos) not in client.get("/api/stats").text
    refused = client.get("/api/search", params={"q": "a card", "absolute": "true"})
    assert refused.status_code == 401
    assert client.get("/api/stats", params={"absolute": "true"}).status_code == 401
    full = client.get("/api/stats", params={"absolute": "true"}, headers=AUTH).json()
    assert full["roots"] == [str(photos)]
    first = hits(client)[0]["id"]
    by_id = client.get(f"/api/search/by-id/{first}", params={"absolute": "true"}, headers=AUTH)
    assert all(h["path"].startswith(str(photos)) for h in by_id.json()["results"])


def test_token_reads(linked) -> None:
    _, col, _ = linked
    app = create_app(col, WebSettings(token=TOKEN, token_reads=True), warm_up=False)
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/api/search", params={"q": "card"}).status_code == 401
        assert client.get("/api/thumbnail/1").status_code == 401
        assert client.get("/api/search", params={"q": "card"}, headers=AUTH).status_code == 200
        assert client.get("/").status_code == 200  # the page itself is no secret


def test_only_local_host_names_are_answered_and_no_cors_by_default(linked) -> None:
    _, col, _ = linked
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    for base in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:8000"):
        with TestClient(app, base_url=base) as client:
            assert client.get("/api/health").status_code == 200, base
    with TestClient(app, base_url="http://attacker.example") as client:
        refused = client.get("/api/search", params={"q": "card"})
        assert refused.status_code == 400 and "--allowed-host" in refused.json()["detail"]
        assert client.get("/api/thumbnail/1").status_code == 400
    with TestClient(app, base_url=LOCAL) as client:
        plain = client.get("/api/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in plain.headers
    allowed = WebSettings(
        allowed_hosts=("127.0.0.1", "photos.lan"), cors_origins=("http://localhost:3000",)
    )
    app2 = create_app(col, allowed, warm_up=False)
    with TestClient(app2, base_url="http://photos.lan:8000") as client:
        cors = client.get("/api/health", headers={"Origin": "http://localhost:3000"})
        assert cors.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_a_damaged_catalogue_answers_503_with_one_line(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(60):
        make_pattern(photos / f"p{i:03d}.jpg", i)
    col = Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True)
    col.index(photos, show_progress=False)
    col.close()
    db = tmp_path / "col" / "catalog.sqlite"
    pages = db.stat().st_size // 4096
    with open(db, "r+b") as fh:
        fh.seek((pages // 2) * 4096)
        fh.write(os.urandom(3 * 4096))
    col = Collection.open(tmp_path / "col")
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:
        stats = client.get("/api/stats")
        assert stats.status_code == 503, stats.text
        detail = stats.json()["detail"]
        assert str(db) in detail and "crossmodal check" in detail and "\n" not in detail
        index = client.post("/api/index", json={"folder": str(photos)}, headers=AUTH)
        assert index.status_code == 503 and "damaged" in index.json()["detail"]


def test_an_overlong_url_gets_a_json_error_from_the_live_server(live_server: LiveServer) -> None:
    for length, status in ((20_000, 414), (100_000, 400)):
        with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
            sock.sendall(
                b"GET /api/search?q=" + b"a" * length + b" HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode()), head
        assert b"content-type: application/json" in head.lower()
        assert b'"detail"' in body


def test_decode_slots_queue_then_refuse_with_retry_after() -> None:
    slots = DecodeSlots(slots=1, queue=1, wait_s=0.2)
    inside = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        with slots():
            inside.set()
            leave.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    with pytest.raises(Rejected) as timed_out, slots():  # waits 0.2 s in the queue
        pass
    assert timed_out.value.status == 503 and timed_out.value.headers == {"Retry-After": "2"}
    leave.set()
    holder.join()
    with slots():  # free again
        pass
    assert slots.refused == 1


def test_the_local_key_of_server_json_gives_full_paths_as_the_token_does(linked) -> None:
    client, _, photos = linked
    key = client.app.state.settings.local_key
    assert len(key) >= 24 and key not in repr(client.app.state.settings)
    asked = {"q": "a card", "k": 50, "absolute": "true"}
    wrong = client.get("/api/search", params=asked, headers={LOCAL_KEY_HEADER: "nope"})
    assert wrong.status_code == 401
    page = client.get("/api/search", params=asked, headers={LOCAL_KEY_HEADER: key})
    assert page.status_code == 200, page.text
    found = {(h["path"], h["relpath"]) for h in page.json()["results"]}
    assert (str(photos / "targets" / "IMG2.jpg"), "targets/IMG2.jpg") in found
    assert all(h["path"] == str(photos / h["relpath"]) for h in page.json()["results"])
    assert "relpath" not in hits(client)[0]  # without absolute=true: as before
