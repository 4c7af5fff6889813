from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossmodal.data import read_captions_file
from crossmodal.data.formats import detect_caption_format, normalize_token_image
from crossmodal.errors import DatasetError

from .corpus import (
    CAPTIONS,
    KAGGLE_TEXT,
    ORPHAN,
    ORPHAN_CAPTIONS,
    karpathy_json,
    token_text,
    tsv_text,
    write_text,
)

WITH_ORPHAN = {**CAPTIONS, ORPHAN: ORPHAN_CAPTIONS}


def test_normalize_token_image() -> None:
    assert normalize_token_image("2258277193_586949ec62.jpg.1") == "2258277193_586949ec62.jpg"
    assert normalize_token_image("a.JPEG.foo") == "a.JPEG"
    assert normalize_token_image("a.jpg") == "a.jpg"
    assert normalize_token_image("a.b.c") == "a.b.c"


@pytest.mark.parametrize(
    ("fname", "text", "fmt", "expected"),
    [
        ("captions.tsv", tsv_text(), "tsv", CAPTIONS),
        ("Flickr8k.token.txt", token_text(), "token", WITH_ORPHAN),
        ("captions.txt", KAGGLE_TEXT, "kaggle-csv", WITH_ORPHAN),
        ("dataset_flickr8k.json", karpathy_json(), "karpathy-json", CAPTIONS),
    ],
)
def test_read_captions_file_each_format(
    tmp_path: Path, fname: str, text: str, fmt: str, expected: dict[str, list[str]]
) -> None:
    p = write_text(tmp_path / fname, text)
    assert detect_caption_format(p) == fmt
    got = read_captions_file(p)
    assert got == expected
    assert list(got) == list(expected)  # file order kept


def test_read_captions_file_token_typo_is_merged(tmp_path: Path) -> None:
    got = read_captions_file(write_text(tmp_path / "Flickr8k.token.txt", token_text()))
    assert "1003_cc.jpg.1" not in got
    assert got["1003_cc.jpg"] == ["A red car .", "Café by the road ."]


def test_read_captions_file_kaggle_quotes_and_commas(tmp_path: Path) -> None:
    got = read_captions_file(write_text(tmp_path / "captions.txt", KAGGLE_TEXT))
    assert got["1001_aa.jpg"][1] == "A brown dog, running fast, jumps ."
    assert got["1002_bb.jpg"][0] == 'A man says "hi" to a child .'
    assert got["1005_ee.jpg"][1] == 'A sign says "welcome" .'


def test_read_captions_file_captions_json_keys_are_basenames(tmp_path: Path) -> None:
    data = [
        {"image": "trip/day1/beach.jpg", "captions": ["Sand .", "Sea ."]},
        {"image": "cat.png", "captions": ["A cat ."]},
    ]
    p = write_text(tmp_path / "captions.json", json.dumps(data))
    assert read_captions_file(p) == {"beach.jpg": ["Sand .", "Sea ."], "cat.png": ["A cat ."]}


def test_tsv_without_header_and_with_literal_quotes(tmp_path: Path) -> None:
    p = write_text(tmp_path / "c.tsv", 'x.jpg\tSays "no , thanks" .\n\ny.jpg\tTwo\ttabs\n')
    assert read_captions_file(p) == {"x.jpg": ['Says "no , thanks" .'], "y.jpg": ["Two\ttabs"]}


@pytest.mark.parametrize(
    ("fname", "text", "message"),
    [
        (
            "captions.tsv",
            "image\tcaption\na.jpg\tfine\nb.jpg\t   \n",
            "captions.tsv line 3: empty caption for b.jpg",
        ),
        (
            "captions.tsv",
            "image\tcaption\na.jpg\tfine\n\nno tab here\n",
            "captions.tsv line 4: expected 'image<TAB>caption'",
        ),
        (
            "captions.tsv",
            "image\tcaption\n\tno image\n",
            "captions.tsv line 2: empty image name",
        ),
        (
            "Flickr8k.token.txt",
            "a.jpg#0\tfine\na.jpg\tno number\n",
            "Flickr8k.token.txt line 2: caption id 'a.jpg' is not '<image>#<number>'",
        ),
        (
            "Flickr8k.token.txt",
            "a.jpg#0\tfine\na.jpg#1\t\n",
            "Flickr8k.token.txt line 2: empty caption for a.jpg",
        ),
        (
            "captions.txt",
            'image,caption\na.jpg,"one,\ntwo"\nb.jpg\n',
            "captions.txt line 4: expected 'image,caption', found one column",
        ),
        (
            "captions.txt",
            'image,caption\na.jpg,"one"\nb.jpg,""\n',
            "captions.txt line 3: empty caption for b.jpg",
        ),
        (
            "dataset_flickr8k.json",
            '{"images": [\n  {"filename": "a.jpg",\n  "split" "train"}\n]}',
            "dataset_flickr8k.json line 3: invalid JSON",
        ),
        (
            "dataset_flickr8k.json",
            json.dumps(
                {
                    "images": [
                        {"filename": "a.jpg", "split": "train", "sentences": [{"raw": "x"}]},
                        {"split": "test", "sentences": [{"raw": "y"}]},
                    ]
                }
            ),
            "dataset_flickr8k.json entry 2 (images[1]): missing 'filename'",
        ),
        (
            "captions.json",
            json.dumps([{"image": "a.jpg", "captions": ["x"]}, {"image": "b.jpg", "captions": []}]),
            "captions.json entry 2: no captions for b.jpg",
        ),
        (
            "odd.txt",
            "just some words\n",
            "odd.txt line 1: unrecognised caption format",
        ),
    ],
)
def test_malformed_caption_files(tmp_path: Path, fname: str, text: str, message: str) -> None:
    p = write_text(tmp_path / fname, text)
    with pytest.raises(DatasetError) as e:
        read_captions_file(p)
    assert message in str(e.value)


def test_read_captions_file_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_captions_file(tmp_path / "nope.tsv")


def test_non_utf8_reports_line(tmp_path: Path) -> None:
    p = tmp_path / "captions.tsv"
    p.write_bytes(b"image\tcaption\na.jpg\tok\nb.jpg\tcaf\xe9\n")
    with pytest.raises(DatasetError, match=r"captions.tsv line 3: not valid UTF-8"):
        read_captions_file(p)
