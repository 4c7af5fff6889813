"""The Baidu image-search client (AK/SK token flow, similar search) against a local server."""

from __future__ import annotations

import dataclasses

import pytest

from crossmodal.providers import ProviderError, ProviderNotConfigured, ProvidersConfig
from crossmodal.providers.baidu import BaiduImageSearch
from crossmodal.providers.config import Secret
from tests.providers.protocol_servers import ProtocolServer, png_bytes


def test_token_then_search(server: ProtocolServer, config: ProvidersConfig):
    client = BaiduImageSearch(config)
    hits = client.search_similar(png_bytes(), limit=2)
    assert [h.score for h in hits] == [0.95, 0.85]
    assert hits[0].url == "https://img.example/dog0.jpg" and hits[0].title == "dog 0"
    token_req, search_req = server.requests
    assert token_req.query["grant_type"] == ["client_credentials"]
    assert search_req.query["access_token"] == ["24.token1"]
    assert search_req.body["rn"] == "2"
    client.search_similar(png_bytes())
    assert server.state.tokens_issued == 1  # the token is cached


def test_bad_ak_sk_names_the_variables(server: ProtocolServer, config: ProvidersConfig):
    bad = dataclasses.replace(config, baidu_secret=Secret("nope"))
    with pytest.raises(ProviderError) as exc:
        BaiduImageSearch(bad).search_similar(png_bytes())
    assert "HTTP 401" in str(exc.value) and "unknown client id" in str(exc.value)
    assert "CROSSMODAL_BAIDU_SECRET_KEY" in str(exc.value) and "nope" not in str(exc.value)


def test_expired_token_is_refreshed_once(server: ProtocolServer, config: ProvidersConfig):
    client = BaiduImageSearch(config)
    client.search_similar(png_bytes())
    server.fault("/rest", "baidu-token")
    assert len(client.search_similar(png_bytes())) == 3
    assert server.state.tokens_issued == 2


def test_qps_limit_is_retried(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/rest", "baidu-qps", times=2)
    assert len(BaiduImageSearch(config).search_similar(png_bytes())) == 3
    server.fault("/rest", "baidu-qps", times=5)
    with pytest.raises(ProviderError, match=r"rate limited .*error_code 18"):
        BaiduImageSearch(config).search_similar(png_bytes())


def test_http_rate_limit_and_server_error(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/rest", 429)
    server.fault("/rest", 500)
    assert BaiduImageSearch(config).search_similar(png_bytes())
    server.fault("/rest", 500, times=3)
    with pytest.raises(ProviderError, match="HTTP 500"):
        BaiduImageSearch(config).search_similar(png_bytes())


def test_malformed_reply(server: ProtocolServer, config: ProvidersConfig):
    server.fault("/rest", "malformed")
    with pytest.raises(ProviderError, match="not JSON"):
        BaiduImageSearch(config).search_similar(png_bytes())


def test_service_error_is_reported(server: ProtocolServer, config: ProvidersConfig):
    with pytest.raises(ProviderError, match=r"image format error \(error_code 216201\)"):
        BaiduImageSearch(config).search_similar(b"not an image")


def test_not_configured():
    with pytest.raises(ProviderNotConfigured, match="CROSSMODAL_BAIDU_API_KEY"):
        BaiduImageSearch(ProvidersConfig())
