"""`crossmodal index / search / stats`: output formats and one-line errors with exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(collection, photos): 6 photos and 2 captions, indexed through the CLI."""
    base = tmp_path_factory.mktemp("cli")
    photos = base / "photos"
    make_photos(photos, 6)
    (photos / "broken.jpg").write_bytes(b"")
    (base / "captions.tsv").write_text(
        "image\tcaption\np000.jpg\ta red card\np001.jpg\ta green card\n"
    )
    (base / "only.txt").write_text("# the demo's list format\np000.jpg\np001.jpg\np002.jpg\n")
    col = base / "col"
    args = ["index", str(photos), "--collection", str(col), "--model", str(tiny_model_dir(0))]
    first = runner.invoke(app, [*args, "--only", str(base / "only.txt"), "-q"])
    assert first.exit_code == 0, first.output
    assert "3 added" in first.stdout
    result = runner.invoke(
        app, [*args, "--captions", str(base / "captions.tsv"), "--batch-size", "2", "-q"]
    )
    assert result.exit_code == 3, result.output  # broken.jpg was skipped
    assert "1 skipped (exit status 3)" in result.stderr
    assert "3 added" in result.stdout and "3 unchanged" in result.stdout
    assert "2 captions" in result.stdout and "images/s" in result.stdout
    assert "skipping " in result.stderr and "broken.jpg: empty file" in result.stderr
    return col, photos


def search(col: Path, *args: str) -> list[str]:
    result = runner.invoke(app, ["search", *args, "--collection", str(col)])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_index_again_is_quiet_and_remembers_failures(indexed: tuple[Path, Path]):
    col, photos = indexed
    result = runner.invoke(app, ["index", str(photos), "--collection", str(col), "-q"])
    assert result.exit_code == 3, result.output  # broken.jpg, remembered, is still skipped
    assert "0 added" in result.stdout and "6 unchanged" in result.stdout
    assert "failed on an earlier run" in result.stderr and "--retry-failed" in result.stderr


def test_search_text_lines(indexed: tuple[Path, Path]):
    col, _ = indexed
    lines = search(col, "a red card", "-k", "4", "--no-descriptions")  # no "matched:" lines
    assert len(lines) == 4
    scores = []
    captions = {}
    for line in lines:
        score, path, *caption = line.split("\t")
        assert len(score.split(".")[1]) == 4  # 4 decimals
        assert Path(path).is_absolute() and Path(path).is_file()
        captions[Path(path).name] = caption
        scores.append(float(score))
    assert scores == sorted(scores, reverse=True)
    # each hit explains itself: its first caption beside it, nothing for an uncaptioned photo
    assert captions.get("p000.jpg", ["a red card"]) == ["a red card"]
    assert all(c in ([], ["a red card"], ["a green card"]) for c in captions.values())


def test_search_image_json_and_paths_only(indexed: tuple[Path, Path]):
    col, photos = indexed
    image = next(photos.rglob("p000.jpg"))
    hits = json.loads("\n".join(search(col, str(image), "-k", "3", "--json")))
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["path"] == str(image) and hits[0]["caption"] == "a red card"
    assert {"rank", "score", "path", "text", "caption", "id"} <= set(hits[0])
    paths = search(col, "a card", "+", str(image), "-k", "2", "--paths-only")
    assert len(paths) == 2 and all(Path(p).is_absolute() for p in paths)


def test_search_text_modes(indexed: tuple[Path, Path]):
    col, photos = indexed
    lines = search(col, "a green card", "--mode", "t2t", "-k", "1")
    assert lines[0].split("\t")[1] == "a green card"
    image = next(photos.rglob("p001.jpg"))
    texts = search(col, str(image), "--mode", "i2t")
    assert {line.split("\t")[1] for line in texts} == {"a red card", "a green card"}
    # i2t says which image each caption belongs to
    owners = {line.split("\t")[1]: Path(line.split("\t")[2]).name for line in texts}
    assert owners == {"a red card": "p000.jpg", "a green card": "p001.jpg"}
    hits = json.loads("\n".join(search(col, "a red card", "--mode", "t2t", "--json")))
    assert hits[0]["text"] == "a red card" and hits[0]["path"].endswith("p000.jpg")


def test_stats(indexed: tuple[Path, Path]):
    col, _ = indexed
    result = runner.invoke(app, ["stats", "--collection", str(col), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["images"] == 6 and info["captions"] == 2 and info["failed"] == 1
    text = runner.invoke(app, ["stats", "--collection", str(col)])
    assert "images: 6" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dog", "-k", "0"], "positive"),
        (["dog", "-k", "-2"], "positive"),
        ([""], "empty query"),
        (["dog", "--mode", "sideways"], "unknown mode"),
        (["dog", "--mode", "i2t"], "no image"),
    ],
)
def test_search_errors_exit_2(indexed: tuple[Path, Path], args: list[str], message: str):
    col, _ = indexed
    result = runner.invoke(app, ["search", *args, "--collection", str(col)])
    assert result.exit_code == 2
    assert result.stderr.startswith("crossmodal: error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_search_with_a_non_image_file(indexed: tuple[Path, Path], tmp_path: Path):
    col, _ = indexed
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    result = runner.invoke(app, ["search", str(notes), "--collection", str(col)])
    assert result.exit_code == 2
    assert "cannot search with" in result.stderr and "not an image" in result.stderr


def test_missing_collection(tmp_path: Path):
    result = runner.invoke(app, ["search", "dog", "--collection", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"no collection at {tmp_path / 'none'}" in result.stderr
    assert "crossmodal index DIR --collection" in result.stderr
    stats = runner.invoke(app, ["stats", "--collection", str(tmp_path / "none")])
    assert stats.exit_code == 2


def test_index_errors(tmp_path: Path, indexed: tuple[Path, Path]):
    col, photos = indexed
    missing = runner.invoke(app, ["index", str(tmp_path / "nope"), "--collection", str(col)])
    assert missing.exit_code == 2 and "is not a folder" in missing.stderr
    other = runner.invoke(
        app,
        ["index", str(photos), "--collection", str(col), "--model", str(tiny_model_dir(1))],
    )
    assert other.exit_code == 2 and "was built with model" in other.stderr
