"""`crossmodal annotate`: add or remove a person's text on an indexed photo.

The text is checked (`check_description_text`: empty, too long, control characters) before
the collection is opened, with the words the web app answers 422 with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from crossmodal.cli.common import CollectionOpt, DbOpt, friendly_errors, setup_torch
from crossmodal.errors import CollectionError, CrossmodalError
from crossmodal.fsnames import shown

__all__ = ["annotate_command"]


@friendly_errors
def annotate_command(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE_OR_ID", help="an indexed photo's path, or its id")
    ],
    text: Annotated[
        str | None,
        typer.Argument(help="the text to attach (with --remove: the annotation to remove)"),
    ] = None,
    remove: Annotated[
        bool,
        typer.Option(
            "--remove", help="remove the annotation reading TEXT, or every one without TEXT"
        ),
    ] = False,
    collection: CollectionOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Attach a text to a photo (found by search: text->image scores it) or remove it.

    \b
    Examples:
      crossmodal annotate ~/Pictures/max.jpg "Max at grandma's farm"
      crossmodal annotate 42 "生日蛋糕"
      crossmodal annotate 42 "Max at grandma's farm" --remove     one annotation
      crossmodal annotate 42 --remove                              all of the photo's
    """
    from crossmodal.index.descriptions import check_description_text

    if text is None and not remove:
        raise CrossmodalError("give the text to attach (or --remove to remove annotations)")
    if text is not None:
        text = check_description_text(text, "annotation")
    from crossmodal.collection import Collection

    with Collection.open(collection, db=db) as col:
        image_id = _image_id(col, image)
        if remove:
            removed = col.remove_annotations(image_id, text=text)
            out: dict[str, object] = {"id": image_id, "removed": removed}
            line = f"removed {removed} annotation{'s' if removed != 1 else ''} of image {image_id}"
        else:
            assert text is not None
            setup_torch()
            text_id = col.annotate(image_id, text)
            out = {"id": image_id, "text_id": text_id, "text": text}
            line = f"annotated image {image_id} ({shown(col.get(image_id).path)}): text {text_id}"
    typer.echo(json.dumps(out, ensure_ascii=False) if as_json else line)


def _image_id(col: object, given: str) -> int:
    """An id (digits) or the path of an indexed photo -> its id."""
    from crossmodal.collection import Collection

    assert isinstance(col, Collection)
    if given.strip().isdigit():
        return int(given)
    found = col.image_id_of(Path(given))
    if found is None:
        raise CollectionError(
            f"{given} is not in collection {col.path}: index its folder first, or give its id "
            "(crossmodal search --json shows ids)"
        )
    return found
