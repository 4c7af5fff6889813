"""Reading the text deltas of an OpenAI-style streamed chat (server-sent events).

Each event is `data: <json>` with `choices[0].delta.content`; the stream ends with
`data: [DONE]`. Zhipu's GLM-4 streams the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from crossmodal.providers.base import ProviderError

__all__ = ["iter_sse_text"]


def iter_sse_text(response: httpx.Response, provider: str) -> Iterator[str]:
    done = False
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # comments, `event:` and blank separator lines
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            event = json.loads(data)
            delta = event["choices"][0].get("delta", {}).get("content") or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError(
                provider, "the chat stream sent an event that is not a delta"
            ) from None
        if delta:
            yield delta
    if not done:
        raise ProviderError(provider, "the chat stream ended without [DONE]")
