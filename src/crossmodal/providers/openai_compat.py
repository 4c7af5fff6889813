"""Chat through any OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1, hosted APIs).

Protocol: `POST {base}/chat/completions` {model, messages, temperature, stream} ->
{choices: [{message: {content}}]}, or server-sent events of `choices[0].delta.content` ending
`data: [DONE]` (https://platform.openai.com/docs/api-reference/chat). A photo goes in a user
`content` list as `{type: "image_url", image_url: {url: "data:image/jpeg;base64,..."}}`; servers
without a vision model answer 4xx, which is reported as such.
Configured by CROSSMODAL_LLM_URL / CROSSMODAL_LLM_MODEL / CROSSMODAL_LLM_KEY, as before.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from crossmodal.providers.base import ChatMessage, ProviderNotConfigured
from crossmodal.providers.config import ProvidersConfig
from crossmodal.providers.http import HttpClient
from crossmodal.providers.zhipu import post_chat, stream_chat

__all__ = ["OpenAIChat"]

NAME = "OpenAI-compatible chat"
KEY_HINT = "set CROSSMODAL_LLM_KEY to a key the server at CROSSMODAL_LLM_URL accepts"


def _mime(data: bytes) -> str:
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


class OpenAIChat:
    name = NAME

    def __init__(self, config: ProvidersConfig) -> None:
        if not config.openai_url or not config.openai_model:
            raise ProviderNotConfigured(
                NAME, "no server; set CROSSMODAL_LLM_URL and CROSSMODAL_LLM_MODEL"
            )
        url = config.openai_url.rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else f"{url}/chat/completions"
        self.model = config.openai_model
        self.key = config.openai_key
        self.http = HttpClient.for_config(NAME, KEY_HINT, config)

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def _body(self, messages: list[ChatMessage], temperature: float, stream: bool) -> dict:
        wire: list[dict[str, Any]] = []
        for m in messages:
            image = m.get("image")
            if image:
                url = f"data:{_mime(image)};base64,{base64.b64encode(image).decode()}"
                content: Any = [
                    {"type": "text", "text": str(m.get("content", ""))},
                    {"type": "image_url", "image_url": {"url": url}},
                ]
            else:
                content = str(m.get("content", ""))
            wire.append({"role": m["role"], "content": content})
        return {"model": self.model, "messages": wire, "temperature": temperature, "stream": stream}

    def chat(self, messages: list[ChatMessage], *, temperature: float = 0.3) -> str:
        body = self._body(messages, temperature, False)
        return post_chat(self.http, self.endpoint, body, self._headers(), NAME)

    def chat_stream(
        self, messages: list[ChatMessage], *, temperature: float = 0.3
    ) -> Iterator[str]:
        body = self._body(messages, temperature, True)
        yield from stream_chat(self.http, self.endpoint, body, self._headers(), NAME)
