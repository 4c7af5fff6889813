"""Fixtures of the trainer tests: one torch thread, a tiny captioned colour dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.index.helpers import one_torch_thread
from tests.train.test_heads import write_colour_dataset


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    # tiny models: their ops take microseconds, and on a shared 2-core machine torch spent
    # ~100x that waiting for a second thread
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def colour_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_dataset(tmp_path_factory.mktemp("data"))
