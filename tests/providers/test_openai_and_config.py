"""The OpenAI-compatible chat client, configuration and the registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crossmodal.errors import ConfigError
from crossmodal.providers import (
    ProviderError,
    ProviderNotConfigured,
    ProvidersConfig,
    chat_provider,
    generate_image,
    load_config,
)
from crossmodal.providers.config import Secret
from crossmodal.providers.media import captions_for
from crossmodal.providers.openai_compat import OpenAIChat
from tests.providers.protocol_servers import ZHIPU_KEY, ProtocolServer, png_bytes


def _openai(config: ProvidersConfig, server: ProtocolServer, key: str = ZHIPU_KEY):
    return dataclasses.replace(
        config,
        zhipu_key=None,
        openai_url=server.url + "/",
        openai_model="qwen2",
        openai_key=Secret(key),
    )


def test_openai_chat_stream_and_vision(server: ProtocolServer, config: ProvidersConfig):
    cfg = _openai(config, server)
    client = chat_provider(cfg)
    assert isinstance(client, OpenAIChat)
    assert client.chat([{"role": "user", "content": "hi"}]) == "[qwen2] hi"
    assert "".join(client.chat_stream([{"role": "user", "content": "hi"}])) == "[qwen2] hi"
    client.chat([{"role": "user", "content": "what dog", "image": png_bytes()}])
    url = server.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")


def test_openai_errors(server: ProtocolServer, config: ProvidersConfig):
    with pytest.raises(ProviderError, match="CROSSMODAL_LLM_KEY"):
        OpenAIChat(_openai(config, server, key="bad")).chat([{"role": "user", "content": "x"}])
    server.fault("/chat", 429)
    assert OpenAIChat(_openai(config, server)).chat([{"role": "user", "content": "x"}])
    server.fault("/chat", 500, times=3)
    with pytest.raises(ProviderError, match=r"OpenAI-compatible chat: HTTP 500"):
        OpenAIChat(_openai(config, server)).chat([{"role": "user", "content": "x"}])
    server.fault("/chat", "malformed")
    with pytest.raises(ProviderError, match=r"OpenAI-compatible chat: .*not JSON"):
        OpenAIChat(_openai(config, server)).chat([{"role": "user", "content": "x"}])


def test_no_chat_configured_names_both_options():
    with pytest.raises(ProviderNotConfigured) as exc:
        chat_provider(ProvidersConfig())
    assert "CROSSMODAL_ZHIPU_API_KEY" in str(exc.value) and "CROSSMODAL_LLM_URL" in str(exc.value)


def test_env_over_file_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("CROSSMODAL_ZHIPU_API_KEY", "ZHIPUAI_API_KEY", "CROSSMODAL_MEDIA_DIR"):
        monkeypatch.delenv(name, raising=False)
    file = tmp_path / "providers.toml"
    file.write_text(
        '[zhipu]\napi_key = "file.key"\nchat_model = "glm-4-flash"\n'
        '[media]\ndir = "%s"\n[network]\nretries = 1\n' % (tmp_path / "m"),
        encoding="utf-8",
    )
    monkeypatch.setenv("CROSSMODAL_PROVIDERS_FILE", str(file))
    cfg = load_config()
    assert cfg.zhipu_key == "file.key" and cfg.chat_model == "glm-4-flash"
    assert cfg.media_dir == tmp_path / "m" and cfg.retries == 1
    monkeypatch.setenv("ZHIPUAI_API_KEY", "env.key")
    assert load_config().zhipu_key == "env.key"
    assert load_config().summary() == {
        "chat": "zhipu",
        "vision": True,
        "image": True,
        "video": True,
        "web_search": False,
    }
    monkeypatch.setenv("CROSSMODAL_PROVIDER_RETRIES", "many")
    with pytest.raises(ConfigError, match="CROSSMODAL_PROVIDER_RETRIES must be a number"):
        load_config()
    monkeypatch.setenv("CROSSMODAL_PROVIDERS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="providers file not found"):
        load_config()


def test_generated_images_are_indexable_with_their_prompt(
    server: ProtocolServer, config: ProvidersConfig
):
    media = generate_image("  a corgi   in snow ", config=config)
    assert media.prompt == "a corgi in snow"
    assert captions_for(media.path.parent) == {media.path.name: ["a corgi in snow"]}
    with pytest.raises(ProviderError, match="prompt is empty"):
        generate_image("   ", config=config)
