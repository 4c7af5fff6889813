"""The search filters as query parameters of the JSON API (`/api/search?camera=pixel&gps=true`).

One dependency shared by every search route: the values go through
`crossmodal.search_filter.parse_filter`, the parser of the CLI's options, so a bad value is
refused (422) with the same words as `crossmodal search` (exit status 2). A folder (`in`) is
relative to the collection's indexed folders: the API never takes a path on the server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from crossmodal.errors import CrossmodalError
from crossmodal.search_filter import SearchFilter, parse_filter
from crossmodal.web.errors import Rejected

__all__ = ["FilterParams", "search_filter"]


def search_filter(
    after: Annotated[
        str | None,
        Query(max_length=40, description="taken on or after: 2024, 2024-05, 2024-05-01"),
    ] = None,
    before: Annotated[
        str | None,
        Query(max_length=40, description="taken before the end of this date (inclusive)"),
    ] = None,
    camera: Annotated[
        str | None, Query(max_length=200, description="camera make or model contains (any case)")
    ] = None,
    gps: Annotated[
        bool | None, Query(description="true: only photos with a GPS position; false: without")
    ] = None,
    within: Annotated[
        str | None,
        Query(max_length=100, description="LAT1,LON1,LAT2,LON2: GPS position inside this box"),
    ] = None,
    folder: Annotated[
        str | None,
        Query(
            alias="in",
            max_length=1000,
            description="folder inside the indexed folders, relative to them (2024/summer)",
        ),
    ] = None,
    types: Annotated[
        str | None,
        Query(alias="type", max_length=200, description="file types by content: jpg,png,heic"),
    ] = None,
    min_size: Annotated[
        str | None, Query(max_length=40, description="file size at least: 500KB, 2MB")
    ] = None,
    max_size: Annotated[str | None, Query(max_length=40, description="file size at most")] = None,
) -> SearchFilter | None:
    """The filter the query parameters ask for; None when they ask for none."""
    try:
        flt = parse_filter(
            after=after, before=before, camera=camera, gps=gps, within=within, folder=folder,
            types=types, min_size=min_size, max_size=max_size,
        )  # fmt: skip
    except CrossmodalError as exc:
        raise Rejected(422, str(exc)) from None
    return None if flt.empty else flt


FilterParams = Annotated[SearchFilter | None, Depends(search_filter)]
