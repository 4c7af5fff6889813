"""Zhipu BigModel open platform (智谱开放平台): GLM-4 / GLM-4V chat, CogView-3, CogVideoX.

The protocol, as published (https://open.bigmodel.cn/dev/api, and the official SDK
`MetaGLM/zhipuai-sdk-python-v4`: `api_resource/chat/completions.py`, `images.py`,
`videos/videos.py`, `types/video/video_object.py`), base `https://open.bigmodel.cn/api/paas/v4`:

- `POST /chat/completions` {model, messages, temperature, stream} -> {choices: [{message:
  {content}}]}; with `stream: true` server-sent events `data: {choices: [{delta: {content}}]}`
  ending `data: [DONE]`. GLM-4V takes a user `content` list of `{type: "text", text}` and
  `{type: "image_url", image_url: {url: <URL or base64>}}`.
- `POST /images/generations` {model: "cogview-3", prompt, size?} -> {created, data: [{url}]}.
- `POST /videos/generations` {model: "cogvideox", prompt, image_url?} -> {id, request_id,
  task_status: "PROCESSING"}; `GET /async-result/{id}` -> {task_status: PROCESSING | SUCCESS |
  FAIL, video_result: [{url, cover_image_url}]}.
- Auth: `Authorization: Bearer <api key>`, or (auth = "jwt") a token signed HS256 with the
  secret half of the `id.secret` key, payload {api_key: id, exp, timestamp} in milliseconds and
  header {alg: HS256, sign_type: SIGN} (the SDK's `_jwt_token.py`).
- Errors: HTTP 401 / 429 / 5xx with {error: {code, message}}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossmodal.providers.base import (
    ChatMessage,
    GeneratedMedia,
    ProgressCallback,
    ProviderError,
    VideoTask,
)
from crossmodal.providers.config import ProvidersConfig
from crossmodal.providers.http import HttpClient
from crossmodal.providers.media import save_media
from crossmodal.providers.sse import iter_sse_text

__all__ = ["ZhipuClient", "jwt_token"]

NAME = "Zhipu BigModel"
KEY_HINT = "set CROSSMODAL_ZHIPU_API_KEY (or ZHIPUAI_API_KEY) to a valid BigModel API key"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_token(api_key: str, ttl_s: float = 3600.0, now: float | None = None) -> str:
    """A BigModel JWT (HS256) for an `id.secret` API key. Six lines of stdlib instead of PyJWT,
    since HS256 over a fixed header is all the platform asks for."""
    key_id, sep, secret = api_key.partition(".")
    if not sep or not key_id or not secret:
        raise ProviderError(NAME, f"a JWT needs an 'id.secret' API key; {KEY_HINT}")
    ms = int((now if now is not None else time.time()) * 1000)
    header = {"alg": "HS256", "sign_type": "SIGN"}
    payload = {"api_key": key_id, "exp": ms + int(ttl_s * 1000), "timestamp": ms}
    signing = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64url(signature)}"


class ZhipuClient:
    """Chat (incl. streaming and vision), text->image and text/image->video on one key."""

    name = NAME

    def __init__(self, config: ProvidersConfig) -> None:
        if config.zhipu_key is None:
            from crossmodal.providers.base import ProviderNotConfigured

            raise ProviderNotConfigured(NAME, f"no API key; {KEY_HINT}")
        self.config = config
        self.model = config.chat_model
        self.base = config.zhipu_base_url.rstrip("/")
        self.http = HttpClient.for_config(NAME, KEY_HINT, config)

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        key = str(self.config.zhipu_key)
        token = jwt_token(key) if self.config.zhipu_auth == "jwt" else key
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    # ------------------------------------------------------------------ chat
    def _messages(self, messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], bool]:
        """The wire messages, and whether any carries an image (then the vision model answers)."""
        out, vision = [], False
        for m in messages:
            image = m.get("image")
            if image:
                vision = True
                content: Any = [
                    {"type": "text", "text": str(m.get("content", ""))},
                    # GLM-4V takes plain base64 (no data: prefix) or a URL
                    {"type": "image_url", "image_url": {"url": base64.b64encode(image).decode()}},
                ]
            else:
                content = str(m.get("content", ""))
            out.append({"role": m["role"], "content": content})
        return out, vision

    def _chat_body(self, messages: list[ChatMessage], temperature: float, stream: bool) -> dict:
        wire, vision = self._messages(messages)
        return {
            "model": self.config.vision_model if vision else self.config.chat_model,
            "messages": wire,
            "temperature": temperature,
            "stream": stream,
        }

    def chat(self, messages: list[ChatMessage], *, temperature: float = 0.3) -> str:
        body = self._chat_body(messages, temperature, False)
        return post_chat(self.http, f"{self.base}/chat/completions", body, self._headers(), NAME)

    def chat_stream(
        self, messages: list[ChatMessage], *, temperature: float = 0.3
    ) -> Iterator[str]:
        body = self._chat_body(messages, temperature, True)
        url = f"{self.base}/chat/completions"
        yield from stream_chat(self.http, url, body, self._headers(), NAME)

    # ------------------------------------------------------------------ images
    def generate_image(
        self, prompt: str, out_dir: Path, *, size: str | None = None
    ) -> GeneratedMedia:
        body: dict[str, Any] = {"model": self.config.image_model, "prompt": prompt}
        if size:
            body["size"] = size
        payload = self.http.json(
            "POST", f"{self.base}/images/generations", json=body, headers=self._headers()
        )
        try:
            url = payload["data"][0]["url"]
            assert isinstance(url, str) and url
        except (KeyError, IndexError, TypeError, AssertionError):
            raise ProviderError(NAME, "the image reply has no data[0].url") from None
        data = self.http.download(url)
        return save_media(
            data,
            "image",
            out_dir,
            prompt=prompt,
            provider="zhipu",
            model=self.config.image_model,
            source_url=url,
            meta={"size": size, "created_remote": payload.get("created")},
        )

    # ------------------------------------------------------------------ videos
    def submit_video(self, prompt: str, image: bytes | None = None) -> VideoTask:
        body: dict[str, Any] = {"model": self.config.video_model, "prompt": prompt}
        if image is not None:
            body["image_url"] = base64.b64encode(image).decode()
        payload = self.http.json(
            "POST", f"{self.base}/videos/generations", json=body, headers=self._headers()
        )
        task_id = payload.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ProviderError(NAME, "the video reply has no task id")
        return VideoTask(task_id, str(payload.get("task_status") or "PROCESSING"))

    def poll_video(self, task_id: str) -> VideoTask:
        payload = self.http.json(
            "GET", f"{self.base}/async-result/{task_id}", headers=self._headers()
        )
        status = payload.get("task_status")
        if status not in ("PROCESSING", "SUCCESS", "FAIL"):
            raise ProviderError(NAME, f"video task {task_id}: unknown task_status {status!r}")
        task = VideoTask(task_id, status)
        if status == "SUCCESS":
            try:
                first = payload["video_result"][0]
                task.video_url = first["url"]
                task.cover_url = first.get("cover_image_url")
            except (KeyError, IndexError, TypeError):
                raise ProviderError(
                    NAME, f"video task {task_id} succeeded but has no video_result[0].url"
                ) from None
        return task

    def generate_video(
        self,
        prompt: str,
        out_dir: Path,
        *,
        image: bytes | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> GeneratedMedia:
        """Submit, poll every `poll_interval` s until SUCCESS / FAIL / `video_timeout`, fetch."""
        start = time.monotonic()
        task = self.submit_video(prompt, image)
        if on_progress:
            on_progress("submitted", 0.0)
        while True:
            elapsed = time.monotonic() - start
            if elapsed > self.config.video_timeout:
                raise ProviderError(
                    NAME,
                    f"video task {task.task_id} still not finished after "
                    f"{self.config.video_timeout:g} s; raise CROSSMODAL_VIDEO_TIMEOUT or poll it "
                    "later",
                )
            time.sleep(
                min(self.config.poll_interval, max(0.0, self.config.video_timeout - elapsed))
            )
            task = self.poll_video(task.task_id)
            if on_progress:
                on_progress(task.status.lower(), time.monotonic() - start)
            if task.status == "FAIL":
                raise ProviderError(NAME, f"video task {task.task_id} failed on the server")
            if task.status == "SUCCESS":
                break
        assert task.video_url is not None
        data = self.http.download(task.video_url)
        return save_media(
            data,
            "video",
            out_dir,
            prompt=prompt,
            provider="zhipu",
            model=self.config.video_model,
            source_url=task.video_url,
            cover_url=task.cover_url,
            task_id=task.task_id,
            meta={"from_image": image is not None, "seconds": round(time.monotonic() - start, 1)},
        )


def _chat_text(payload: dict[str, Any], provider: str) -> str:
    try:
        text = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError(provider, "the chat reply has no choices[0].message.content") from None
    if not isinstance(text, str) or not text.strip():
        raise ProviderError(provider, "the chat reply is empty")
    return text.strip()


# the OpenAI chat-completions wire format, which GLM speaks and `OpenAIChat` shares
def post_chat(
    http: HttpClient, url: str, body: dict[str, Any], headers: dict[str, str], provider: str
) -> str:
    """POST a chat body and return the reply's text (a missing or empty one is an error)."""
    return _chat_text(http.json("POST", url, json=body, headers=headers), provider)


def stream_chat(
    http: HttpClient, url: str, body: dict[str, Any], headers: dict[str, str], provider: str
) -> Iterator[str]:
    """POST a streaming chat body and yield the text of its server-sent events."""
    with http.stream("POST", url, json=body, headers=headers) as response:
        yield from iter_sse_text(response, provider)
