"""Optional LLM rephrasing of a rule-based answer, through any OpenAI-compatible server.

Used only when configured:

    CROSSMODAL_LLM_URL    base URL, e.g. http://localhost:8000/v1 (or the full
                          .../chat/completions URL)
    CROSSMODAL_LLM_MODEL  model name sent in the request (required with the URL)
    CROSSMODAL_LLM_KEY    bearer token, if the server wants one
    CROSSMODAL_LLM_TIMEOUT seconds to wait (default 20)

The prompt holds the question, the knowledge-base facts and the rule-based draft, and tells the
model to use those facts only. Anything that goes wrong (server down, timeout, HTTP error,
malformed reply, empty text) is reported as `LLMError`, and `answer` keeps its rule-based text:
the LLM can make an answer read better, never make it fail. Plain `urllib`, so no extra
dependency.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from crossmodal.errors import CrossmodalError

__all__ = ["LLMConfig", "LLMError", "rephrase"]


class LLMError(CrossmodalError):
    """The configured LLM server could not give a usable reply."""


@dataclass(frozen=True)
class LLMConfig:
    url: str
    model: str
    key: str | None = None
    timeout: float = 20.0

    @classmethod
    def from_env(cls) -> LLMConfig | None:
        """The configuration from CROSSMODAL_LLM_*, or None when no URL/model is set."""
        url = os.environ.get("CROSSMODAL_LLM_URL", "").strip()
        model = os.environ.get("CROSSMODAL_LLM_MODEL", "").strip()
        if not url or not model:
            return None
        try:
            timeout = float(os.environ.get("CROSSMODAL_LLM_TIMEOUT", "20"))
        except ValueError:
            timeout = 20.0
        return cls(url, model, os.environ.get("CROSSMODAL_LLM_KEY") or None, timeout)

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


_SYSTEM = {
    "en": (
        "You are a careful dog-breed assistant. Rewrite the draft answer so it reads naturally "
        "and answers the question directly. Use ONLY the facts given; do not add any fact, "
        "number or breed that is not in them. If the facts say something is unknown, say so. "
        "Answer in English, in at most 4 sentences."
    ),
    "zh": (
        "你是一个严谨的犬种问答助手。请把草稿答案改写得自然通顺，并直接回答问题。"
        "只能使用给出的事实，不得添加事实中没有的任何信息、数字或犬种；"
        "如果事实说明某项信息未知，就如实说明。请用简体中文回答，不超过4句话。"
    ),
}


def build_messages(question: str, draft: str, facts: list[str], lang: str) -> list[dict]:
    fact_lines = "\n".join(f"- {f}" for f in facts) or "- (none)"
    user = f"Question: {question}\n\nFacts:\n{fact_lines}\n\nDraft answer:\n{draft}"
    return [
        {"role": "system", "content": _SYSTEM.get(lang, _SYSTEM["en"])},
        {"role": "user", "content": user},
    ]


def rephrase(question: str, draft: str, facts: list[str], lang: str, config: LLMConfig) -> str:
    """The LLM's rewording of `draft`; raises LLMError on any failure."""
    body = {
        "model": config.model,
        "messages": build_messages(question, draft, facts, lang),
        "temperature": 0.2,
        "max_tokens": 400,
    }
    headers = {"Content-Type": "application/json"}
    if config.key:
        headers["Authorization"] = f"Bearer {config.key}"
    request = urllib.request.Request(
        config.endpoint, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise LLMError(f"LLM server {config.endpoint} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LLMError(f"LLM server {config.endpoint} unreachable: {reason}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LLMError(f"LLM server {config.endpoint} sent a reply that is not JSON") from None
    try:
        text = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"LLM server {config.endpoint} sent no choices[0].message.content") from None
    if not isinstance(text, str) or not text.strip():
        raise LLMError(f"LLM server {config.endpoint} sent an empty answer")
    return text.strip()
