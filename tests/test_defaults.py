"""Where a collection lives when none is named: $CROSSMODAL_COLLECTION, else the XDG data home."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmodal.defaults import default_collection_path


def test_the_environment_names_the_default_collection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CROSSMODAL_COLLECTION", "~/photos.cm")
    assert default_collection_path() == Path.home() / "photos.cm"
    monkeypatch.delenv("CROSSMODAL_COLLECTION")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_collection_path() == tmp_path / "crossmodal" / "default"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_collection_path() == Path.home() / ".local/share/crossmodal/default"
