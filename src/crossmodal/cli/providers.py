"""`crossmodal generate image|video "PROMPT"` and `crossmodal web-search IMAGE`.

Thin: each command parses its options, calls one function of `crossmodal.providers` and prints.
With no key configured the command exits 2 with one line naming the variable to set.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from crossmodal.cli.common import MARKUP_MODE, friendly_errors
from crossmodal.errors import ConfigError

__all__ = ["generate_app", "web_search_command"]

generate_app = typer.Typer(
    help="Generate an image (CogView-3) or a video (CogVideoX) from a prompt; needs a key.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP_MODE,
)

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="folder for the result (default: $CROSSMODAL_MEDIA_DIR)"),
]


def _print_media(media: object, as_json: bool) -> None:
    data = media.to_dict()  # type: ignore[attr-defined]
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    typer.echo(data["path"])
    typer.echo(f"  prompt: {data['prompt']}  ({data['provider']} {data['model']})", err=True)


@generate_app.command("image")
@friendly_errors
def generate_image_command(
    prompt: Annotated[str, typer.Argument(help="what to draw, Chinese or English")],
    out: OutOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the result as JSON")] = False,
) -> None:
    """Text -> image. Prints the saved file (a JSON sidecar holds prompt and provider)."""
    from crossmodal.providers import generate_image

    typer.echo("generating the image (CogView-3) …", err=True)
    _print_media(generate_image(prompt, out), as_json)
    typer.echo(
        "index it with: crossmodal index <folder> --captions <folder>/captions.tsv", err=True
    )


@generate_app.command("video")
@friendly_errors
def generate_video_command(
    prompt: Annotated[str, typer.Argument(help="what should happen in the video")],
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="animate this photo (image -> video)")
    ] = None,
    out: OutOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the result as JSON")] = False,
) -> None:
    """Text (or image + text) -> video: submits a CogVideoX task, polls it, downloads the MP4."""
    from crossmodal.providers import generate_video

    data = None
    if image is not None:
        if not image.is_file():
            raise ConfigError(f"--image {image}: no such file")
        data = image.read_bytes()
    tty = sys.stderr.isatty()

    def progress(status: str, elapsed: float) -> None:
        line = f"video task: {status} ({elapsed:.0f} s) / 视频任务：{status}（{elapsed:.0f} 秒）"
        typer.echo(("\r" + line) if tty else line, err=True, nl=not tty)

    start = time.monotonic()
    media = generate_video(prompt, out, image=data, on_progress=progress)
    if tty:
        typer.echo("", err=True)
    typer.echo(f"done in {time.monotonic() - start:.0f} s", err=True)
    _print_media(media, as_json)


@friendly_errors
def web_search_command(
    image: Annotated[Path, typer.Argument(help="the photo to find similar images of")],
    k: Annotated[int, typer.Option("-k", "--top", help="number of results")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of hits")] = False,
) -> None:
    """Similar images on the web (Baidu image search; needs its AK/SK)."""
    from crossmodal.providers import web_search

    if not image.is_file():
        raise ConfigError(f"{image}: no such file")
    if k < 1:
        raise ConfigError(f"--top must be at least 1 (got {k})")
    hits = web_search(image.read_bytes(), limit=k)
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return
    for h in hits:
        typer.echo(f"{h.score:.3f}\t{h.url or '-'}\t{h.title or ''}")
    if not hits:
        typer.echo("no similar images found / 没有找到相似图片", err=True)
