"""Clients of paid APIs behind small interfaces, chosen by configuration.

    from crossmodal.providers import chat, generate_image, generate_video, web_search
    chat([{"role": "user", "content": "柯基掉毛吗？"}])          # GLM-4 or an OpenAI server
    generate_image("a corgi in the snow")                       # CogView-3 -> GeneratedMedia
    generate_video("a corgi running", on_progress=print)        # CogVideoX: submit, poll, fetch
    web_search(open("rex.jpg", "rb").read())                     # Baidu similar-image search

Which provider serves what is read from the environment / providers.toml
(`crossmodal.providers.config`); with no key, each call raises `ProviderNotConfigured` whose
message names the variable to set. See docs/dogs.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from crossmodal.providers.base import (
    ChatMessage,
    ChatProvider,
    GeneratedMedia,
    ImageGenerator,
    ProgressCallback,
    ProviderError,
    ProviderNotConfigured,
    VideoGenerator,
    VideoTask,
    WebImageHit,
    WebImageSearch,
)
from crossmodal.providers.config import ProvidersConfig, load_config

__all__ = [
    "ChatMessage",
    "ChatProvider",
    "GeneratedMedia",
    "ImageGenerator",
    "ProviderError",
    "ProviderNotConfigured",
    "ProvidersConfig",
    "VideoGenerator",
    "VideoTask",
    "WebImageHit",
    "WebImageSearch",
    "chat",
    "chat_provider",
    "chat_stream",
    "generate_image",
    "generate_video",
    "image_generator",
    "load_config",
    "video_generator",
    "web_search",
    "web_searcher",
]


def chat_provider(config: ProvidersConfig | None = None) -> ChatProvider:
    config = config or load_config()
    backend = config.chat_backend()
    if backend == "zhipu":
        from crossmodal.providers.zhipu import ZhipuClient

        return ZhipuClient(config)
    if backend == "openai":
        from crossmodal.providers.openai_compat import OpenAIChat

        return OpenAIChat(config)
    raise ProviderNotConfigured(
        "chat",
        "no chat model configured; set CROSSMODAL_ZHIPU_API_KEY (GLM-4), or "
        "CROSSMODAL_LLM_URL and CROSSMODAL_LLM_MODEL (any OpenAI-compatible server)",
    )


def image_generator(config: ProvidersConfig | None = None) -> ImageGenerator:
    from crossmodal.providers.zhipu import ZhipuClient

    return ZhipuClient(config or load_config())


def video_generator(config: ProvidersConfig | None = None) -> VideoGenerator:
    from crossmodal.providers.zhipu import ZhipuClient

    return ZhipuClient(config or load_config())


def web_searcher(config: ProvidersConfig | None = None) -> WebImageSearch:
    from crossmodal.providers.baidu import BaiduImageSearch

    return BaiduImageSearch(config or load_config())


def chat(messages: list[ChatMessage], config: ProvidersConfig | None = None) -> str:
    return chat_provider(config).chat(messages)


def chat_stream(
    messages: list[ChatMessage], config: ProvidersConfig | None = None
) -> Iterator[str]:
    return chat_provider(config).chat_stream(messages)


def generate_image(
    prompt: str, out_dir: Path | None = None, config: ProvidersConfig | None = None
) -> GeneratedMedia:
    config = config or load_config()
    return image_generator(config).generate_image(_prompt(prompt), out_dir or config.media_dir)


def generate_video(
    prompt: str,
    out_dir: Path | None = None,
    *,
    image: bytes | None = None,
    on_progress: ProgressCallback | None = None,
    config: ProvidersConfig | None = None,
) -> GeneratedMedia:
    config = config or load_config()
    return video_generator(config).generate_video(
        _prompt(prompt), out_dir or config.media_dir, image=image, on_progress=on_progress
    )


def web_search(
    image: bytes, limit: int = 10, config: ProvidersConfig | None = None
) -> list[WebImageHit]:
    return web_searcher(config).search_similar(image, limit=limit)


def _prompt(prompt: str) -> str:
    text = " ".join(str(prompt).split())
    if not text:
        raise ProviderError("generation", "the prompt is empty: describe what to generate")
    if len(text) > 1000:
        raise ProviderError("generation", f"the prompt is {len(text)} characters; 1000 at most")
    return text
