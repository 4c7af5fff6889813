"""Chat, generation, video tasks and web image search over HTTP, against the local protocol
servers of tests/providers (no test reaches the internet)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crossmodal import Collection
from crossmodal.web import WebSettings, create_app
from crossmodal.web.service import dogs_available
from tests.providers.protocol_servers import ProtocolServer, png_bytes, provider_env
from tests.providers.test_cli_providers import KEY_VARS

needs_dogs = pytest.mark.skipif(not dogs_available(), reason="the dog edition is not installed")


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    srv = ProtocolServer().start()
    yield srv
    srv.stop()


def _client(api_collection: Collection) -> TestClient:
    # the server answers only Host headers naming it (127.0.0.1, localhost, [::1])
    return TestClient(
        create_app(api_collection, WebSettings(), warm_up=False), base_url="http://127.0.0.1"
    )


@pytest.fixture
def bare(
    api_collection: Collection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[TestClient]:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with _client(api_collection) as c:
        yield c


@pytest.fixture
def keyed(
    api_collection: Collection,
    server: ProtocolServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[TestClient]:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in provider_env(server, str(tmp_path / "media")).items():
        monkeypatch.setenv(name, value)
    with _client(api_collection) as c:
        yield c


def _wait(client: TestClient, task_id: str, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        task = client.get(f"/api/generate/tasks/{task_id}").json()
        seen.append(task["status"])
        if task["done"]:
            task["seen"] = seen
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} not done: {seen[-3:]}")


def test_capabilities_say_which_features_have_keys(bare: TestClient, keyed: TestClient):
    assert bare.get("/api/capabilities").json()["providers"] == {
        "chat": None,
        "vision": False,
        "image": False,
        "video": False,
        "web_search": False,
    }
    assert keyed.get("/api/capabilities").json()["providers"]["video"] is True


def test_generation_without_key_is_a_400_naming_the_variable(bare: TestClient) -> None:
    for url in ("/api/generate/image", "/api/generate/video"):
        r = bare.post(url, json={"prompt": "a corgi"})
        assert r.status_code == 400 and "CROSSMODAL_ZHIPU_API_KEY" in r.json()["detail"]
    r = bare.post("/api/web-search", files={"file": ("p.png", png_bytes(), "image/png")})
    assert r.status_code == 400 and "CROSSMODAL_BAIDU_API_KEY" in r.json()["detail"]


def test_generate_image_and_fetch_it(keyed: TestClient) -> None:
    card = keyed.post("/api/generate/image", json={"prompt": "a corgi in the snow"}).json()
    assert card["kind"] == "image" and card["prompt"] == "a corgi in the snow"
    r = keyed.get(card["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert keyed.get("/api/media/images/..%2Fsecret.png").status_code == 404
    assert keyed.get("/api/media/other/x.png").status_code == 422
    assert keyed.post("/api/generate/image", json={"prompt": "  "}).status_code == 422
    assert (
        keyed.post(
            "/api/generate/image", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


def test_video_task_progress_then_card(keyed: TestClient, server: ProtocolServer) -> None:
    server.state.video_polls = 4
    task = keyed.post(
        "/api/generate/video",
        data={"prompt": "make it run"},
        files={"file": ("p.png", png_bytes(), "image/png")},
    ).json()
    done = _wait(keyed, task["id"])
    assert done["status"] == "success" and "processing" in done["seen"]
    assert done["result"]["kind"] == "video"
    assert keyed.get(done["result"]["url"]).headers["content-type"] == "video/mp4"
    assert keyed.get("/api/generate/tasks/abc123").status_code == 404


def test_stuck_video_task_fails_with_a_clear_message(
    keyed: TestClient, server: ProtocolServer
) -> None:
    server.fault("/videos", "stuck")
    task = keyed.post("/api/generate/video", json={"prompt": "a corgi"}).json()
    done = _wait(keyed, task["id"])
    assert done["status"] == "failed" and "still not finished after 2 s" in done["error"]


def test_provider_failure_is_a_502_line(keyed: TestClient, server: ProtocolServer) -> None:
    server.fault("/images", 500, times=5)
    r = keyed.post("/api/generate/image", json={"prompt": "a corgi"})
    assert r.status_code == 502 and "HTTP 500" in r.json()["detail"]


def test_web_search(keyed: TestClient) -> None:
    r = keyed.post(
        "/api/web-search", data={"k": "2"}, files={"file": ("p.png", png_bytes(), "image/png")}
    )
    assert r.status_code == 200 and [h["score"] for h in r.json()["hits"]] == [0.95, 0.85]
    bad = keyed.post("/api/web-search", files={"file": ("p.png", b"not an image", "image/png")})
    assert bad.status_code == 415 and "detail" in bad.json()


@needs_dogs
def test_chat_without_keys_rules_and_labelled_photos(bare: TestClient) -> None:
    first = bare.post("/api/dogs/chat", json={"message": "德国牧羊犬好训练吗？"}).json()
    assert first["kind"] == "answer" and first["provider"] is None
    assert "容易训练" in first["text"] and first["needs_key"]
    gen = bare.post(
        "/api/dogs/chat",
        json={"message": "draw a red striped card", "session_id": first["session_id"]},
    ).json()
    assert gen["kind"] == "generation_unavailable" and gen["session_id"] == first["session_id"]
    assert gen["photos"] and all("not generated" in p["label"] for p in gen["photos"])
    assert bare.post("/api/dogs/chat", json={"message": " "}).status_code == 422
    assert bare.post("/api/dogs/chat", json=["x"]).status_code == 422


@needs_dogs
def test_chat_with_keys_grounds_and_generates(keyed: TestClient) -> None:
    reply = keyed.post("/api/dogs/chat", json={"message": "吉娃娃怕冷吗？"}).json()
    assert reply["provider"].startswith("Zhipu BigModel") and "耐寒：低" in reply["text"]
    image = keyed.post("/api/dogs/chat", json={"message": "画一只在雪地里的萨摩耶"}).json()
    assert image["kind"] == "generated" and image["card"]["url"].startswith("/api/media/images/")
    video = keyed.post("/api/dogs/chat", json={"message": "生成一个柯基奔跑的视频"}).json()
    assert video["kind"] == "generating"
    assert _wait(keyed, video["task"]["id"])["status"] == "success"
