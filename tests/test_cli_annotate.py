"""`crossmodal annotate` and the search's description lines: add by path or id, --remove one or
all, bad text refused in one line (exit 2) with the API's words and before any model loads;
`search --no-descriptions` ranks by the embedding alone, the default says why it matched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crossmodal.models
from crossmodal import Collection
from crossmodal.cli import app
from crossmodal.index.descriptions import DescriptionError, check_description_text
from tests.index.helpers import make_photos, tiny_model_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    base = tmp_path_factory.mktemp("annotate")
    files = make_photos(base / "photos", 4)
    with Collection.open(base / "col", model=str(tiny_model_dir(0)), create=True) as col:
        col.index(base / "photos", show_progress=False)
    return base / "col", files


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_annotate_by_path_and_id_then_remove(indexed: tuple[Path, list[Path]]) -> None:
    col, files = indexed
    made = _run("annotate", str(files[1]), "Max at the farm", "--collection", str(col),
                "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    image_id = json.loads(made.stdout)["id"]
    assert _run("annotate", str(image_id), "生日蛋糕", "--collection", str(col)).exit_code == 0
    found = _run("search", "Max at the farm", "--collection", str(col), "-k", "4")
    assert found.exit_code == 0, found.output
    assert 'matched: "Max at the farm" (annotation; similar 1.00; words: max, farm' in found.stdout
    plain = _run("search", "Max at the farm", "--collection", str(col), "-k", "4",
                 "--no-descriptions")  # fmt: skip
    assert plain.exit_code == 0 and "matched:" not in plain.stdout
    one = _run("annotate", str(image_id), "生日蛋糕", "--remove", "--collection", str(col))
    assert one.exit_code == 0 and "removed 1 annotation of image" in one.stdout
    _run("annotate", str(image_id), "again", "--collection", str(col))
    every = _run("annotate", str(files[1]), "--remove", "--collection", str(col), "--json")
    assert json.loads(every.stdout) == {"id": image_id, "removed": 2}


@pytest.mark.parametrize("text", ["", "   ", "x" * 100_000, "bell\x07", "tab\tok\x1b[31m"])
def test_bad_text_is_one_line_with_the_api_words(
    indexed: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(crossmodal.models, "load_model", refuse)
    col, _ = indexed
    result = _run("annotate", "1", text, "--collection", str(col))
    assert result.exit_code == 2, result.output
    with pytest.raises(DescriptionError) as caught:
        check_description_text(text, "annotation")
    assert result.stderr.strip() == f"crossmodal: error: {caught.value}"


def test_unknown_image_and_missing_text(indexed: tuple[Path, list[Path]]) -> None:
    col, files = indexed
    gone = _run("annotate", str(files[0].parent / "nope.jpg"), "x", "--collection", str(col))
    assert gone.exit_code == 2 and "is not in collection" in gone.stderr
    assert "no image with id 999" in _run("annotate", "999", "x", "--collection", str(col)).stderr
    bare = _run("annotate", "1", "--collection", str(col))
    assert bare.exit_code == 2 and "give the text to attach" in bare.stderr
