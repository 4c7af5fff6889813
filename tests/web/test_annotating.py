"""The web API of descriptions: t2i says why it matched, `descriptions=false`, annotations
added / listed / removed, and the same refusals (422 with the same words) as the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crossmodal import Collection, Description
from crossmodal.index.descriptions import DescriptionError, check_description_text
from crossmodal.web import WebSettings, create_app
from tests.web.conftest import TOKEN, build_collection

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = "http://127.0.0.1"


@pytest.fixture()
def writable(tmp_path: Path) -> Iterator[tuple[TestClient, Collection]]:
    col = build_collection(tmp_path)
    app = create_app(col, WebSettings(token=TOKEN), warm_up=False)
    with TestClient(app, base_url=LOCAL) as c:
        yield c, col


def _reason(text: str) -> str:
    with pytest.raises(DescriptionError) as caught:
        check_description_text(text, "annotation")
    return str(caught.value)


def test_annotations_added_listed_matched_and_removed(
    writable: tuple[TestClient, Collection],
) -> None:
    c, col = writable
    made = c.post("/api/images/5/annotations", json={"text": "Max at the farm"}, headers=AUTH)
    assert made.status_code == 200, made.text
    text_id = made.json()["text_id"]
    col.describe(5, [Description("tractor", "tag", "imagenet", "en", 0.7)])
    listed = c.get("/api/images/5/descriptions").json()["descriptions"]
    kinds = {(d["text"], d["kind"], d["by_person"]) for d in listed}
    assert ("Max at the farm", "annotation", True) in kinds
    assert ("tractor", "tag", False) in kinds
    page = c.get("/api/search", params={"q": "Max at the farm", "k": 12}).json()
    hit = next(h for h in page["results"] if h["id"] == 5)
    assert any(m["text_id"] == text_id and m["by_person"] for m in hit["matched"])
    assert any({"max", "farm"} <= set(m["words"] or []) for m in hit["matched"])
    plain = c.get("/api/search", params={"q": "Max at the farm", "k": 12, "descriptions": "false"})
    assert all(h["matched"] is None for h in plain.json()["results"])
    gone = c.delete(f"/api/images/5/annotations/{text_id}", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["removed"] == 1
    assert c.delete(f"/api/images/5/annotations/{text_id}", headers=AUTH).status_code == 404
    c.post("/api/images/5/annotations", json={"text": "one"}, headers=AUTH)
    c.post("/api/images/5/annotations", json={"text": "two"}, headers=AUTH)
    assert c.delete("/api/images/5/annotations", headers=AUTH).json()["removed"] == 2
    left = c.get("/api/images/5/descriptions").json()["descriptions"]
    assert [d["kind"] for d in left if d["kind"] == "annotation"] == []
    assert c.get("/api/images/999/descriptions").status_code == 404
    assert c.delete("/api/images/5/annotations", headers={}).status_code == 401


@pytest.mark.parametrize("text", ["", "   ", "x" * 100_000, "beep\x07", "nul\x00byte"])
def test_bad_annotations_get_422_with_the_cli_words(
    writable: tuple[TestClient, Collection], text: str
) -> None:
    c, col = writable
    answer = c.post("/api/images/3/annotations", json={"text": text}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == _reason(text)
    assert col.stats()["annotations"] == 0  # nothing stored


@pytest.mark.parametrize("q", ['"', "dog*", "NEAR(a b)", "-x", "(", "a:b", '" OR "'])
def test_search_with_fts_characters_answers(writable: tuple[TestClient, Collection], q: str):
    c, _ = writable
    answer = c.get("/api/search", params={"q": q, "k": 3})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 3
