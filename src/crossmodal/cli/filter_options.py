"""The filter options of `crossmodal search`: date taken, camera, GPS, folder, type, size.

Typed here once (Typer reads them from the command's signature) and turned into a
`SearchFilter` by `crossmodal.search_filter.parse_filter`, the parser the JSON API uses too,
so a bad value gets the same one line (exit status 2) on both.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from crossmodal.search_filter import SearchFilter, parse_filter

__all__ = [
    "AfterOpt",
    "BeforeOpt",
    "CameraOpt",
    "FolderOpt",
    "GpsOpt",
    "MaxSizeOpt",
    "MinSizeOpt",
    "TypeOpt",
    "WithinOpt",
    "filter_from_options",
]


AfterOpt = Annotated[
    str | None,
    typer.Option(
        "--after", metavar="DATE",
        help="taken on or after DATE: 2024, 2024-05, 2024-05-01 or '2024-05-01 13:30' "
        "(EXIF date, else the file's time)",
    ),
]  # fmt: skip
BeforeOpt = Annotated[
    str | None,
    typer.Option(
        "--before", metavar="DATE",
        help="taken before the end of DATE (--before 2024-05 keeps all of May)",
    ),
]  # fmt: skip
CameraOpt = Annotated[
    str | None,
    typer.Option(
        "--camera", metavar="TEXT",
        help="camera make or model contains TEXT (any case): Pixel, 'EOS R5', iPhone",
    ),
]  # fmt: skip
GpsOpt = Annotated[
    bool | None,
    typer.Option(
        "--gps/--no-gps", show_default=False,
        help="only photos with (--gps) or without (--no-gps) a GPS position",
    ),
]  # fmt: skip
WithinOpt = Annotated[
    str | None,
    typer.Option(
        "--within", metavar="LAT1,LON1,LAT2,LON2",
        help="GPS position inside the box of these two corners (degrees)",
    ),
]  # fmt: skip
FolderOpt = Annotated[
    str | None,
    typer.Option(
        "--in", "--folder", metavar="FOLDER",
        help="only photos under FOLDER (relative to the current folder: --in . is here)",
    ),
]  # fmt: skip
TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type", metavar="TYPES",
        help="file types, by content not name: jpg,png,webp,heic",
    ),
]  # fmt: skip
MinSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--min-size", metavar="SIZE",
        help="file size at least SIZE: 500KB, 2MB, 1.5GiB",
    ),
]  # fmt: skip
MaxSizeOpt = Annotated[
    str | None,
    typer.Option("--max-size", metavar="SIZE", help="file size at most SIZE"),
]


def filter_from_options(
    after: str | None,
    before: str | None,
    camera: str | None,
    gps: bool | None,
    within: str | None,
    folder: str | None,
    types: str | None,
    min_size: str | None,
    max_size: str | None,
) -> SearchFilter:
    """The options as a `SearchFilter` (a folder relative to the current one), or the one-line
    `CrossmodalError` of the first bad value."""
    return parse_filter(
        after=after, before=before, camera=camera, gps=gps, within=within, folder=folder,
        types=types, min_size=min_size, max_size=max_size, base=os.getcwd(),
    )  # fmt: skip
