"""The Zhipu BigModel client against a local server speaking its protocol."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from crossmodal.providers import ProviderError, ProviderNotConfigured, ProvidersConfig
from crossmodal.providers.config import Secret
from crossmodal.providers.zhipu import ZhipuClient, jwt_token
from tests.providers.protocol_servers import ProtocolServer, png_bytes

USER = [{"role": "user", "content": "柯基掉毛吗？"}]


def test_chat_success_sends_documented_shape(server: ProtocolServer, config: ProvidersConfig):
    text = ZhipuClient(config).chat([{"role": "system", "content": "be brief"}, *USER])
    assert text == "[glm-4] 柯基掉毛吗？"
    req = server.requests[-1]
    assert req.path == "/chat/completions"
    assert req.headers["Authorization"] == "Bearer testid.testsecret"
    assert req.body["messages"][0] == {"role": "system", "content": "be brief"}
    assert req.body["stream"] is False


def test_chat_stream_yields_deltas_in_order(server: ProtocolServer, config: ProvidersConfig):
    parts = list(ZhipuClient(config).chat_stream(USER))
    assert len(parts) > 1
    assert "".join(parts) == "[glm-4] 柯基掉毛吗？"
    assert server.requests[-1].body["stream"] is True


def test_vision_turn_goes_to_the_vision_model_as_base64(
    server: ProtocolServer, config: ProvidersConfig
):
    photo = png_bytes()
    text = ZhipuClient(config).chat([{"role": "user", "content": "它是什么狗？", "image": photo}])
    assert text == "[glm-4v] 它是什么狗？ (with image)"
    content = server.requests[-1].body["messages"][0]["content"]
    assert content[1]["type"] == "image_url"
    assert base64.b64decode(content[1]["image_url"]["url"]) == photo


def test_jwt_auth_is_accepted_and_expires(server: ProtocolServer, config: ProvidersConfig):
    jwt_config = dataclasses.replace(config, zhipu_auth="jwt")
    assert ZhipuClient(jwt_config).chat(USER).endswith("柯基掉毛吗？")
    token = server.requests[-1].headers["Authorization"].removeprefix("Bearer ")
    assert token.count(".") == 2 and "testsecret" not in token
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "sign_type": "SIGN"}
    with pytest.raises(ProviderError, match=r"id\.secret"):
        jwt_token("no-dot-key")


def test_auth_failure_names_the_variable(server: ProtocolServer, config: ProvidersConfig):
    bad = dataclasses.replace(config, zhipu_key=Secret("testid.wrong"))
    with pytest.raises(ProviderError) as exc:
        ZhipuClient(bad).chat(USER)
    message = str(exc.value)
    assert "Zhipu BigModel" in message and "HTTP 401" in message
    assert "CROSSMODAL_ZHIPU_API_KEY" in message
    assert "wrong" not in message  # the key itself is never repeated
    assert len([r for r in server.requests if r.path == "/chat/completions"]) == 1  # no retry


def test_rate_limit_is_retried_then_succeeds(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", 429, times=2)
    assert ZhipuClient(config).chat(USER).endswith("柯基掉毛吗？")
    assert len(server.requests) == 3


def test_rate_limit_that_persists_says_so(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", 429, times=5)
    with pytest.raises(ProviderError, match=r"rate limited \(HTTP 429\) after 2 retries"):
        ZhipuClient(config).chat(USER)
    assert len(server.requests) == 3


def test_server_error_is_retried_and_reported(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", 500, times=1)
    assert ZhipuClient(config).chat(USER)  # one 500, then fine
    server.fault("/chat", 500, times=3)
    with pytest.raises(ProviderError, match=r"HTTP 500: 服务内部错误 \(code 1500\)"):
        ZhipuClient(config).chat(USER)


def test_streaming_retries_before_the_first_byte(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", 500)
    assert "".join(ZhipuClient(config).chat_stream(USER)).endswith("柯基掉毛吗？")


def test_malformed_stream_is_a_clear_error(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", "sse-garbage")
    with pytest.raises(ProviderError, match="event that is not a delta"):
        list(ZhipuClient(config).chat_stream(USER))
    server.fault("/chat", "sse-cut")
    with pytest.raises(ProviderError, match=r"ended without \[DONE\]"):
        list(ZhipuClient(config).chat_stream(USER))


def test_malformed_reply_is_a_clear_error(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/chat", "malformed")
    with pytest.raises(ProviderError, match="not JSON"):
        ZhipuClient(config).chat(USER)


def test_unreachable_server_is_named(config: ProvidersConfig):
    dead = dataclasses.replace(config, zhipu_base_url="http://127.0.0.1:9", retries=1)
    with pytest.raises(ProviderError, match=r"http://127.0.0.1:9/chat/completions unreachable"):
        ZhipuClient(dead).chat(USER)


def test_no_key_names_the_variable():
    with pytest.raises(ProviderNotConfigured, match="CROSSMODAL_ZHIPU_API_KEY"):
        ZhipuClient(ProvidersConfig())


def test_generate_image_saves_file_and_sidecar(server: ProtocolServer, config: ProvidersConfig):
    media = ZhipuClient(config).generate_image("雪地里的萨摩耶", config.media_dir, size="1024x1024")
    assert media.path.parent == config.media_dir / "images" and media.path.suffix == ".png"
    with Image.open(media.path) as img:
        assert img.size == (64, 64)
    side = json.loads(media.sidecar.read_text(encoding="utf-8"))
    assert side["prompt"] == "雪地里的萨摩耶"
    assert side["provider"] == "zhipu" and side["model"] == "cogview-3"
    assert side["path"] == media.path.name
    assert server.requests[0].body == {
        "model": "cogview-3",
        "prompt": "雪地里的萨摩耶",
        "size": "1024x1024",
    }


def test_image_reply_without_url_is_reported(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/images", "malformed")
    with pytest.raises(ProviderError, match="not JSON"):
        ZhipuClient(config).generate_image("a corgi", config.media_dir)
    assert not (config.media_dir / "images").exists() or not any(
        (config.media_dir / "images").iterdir()
    )


def test_video_finishes_after_several_polls(server: ProtocolServer, config: ProvidersConfig):
    server.state.video_polls = 4
    seen: list[str] = []
    media = ZhipuClient(config).generate_video(
        "a corgi running", config.media_dir, on_progress=lambda s, t: seen.append(s)
    )
    assert seen == ["submitted", "processing", "processing", "processing", "success"]
    assert media.path.suffix == ".mp4" and media.task_id == "task-1"
    assert media.cover_url and media.cover_url.endswith("task-1.png")
    polls = [r for r in server.requests if r.path.startswith("/async-result/")]
    assert len(polls) == 4


def test_image_to_video_sends_the_image(server: ProtocolServer, config: ProvidersConfig):
    photo = png_bytes()
    ZhipuClient(config).generate_video("make it run", config.media_dir, image=photo)
    submit = next(r for r in server.requests if r.path == "/videos/generations")
    assert base64.b64decode(submit.body["image_url"]) == photo


def test_video_that_never_finishes_times_out_clearly(
    server: ProtocolServer, config: ProvidersConfig
):
    server.fault("/videos", "stuck")
    short = dataclasses.replace(config, video_timeout=0.3)
    with pytest.raises(ProviderError, match=r"task-1 still not finished after 0.3 s"):
        ZhipuClient(short).generate_video("a corgi", short.media_dir)
    assert not (short.media_dir / "videos").exists()


def test_failed_video_task_is_reported(server: ProtocolServer, config: ProvidersConfig):
    server.state.video_polls = 1
    with pytest.raises(ProviderError, match="task-1 failed on the server"):
        ZhipuClient(config).generate_video("FAIL please", config.media_dir)


def test_config_repr_hides_keys(config: ProvidersConfig, tmp_path: Path):
    assert "testsecret" not in repr(config)
    assert "test-sk" not in repr(config)
