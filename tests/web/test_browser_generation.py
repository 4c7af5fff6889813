"""The page's chat, generation and video cards in Chromium, against a live server whose
providers point at the local protocol servers of tests/providers (nothing leaves 127.0.0.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal.web.service import dogs_available
from tests.providers.protocol_servers import ProtocolServer, provider_env
from tests.providers.test_cli_providers import KEY_VARS
from tests.web.conftest import LiveServer
from tests.web.test_browser import (  # noqa: F401 - fixtures and helpers of the page tests
    CHROMIUM,
    _dog_photo,
    browser,
    open_page,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make setup` installs it (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def keyed_server(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, ProtocolServer]]:
    """A second app over the live server's collection, with every provider keyed to a local
    protocol server (the environment is restored afterwards)."""
    from crossmodal.web import WebSettings, create_app

    protocol = ProtocolServer().start()
    protocol.state.video_polls = 3
    env = provider_env(protocol, str(tmp_path_factory.mktemp("media")))
    env["CROSSMODAL_VIDEO_POLL"] = "0.4"  # slow enough for the page to show the progress
    env["CROSSMODAL_VIDEO_TIMEOUT"] = "20"
    saved = {name: os.environ.get(name) for name in (*KEY_VARS, *env)}
    for name in KEY_VARS:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        collection = live_server.server.config.app.state.service.collection
        app = create_app(collection, WebSettings(), warm_up=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with LiveServer(app) as server:
        yield server, protocol
    protocol.stop()


@pytest.fixture()
def kpage(browser, keyed_server) -> Iterator[object]:  # type: ignore[no-untyped-def]  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    pg.problems = problems  # type: ignore[attr-defined]
    yield pg
    context.close()


def test_text_to_image_shows_a_result_card(kpage, keyed_server) -> None:  # type: ignore[no-untyped-def]
    server, protocol = keyed_server
    open_page(kpage, server)
    kpage.fill("#gen-prompt", "一只在雪地里的萨摩耶")
    kpage.click("#gen-image")
    kpage.wait_for_selector("#gen-results .media-card[data-kind=image] img")
    wait_until(
        kpage,
        "(() => { const i = document.querySelector('#gen-results .media-card img');"
        " return i && i.complete && i.naturalWidth > 0; })()",
    )
    caption = str(kpage.text_content("#gen-results .media-card figcaption"))
    assert "一只在雪地里的萨摩耶" in caption and "cogview-3" in caption
    assert any(r.path == "/images/generations" for r in protocol.requests)
    assert kpage.is_hidden("#keys")  # every feature has a key here
    assert not kpage.problems


def test_video_task_shows_progress_then_a_playable_card(kpage, keyed_server) -> None:  # type: ignore[no-untyped-def]
    server, _ = keyed_server
    open_page(kpage, server)
    kpage.fill("#gen-prompt", "a corgi running on the beach")
    kpage.click("#gen-video")
    kpage.wait_for_selector("#gen-results .media-card.pending progress")
    status = str(kpage.text_content("#gen-results .task-status"))
    assert "video task" in status and "generating the video" in status
    kpage.wait_for_selector("#gen-results .media-card[data-kind=video] video", timeout=30_000)
    assert kpage.query_selector("#gen-results .media-card.pending") is None
    src = kpage.get_attribute("#gen-results video", "src")
    assert src and src.startswith("/api/media/videos/") and src.endswith(".mp4")
    assert kpage.evaluate("document.querySelector('#gen-results video').controls")
    assert not kpage.problems


@pytest.mark.skipif(not dogs_available(), reason="the dog edition is not installed")
def test_two_turn_chinese_chat_about_an_uploaded_photo(kpage, keyed_server) -> None:  # type: ignore[no-untyped-def]
    server, protocol = keyed_server
    dog: Path = _dog_photo()
    open_page(kpage, server)
    kpage.wait_for_selector("#chat:not([hidden])")
    kpage.set_input_files("#file", str(dog))
    kpage.wait_for_selector(".card")
    kpage.fill("#question", "这是什么品种？")
    with kpage.expect_response(lambda r: r.url.endswith("/api/dogs/chat"), timeout=60_000) as one:
        kpage.click("#ask-button")
    first = one.value.json()
    assert one.value.status == 200 and first["breeds"] == ["Chihuahua"], first
    kpage.wait_for_selector(".bubble.answer")
    kpage.fill("#question", "它怕冷吗？")
    with kpage.expect_response(lambda r: r.url.endswith("/api/dogs/chat"), timeout=60_000) as two:
        kpage.click("#ask-button")
    second = two.value.json()
    assert second["session_id"] == first["session_id"]
    assert second["breeds"] == ["Chihuahua"]
    assert {"recognized", "cold_tolerance"} <= {f["field"] for f in second["facts"]}
    wait_until(kpage, "document.querySelectorAll('.bubble.answer').length === 2")
    last = str(kpage.text_content(".bubble.answer:last-of-type"))
    assert "glm-4" in last and "耐寒" in last  # the model's reply shows the facts it rests on
    # turn two carried turn one in its history, and the photo went to the vision model once
    chats = [r for r in protocol.requests if r.path == "/chat/completions"]
    assert [m["role"] for m in chats[-1].body["messages"]][:3] == ["system", "user", "assistant"]
    assert chats[-2].body["model"] == "glm-4v" and chats[-1].body["model"] == "glm-4"
    assert not kpage.problems
