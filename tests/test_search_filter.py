"""Parsing the filters people type: dates, sizes, boxes, types, folders; one-line refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossmodal.errors import CrossmodalError
from crossmodal.search_filter import SearchFilter, parse_date, parse_filter, parse_size


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", "2024-01-01 00:00:00", "2025-01-01 00:00:00"),
        ("2024-12", "2024-12-01 00:00:00", "2025-01-01 00:00:00"),
        ("2024-02", "2024-02-01 00:00:00", "2024-03-01 00:00:00"),
        ("2024-05-01", "2024-05-01 00:00:00", "2024-05-02 00:00:00"),
        ("2024-05-01 13:30", "2024-05-01 13:30:00", "2024-05-01 13:31:00"),
        ("2024-05-01T13:30:15", "2024-05-01 13:30:15", "2024-05-01 13:30:16"),
    ],
)
def test_dates_name_a_span(text: str, start: str, end: str):
    assert parse_date(text, "after", end=False) == start
    assert parse_date(text, "before", end=True) == end


@pytest.mark.parametrize(
    ("text", "value"),
    [("123", 123), ("2MB", 2_000_000), ("500k", 500_000), ("1.5 GiB", 3 * 2**29),
     ("2mb", 2_000_000), ("10KiB", 10240), (".5M", 500_000), ("7b", 7)],
)  # fmt: skip
def test_sizes(text: str, value: int):
    assert parse_size(text, "min-size") == value


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"after": "yesterday"}, "--after 'yesterday': not a date"),
        ({"before": "2024-13-01"}, "--before '2024-13-01': not a date"),
        ({"before": "9999-12-31"}, "--before '9999-12-31': not a date"),
        ({"before": "9999"}, "--before '9999': not a date"),
        ({"after": "0000"}, "--after '0000': not a date"),
        ({"after": "2024-00"}, "--after '2024-00': not a date"),
        ({"after": "2024-06-01", "before": "2024-01-01"}, "is not before --before"),
        ({"min_size": "big"}, "--min-size 'big': not a size"),
        ({"max_size": "3 parsecs"}, "--max-size '3 parsecs': not a size"),
        ({"min_size": "2MB", "max_size": "1MB"}, "--min-size 2MB is above --max-size 1MB"),
        ({"max_size": "99999999999999T"}, "--max-size '99999999999999T': too large a size"),
        ({"within": "1,2,3"}, "--within '1,2,3': give four numbers"),
        ({"within": "91,0,0,0"}, "latitudes must be within -90..90"),
        ({"within": "0,0,1,1", "gps": False}, "cannot go with --no-gps"),
        ({"types": "jpg,,png!"}, "--type 'jpg,,png!': give file types"),
        ({"types": " , "}, "--type ',': give file types"),
        ({"folder": "/etc"}, "--in '/etc': give a folder inside"),
        ({"folder": "../up"}, "--in '../up': give a folder inside"),
    ],
)
def test_bad_values_are_one_line_naming_the_option(kwargs: dict, words: str):
    with pytest.raises(CrossmodalError) as err:
        parse_filter(**kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_full_filter_and_blanks():
    flt = parse_filter(
        after="2024", before="2024-06", camera=" Pixel ", gps=True, within="49,3,48,2",
        types="JPEG,png", min_size="1k", max_size="2MB", folder="2024/summer/",
    )  # fmt: skip
    assert flt == SearchFilter(
        taken_from="2024-01-01 00:00:00", taken_until="2024-07-01 00:00:00", camera="Pixel",
        gps=True, within=(48.0, 2.0, 49.0, 3.0), folder="2024/summer", types=("jpg", "png"),
        min_size=1000, max_size=2_000_000,
    )  # fmt: skip
    assert not flt.empty
    blank = parse_filter(after="", camera="  ", types=None, folder=".")
    assert blank.empty and blank == SearchFilter()


def test_cli_folder_is_relative_to_the_current_folder(tmp_path: Path):
    flt = parse_filter(folder=".", base=str(tmp_path))
    assert flt.folder == str(tmp_path)
    flt = parse_filter(folder="sub/../x", base=str(tmp_path))
    assert flt.folder == os.path.join(str(tmp_path), "x")
    assert parse_filter(folder="/abs/path", base=str(tmp_path)).folder == "/abs/path"
