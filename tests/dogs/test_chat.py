"""Grounded multi-turn chat: rules without a key, GLM-4 (local protocol server) with one,
generation requests routed to the generators or answered with collection photos."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal.dogs.chat import (
    ChatReply,
    ChatSession,
    SessionStore,
    chat_turn,
    generation_request,
    stream_turn,
)
from crossmodal.providers import ProvidersConfig
from crossmodal.providers.config import Secret
from tests.providers.protocol_servers import ZHIPU_KEY, ProtocolServer, png_bytes


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    srv = ProtocolServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def keyed(server: ProtocolServer, tmp_path: Path) -> ProvidersConfig:
    return ProvidersConfig(
        zhipu_key=Secret(ZHIPU_KEY),
        zhipu_base_url=server.url,
        media_dir=tmp_path / "media",
        retries=1,
        backoff=0.01,
        poll_interval=0.02,
        video_timeout=2.0,
    )


NO_KEYS = ProvidersConfig()


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("画一只在雪地里的萨摩耶", "image"),
        ("make a video of this dog running", "video"),
        ("Generate a video of a corgi running", "video"),
        ("生成一张柯基的图片", "image"),
        ("帮我做一个金毛奔跑的视频", "video"),
        ("Draw a beagle in a park", "image"),
        ("How much exercise does a corgi need?", None),
        ("柯基适合家养吗？", None),
        ("Is it good with kids?", None),
    ],
)
def test_generation_requests_are_recognised(message: str, kind: str | None) -> None:
    assert generation_request(message) == kind


def test_without_a_key_the_rules_answer_and_say_what_needs_one() -> None:
    reply = chat_turn(ChatSession(), "德国牧羊犬好训练吗？", config=NO_KEYS)
    assert reply.kind == "answer" and reply.provider is None
    assert "容易训练" in reply.text and "依据（知识库）" in reply.text
    assert {f["field"] for f in reply.facts} == {"trainability"}
    assert reply.needs_key == ["chat", "image", "video", "web_search"]


def test_grounded_turns_send_facts_and_history(server: ProtocolServer, keyed: ProvidersConfig):
    session = ChatSession()
    first = chat_turn(session, "Is the Afghan hound easy to train?", config=keyed)
    assert first.provider == "Zhipu BigModel (glm-4)"
    # the local server echoes the grounded prompt: the facts went to the model
    assert "[Knowledge-base facts]" in first.text and "trainability: low" in first.text
    assert first.text.endswith("Facts used (knowledge base): Afghan Hound — trainability: low.")
    second = chat_turn(session, "And how long does it live?", config=keyed)
    sent = server.requests[-1].body["messages"]
    assert sent[0]["role"] == "system"
    assert sent[1] == {"role": "user", "content": "Is the Afghan hound easy to train?"}
    assert sent[2]["role"] == "assistant" and sent[2]["content"] == first.text
    assert second.session_id == first.session_id == session.id


def test_streaming_yields_pieces_then_the_reply(keyed: ProvidersConfig) -> None:
    pieces = list(stream_turn(ChatSession(), "吉娃娃怕冷吗？", config=keyed))
    reply = pieces[-1]
    assert isinstance(reply, ChatReply) and len(pieces) > 3
    assert reply.text.startswith("".join(str(p) for p in pieces[:-1]))
    assert "耐寒：低" in reply.text


def test_a_failing_model_keeps_the_rule_answer(server: ProtocolServer, keyed: ProvidersConfig):
    server.fault("/chat", 500, times=5)
    reply = chat_turn(ChatSession(), "吉娃娃怕冷吗？", config=keyed)
    assert reply.provider is None
    assert "吉娃娃怕冷" in reply.text and "HTTP 500" in reply.text
    assert "依据（知识库）" in reply.text


def test_generation_without_key_offers_labelled_collection_photos(tmp_path: Path) -> None:
    from tests.web.conftest import build_collection

    col = build_collection(tmp_path)
    try:
        reply = chat_turn(ChatSession(), "draw a red striped card", config=NO_KEYS, collection=col)
    finally:
        col.close()
    assert reply.kind == "generation_unavailable"
    assert "CROSSMODAL_ZHIPU_API_KEY" in reply.text and "not generated" in reply.text
    assert reply.photos and all("not generated" in p["label"] for p in reply.photos)
    zh = chat_turn(ChatSession(), "画一只在雪地里的萨摩耶", config=NO_KEYS)
    assert zh.kind == "generation_unavailable" and "需要密钥" in zh.text and zh.photos == []


def test_generation_with_key_saves_media(keyed: ProvidersConfig) -> None:
    session = ChatSession()
    image = chat_turn(session, "画一只在雪地里的萨摩耶", config=keyed)
    assert image.kind == "generated" and image.media is not None
    assert Path(image.media["path"]).is_file()
    photo = png_bytes()
    session.image = photo
    seen: list[str] = []
    video = chat_turn(
        session,
        "make a video of this dog running",
        config=keyed,
        on_progress=lambda s, t: seen.append(s),
    )
    assert video.kind == "generated" and video.media["path"].endswith(".mp4")
    assert video.media["meta"]["from_image"] is True  # "this dog": the conversation's photo
    assert seen[0] == "submitted" and seen[-1] == "success"


def test_session_store_forgets_the_oldest() -> None:
    store = SessionStore(size=2)
    a = store.get(None)
    assert store.get(a.id) is a
    store.get(None)
    store.get(None)
    assert store.get(a.id) is not a


def test_two_turns_about_a_photo(dogs_root: Path, keyed: ProvidersConfig) -> None:
    photo = (dogs_root / "images" / "n02085620_10074.jpg").read_bytes()  # a Chihuahua
    session = ChatSession()
    first = chat_turn(session, "这是什么狗？", photo, config=dataclasses.replace(keyed))
    assert first.breeds == ["Chihuahua"]
    second = chat_turn(session, "它怕冷吗？", config=NO_KEYS)
    assert second.breeds == ["Chihuahua"]
    fields = {f["field"] for f in second.facts}
    assert {"recognized", "cold_tolerance"} <= fields
    assert "识别为吉娃娃" in second.text
