from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal.providers.config import ProvidersConfig, Secret
from tests.providers.protocol_servers import (
    BAIDU_AK,
    BAIDU_SK,
    ZHIPU_KEY,
    ProtocolServer,
)


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    srv = ProtocolServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def config(server: ProtocolServer, tmp_path: Path) -> ProvidersConfig:
    return ProvidersConfig(
        zhipu_key=Secret(ZHIPU_KEY),
        zhipu_base_url=server.url,
        baidu_key=Secret(BAIDU_AK),
        baidu_secret=Secret(BAIDU_SK),
        baidu_base_url=server.url,
        media_dir=tmp_path / "media",
        timeout=5.0,
        retries=2,
        backoff=0.01,
        poll_interval=0.02,
        video_timeout=1.0,
    )
