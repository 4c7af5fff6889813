"""`crossmodal generate`, `crossmodal web-search` and `crossmodal dogs chat` from the shell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal import Collection
from crossmodal.cli import app
from tests.index.helpers import tiny_model_dir
from tests.providers.protocol_servers import ProtocolServer, png_bytes, provider_env

runner = CliRunner()
KEY_VARS = (
    "CROSSMODAL_ZHIPU_API_KEY",
    "ZHIPUAI_API_KEY",
    "CROSSMODAL_BAIDU_API_KEY",
    "CROSSMODAL_BAIDU_SECRET_KEY",
    "CROSSMODAL_LLM_URL",
    "CROSSMODAL_LLM_MODEL",
    "CROSSMODAL_PROVIDERS_FILE",
)


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/crossmodal/providers.toml


@pytest.fixture
def keyed(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ProtocolServer]:
    server = ProtocolServer().start()
    for name, value in provider_env(server, str(tmp_path / "media")).items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


def test_generate_without_key_is_one_line_exit_2(no_keys: None) -> None:
    result = runner.invoke(app, ["generate", "image", "a corgi"])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "CROSSMODAL_ZHIPU_API_KEY" in errors[0]
    video = runner.invoke(app, ["generate", "video", "a corgi running"])
    assert video.exit_code == 2 and "CROSSMODAL_ZHIPU_API_KEY" in video.stderr


def test_web_search_without_key(no_keys: None, tmp_path: Path) -> None:
    search = runner.invoke(app, ["web-search", str(_photo(tmp_path))])
    assert search.exit_code == 2 and "CROSSMODAL_BAIDU_API_KEY" in search.stderr


def _photo(folder: Path) -> Path:
    path = folder / "crossmodal-test-photo.png"
    path.write_bytes(png_bytes())
    return path


def test_generated_image_lands_in_the_folder_and_can_be_indexed(
    keyed: ProtocolServer, tmp_path: Path
) -> None:
    out = tmp_path / "gen"
    result = runner.invoke(app, ["generate", "image", "a corgi in the snow", "--out", str(out)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.parent == out / "images" and path.is_file()
    side = json.loads(path.with_suffix(path.suffix + ".json").read_text(encoding="utf-8"))
    assert side["prompt"] == "a corgi in the snow" and side["model"] == "cogview-3"
    col = Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True)
    try:
        report = col.index(
            out / "images", captions=out / "images" / "captions.tsv", show_progress=False
        )
        assert report.added == 1 and not report.failed
        hits = col.search(text="a corgi in the snow", k=1)
        assert Path(hits[0].path).name == path.name
        assert col.get(hits[0].id).captions == ["a corgi in the snow"]
    finally:
        col.close()


def test_generate_video_shows_progress(keyed: ProtocolServer, tmp_path: Path) -> None:
    photo = _photo(tmp_path)
    result = runner.invoke(
        app, ["generate", "video", "make it run", "--image", str(photo), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "video task: processing" in result.stderr and "视频任务" in result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "video" and data["path"].endswith(".mp4")
    assert data["meta"]["from_image"] is True


def test_web_search_prints_hits(keyed: ProtocolServer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["web-search", str(_photo(tmp_path)), "-k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("0.950\thttps://img.example/dog0.jpg")


def test_dogs_chat_two_messages_without_keys(no_keys: None) -> None:
    result = runner.invoke(
        app, ["dogs", "chat", "-m", "德国牧羊犬好训练吗？", "-m", "画一只在雪地里的萨摩耶"]
    )
    assert result.exit_code == 0, result.output
    assert "容易训练" in result.stdout and "依据（知识库）" in result.stdout
    assert "需要密钥" in result.stdout and "CROSSMODAL_ZHIPU_API_KEY" in result.stdout
    assert "without keys: chat, vision, image, video, web_search" in result.stderr


def test_dogs_chat_with_a_model(keyed: ProtocolServer) -> None:
    result = runner.invoke(app, ["dogs", "chat", "-m", "Is the Afghan hound easy to train?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[glm-4]")
    assert "Facts used (knowledge base): Afghan Hound — trainability: low." in result.stdout
