"""One HTTP helper for every provider: timeouts, retries with backoff on 429/5xx, clear errors.

Retried: HTTP 429 and 5xx (honouring `Retry-After` up to 30 s), connection failures and read
timeouts. Not retried: other 4xx (a wrong key stays wrong). Every error is one line naming the
provider and, for 401/403, the variable that holds the key. Request bodies and headers are never
logged or put in messages, so keys cannot leak through them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from crossmodal.providers.base import ProviderError

__all__ = ["RETRY_STATUSES", "HttpClient"]

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class HttpClient:
    """An `httpx.Client` plus the retry policy and error wording of one provider."""

    def __init__(
        self,
        provider: str,
        *,
        key_hint: str,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.provider = provider
        self.key_hint = key_hint  # "set CROSSMODAL_ZHIPU_API_KEY": said on 401/403
        self.retries = retries
        self.backoff = backoff
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    @classmethod
    def for_config(cls, provider: str, key_hint: str, config: Any) -> HttpClient:
        """The client of one provider with the timeout and retry policy of a ProviderConfig."""
        return cls(
            provider,
            key_hint=key_hint,
            timeout=config.timeout,
            retries=config.retries,
            backoff=config.backoff,
        )

    def close(self) -> None:
        self.client.close()

    def _fail(self, message: str, status: int | None = None) -> ProviderError:
        return ProviderError(self.provider, message, status)

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = self.backoff * (2**attempt)
        if response is not None and (after := response.headers.get("retry-after")):
            with suppress(ValueError):
                delay = min(max(float(after), 0.0), MAX_RETRY_AFTER)
        log.info("%s: retrying in %.1f s (attempt %d)", self.provider, delay, attempt + 2)
        time.sleep(delay)

    def _error_for(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        detail = _error_detail(response)
        if status in (401, 403):
            return self._fail(
                f"the key was refused (HTTP {status}{': ' + detail if detail else ''}); "
                f"{self.key_hint}",
                status,
            )
        if status == 429:
            return self._fail(
                f"rate limited (HTTP 429) after {self.retries} retries"
                + (f": {detail}" if detail else "")
                + "; wait a minute or raise the plan's limit",
                status,
            )
        return self._fail(f"HTTP {status}" + (f": {detail}" if detail else ""), status)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response of a request that succeeded (2xx), after retries; else ProviderError."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.client.request(method, url, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if last:
                    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
                    raise self._fail(f"{_origin(url)} {kind} ({type(exc).__name__})") from None
                self._wait(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self._wait(attempt, response)
                continue
            if response.status_code >= 400:
                raise self._error_for(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`send`, then the body as a JSON object (a malformed body is a ProviderError)."""
        response = self.send(method, url, **kwargs)
        return self.decode(response)

    def decode(self, response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._fail(
                f"sent a reply that is not JSON (HTTP {response.status_code}, "
                f"{len(response.content)} bytes)"
            ) from None
        if not isinstance(payload, dict):
            raise self._fail(f"sent a JSON {type(payload).__name__}, expected an object")
        return payload

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response (server-sent events). Retries happen before the first byte."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                with self.client.stream(method, url, **kwargs) as response:
                    if response.status_code in RETRY_STATUSES and not last:
                        response.read()
                        self._wait(attempt, response)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise self._error_for(response)
                    yield response
                    return
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if last:
                    raise self._fail(f"{_origin(url)} unreachable ({type(exc).__name__})") from None
                self._wait(attempt, None)

    def download(self, url: str, max_bytes: int = 512 * 1024 * 1024) -> bytes:
        """The bytes at `url` (a generated file), with the same retries."""
        response = self.send("GET", url, follow_redirects=True)
        if len(response.content) > max_bytes:
            raise self._fail(f"the file at {_origin(url)} is larger than {max_bytes} bytes")
        if not response.content:
            raise self._fail(f"the file at {_origin(url)} is empty")
        return response.content


def _origin(url: str) -> str:
    """Scheme, host and path of a URL, without its query (which may carry a token)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}" + (
        parsed.path
    )


def _error_detail(response: httpx.Response) -> str:
    """The provider's own error words, when the body has them (Zhipu, OpenAI, Baidu shapes)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        msg = err.get("message") or ""
        return f"{msg} (code {code})" if code else str(msg)
    if isinstance(err, str):
        return str(body.get("error_description") or err)
    if "error_msg" in body:
        return f"{body['error_msg']} (error_code {body.get('error_code')})"
    return ""
