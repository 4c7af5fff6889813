"""Baidu AI Cloud image search (百度智能云 图像搜索): similar images of a photo.

Protocol (https://ai.baidu.com/ai-doc/IMAGESEARCH, and the official `baidu-aip` SDK's
`AipImageSearch`):

- token: `POST https://aip.baidubce.com/oauth/2.0/token?grant_type=client_credentials&
  client_id=<AK>&client_secret=<SK>` -> {access_token, expires_in (s, ~30 days)}; a bad AK/SK
  gives HTTP 401 {error: "invalid_client", error_description}.
- search: `POST /rest/2.0/image-classify/v1/realtime_search/similar/search?access_token=..`,
  form body `image=<base64>&pn=0&rn=<n>` -> {log_id, has_more, result_num, result: [{score,
  brief, cont_sign}]}; `brief` is the JSON string stored with each gallery image.
- errors come back as HTTP 200 with {error_code, error_msg}: 110/111 the token is invalid or
  expired (fetch a new one and retry once), 17/18/19 quota or QPS limits (retried with backoff
  like HTTP 429), anything else is reported.

Note: Baidu searches the image library attached to the application (filled with its
`similar/add` call, or Baidu's own collections where the account has them), not the whole web.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from crossmodal.providers.base import ProviderError, ProviderNotConfigured, WebImageHit
from crossmodal.providers.config import ProvidersConfig
from crossmodal.providers.http import HttpClient

__all__ = ["BaiduImageSearch"]

NAME = "Baidu image search"
KEY_HINT = "set CROSSMODAL_BAIDU_API_KEY and CROSSMODAL_BAIDU_SECRET_KEY (the application's AK/SK)"
_TOKEN_ERRORS = {110, 111}
_LIMIT_ERRORS = {17, 18, 19}


class BaiduImageSearch:
    name = NAME

    def __init__(self, config: ProvidersConfig) -> None:
        if config.baidu_key is None or config.baidu_secret is None:
            raise ProviderNotConfigured(NAME, f"no AK/SK; {KEY_HINT}")
        self.config = config
        self.base = config.baidu_base_url.rstrip("/")
        self.http = HttpClient.for_config(NAME, KEY_HINT, config)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def access_token(self, refresh: bool = False) -> str:
        """The cached OAuth token, fetched again a minute before it expires (or when refused)."""
        with self._lock:
            if not refresh and self._token and time.monotonic() < self._expires:
                return self._token
            payload = self.http.json(
                "POST",
                f"{self.base}/oauth/2.0/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": str(self.config.baidu_key),
                    "client_secret": str(self.config.baidu_secret),
                },
            )
            if "error" in payload:
                raise ProviderError(
                    NAME,
                    f"the AK/SK was refused "
                    f"({payload.get('error_description') or payload['error']}); {KEY_HINT}",
                )
            token = payload.get("access_token")
            if not isinstance(token, str) or not token:
                raise ProviderError(NAME, "the token reply has no access_token")
            expires = float(payload.get("expires_in") or 3600)
            self._token, self._expires = token, time.monotonic() + max(expires - 60, 1)
            return token

    def search_similar(self, image: bytes, *, limit: int = 10) -> list[WebImageHit]:
        if not image:
            raise ProviderError(NAME, "the image to search with is empty")
        form = {"image": base64.b64encode(image).decode(), "pn": "0", "rn": str(max(1, limit))}
        token = self.access_token()
        refreshed = False
        attempt = 0
        while True:
            payload = self.http.json(
                "POST",
                f"{self.base}/rest/2.0/image-classify/v1/realtime_search/similar/search",
                params={"access_token": token},
                data=form,
            )
            code = payload.get("error_code")
            if code is None:
                break
            if code in _TOKEN_ERRORS and not refreshed:
                token, refreshed = self.access_token(refresh=True), True
                continue
            if code in _LIMIT_ERRORS and attempt < self.http.retries:
                time.sleep(self.http.backoff * (2**attempt))
                attempt += 1
                continue
            why = payload.get("error_msg") or "error"
            if code in _LIMIT_ERRORS:
                raise ProviderError(
                    NAME, f"rate limited ({why}, error_code {code}) after {attempt} retries"
                )
            if code in _TOKEN_ERRORS:
                raise ProviderError(
                    NAME, f"{why} (error_code {code}) even with a new token; {KEY_HINT}"
                )
            raise ProviderError(NAME, f"{why} (error_code {code})")
        results = payload.get("result")
        if not isinstance(results, list):
            raise ProviderError(NAME, "the search reply has no result list")
        hits = []
        for item in results[:limit]:
            if not isinstance(item, dict) or "score" not in item:
                raise ProviderError(NAME, "a search result has no score")
            brief = _brief(item.get("brief"))
            hits.append(
                WebImageHit(
                    score=float(item["score"]),
                    url=brief.get("url") or brief.get("imgUrl"),
                    title=brief.get("title") or brief.get("name"),
                    raw={"cont_sign": item.get("cont_sign"), "brief": brief},
                )
            )
        return hits


def _brief(value: Any) -> dict[str, Any]:
    """`brief` is free text stored with each image; JSON objects are read, anything else kept."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {"title": value}
        return parsed if isinstance(parsed, dict) else {"title": value}
    return {}
