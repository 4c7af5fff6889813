"""Search filters as query parameters: every search route, totals, paging, 422 refusals in
the CLI's words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crossmodal import Collection
from crossmodal.web import WebSettings, create_app
from tests.index.exif_helpers import SHOTS, write_library
from tests.index.helpers import tiny_model_dir

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def photos_and_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, TestClient]]:
    base = tmp_path_factory.mktemp("web-filters")
    photos = base / "photos"
    write_library(photos)
    lines = ["image\tcaption"] + [f"{Path(s.relpath).name}\tphoto {Path(s.relpath).stem}"
                                  for s in SHOTS]  # fmt: skip
    (base / "c.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    col = Collection.open(base / "col", model=str(tiny_model_dir(0)), create=True)
    col.index(photos, captions=base / "c.tsv", show_progress=False)
    app = create_app(col, WebSettings(token=None), warm_up=False)
    with TestClient(app, base_url=LOCAL) as client:
        yield photos, client
    col.close()


def paths(reply) -> set[str]:
    assert reply.status_code == 200, reply.text
    return {hit["path"] for hit in reply.json()["results"]}


def test_text_search_with_filters(photos_and_client):
    _, client = photos_and_client
    get = lambda **p: client.get("/api/search", params={"q": "a photo", "k": 20, **p})  # noqa: E731
    assert paths(get(camera="pixel")) == {"a/paris.jpg", "b/nyc.png"}
    assert paths(get(**{"in": "b/c"})) == {"b/c/tokyo.webp"}
    assert paths(get(gps="false", type="jpg")) == {"a/office.jpg", "b/scan.jpg",
                                                   "a/renamed.png", "b/big.jpg"}  # fmt: skip
    assert paths(get(after="2024", before="2024-06", mode="t2i")) == {"a/office.jpg", "b/nyc.png"}
    assert paths(get(within="35,-10,60,30")) == {"a/paris.jpg"}
    texts = get(mode="t2t", camera="canon").json()
    assert {h["text"] for h in texts["results"]} == {"photo office", "photo fiji"}
    assert texts["total"] == 2
    # paging: total counts the photos that pass, the last page says so
    first = get(gps="true", k=3).json()
    assert first["total"] == 4 and first["next_offset"] == 3
    last = get(gps="true", k=3, offset=3).json()
    assert len(last["results"]) == 1 and last["next_offset"] is None
    # the cached page of one filter is not another filter's
    assert paths(get(camera="pixel")) != paths(get(camera="canon"))


def test_by_id_and_upload_with_filters(photos_and_client):
    photos, client = photos_and_client
    everything = client.get("/api/search", params={"q": "a photo", "k": 20}).json()["results"]
    paris = next(h["id"] for h in everything if h["path"] == "a/paris.jpg")
    reply = client.get(f"/api/search/by-id/{paris}", params={"gps": "true"})
    assert paths(reply) == {"b/nyc.png", "b/c/tokyo.webp", "a/fiji.jpg"}
    assert reply.json()["total"] == 3
    with open(photos / "b/c/tokyo.webp", "rb") as fh:
        reply = client.post(
            "/api/search/image", params={"in": "a", "min_size": "1"},
            files={"file": ("t.webp", fh, "image/webp")}, data={"k": "10"},
        )  # fmt: skip
    assert paths(reply) == {"a/paris.jpg", "a/office.jpg", "a/fiji.jpg", "a/renamed.png"}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"after": "last week"}, "--after 'last week': not a date"),
        ({"min_size": "huge"}, "--min-size 'huge': not a size"),
        ({"within": "1,2"}, "--within '1,2': give four numbers"),
        ({"type": "jpg;png"}, "--type 'jpg;png': give file types"),
        ({"in": "/etc"}, "--in '/etc': give a folder inside"),
        ({"in": "../x"}, "--in '../x': give a folder inside"),
        ({"gps": "maybe"}, "gps:"),
    ],
)
def test_bad_filter_values_are_422_in_the_cli_words(photos_and_client, params, words):
    _, client = photos_and_client
    reply = client.get("/api/search", params={"q": "a photo", **params})
    assert reply.status_code == 422 and words in reply.json()["detail"]
