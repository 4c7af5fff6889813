"""`crossmodal caption IMAGE…`, `crossmodal train-captioner` and `crossmodal eval-captioner`.

Thin: each command checks its arguments, calls one function of the captioner's API
(`crossmodal.models.captioner`, `crossmodal.train.captioner`, `crossmodal.eval.caption_metrics`)
and prints. Missing or unreadable images are one line on stderr and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crossmodal.cli.common import friendly_errors, setup_torch
from crossmodal.errors import DatasetError, ImageLoadError

__all__ = ["caption_command", "eval_captioner_command", "train_captioner_command"]

DATA_DEFAULT = "../shared/data/flickr8k"


def _check_files(images: list[Path]) -> None:
    for path in images:
        if not path.exists():
            raise ImageLoadError(f"no such file: {path} (文件不存在)")
        if not path.is_file():
            raise ImageLoadError(f"not a file: {path} (不是文件)")


@friendly_errors
def caption_command(
    images: Annotated[list[Path], typer.Argument(help="image files to caption")],
    beam: Annotated[int, typer.Option(min=1, max=10, help="beam width (1 = greedy)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
    captioner: Annotated[
        Path | None, typer.Option(help="folder of a trained captioner (default: the shipped one)")
    ] = None,
) -> None:
    """Write an English caption for each image (the shipped Flickr8k captioner)."""
    from crossmodal.models.captioner import caption_images
    from crossmodal.models.features import default_cache_dir

    _check_files(images)
    setup_torch()
    try:
        captions = caption_images(
            images, beam=beam, captioner_dir=captioner, cache_dir=default_cache_dir()
        )
    except ImageLoadError as exc:
        raise ImageLoadError(f"cannot read image {exc} (无法读取图像)") from None
    if as_json:
        rows = [{"path": str(p), "caption": c} for p, c in zip(images, captions, strict=True)]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for path, caption in zip(images, captions, strict=True):
        typer.echo(caption if len(images) == 1 else f"{path}\t{caption}")


@friendly_errors
def train_captioner_command(
    config: Annotated[Path, typer.Option(help="TOML recipe (recipes/captioner.toml)")] = Path(
        "recipes/captioner.toml"
    ),
    out: Annotated[str | None, typer.Option(help="folder for the trained captioner")] = None,
    data: Annotated[str | None, typer.Option(help="Flickr8k folder")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch threads (the machine is shared)")
    ] = None,
) -> None:
    """Train the captioner on cached image features of the Flickr8k train split, keeping the
    epoch with the best val BLEU-4; the result loads with `crossmodal caption --captioner`."""
    from crossmodal.models.features import default_cache_dir
    from crossmodal.train.captioner import CaptionerRecipe, train_captioner

    if not config.is_file():
        raise ImageLoadError(f"no such recipe file: {config} (找不到配置文件)")
    setup_torch()
    recipe = CaptionerRecipe.from_toml(
        config, out=out, data=data, epochs=epochs, seed=seed, threads=threads
    )
    summary = train_captioner(
        recipe, cache_dir=default_cache_dir(), log=lambda m: typer.echo(m, err=True)
    )
    typer.echo(
        f"captioner: {recipe.out} (val BLEU-4 {summary['val_beam']['BLEU-4']:.4f}, "
        f"CIDEr {summary['val_beam']['CIDEr']:.4f} with beam {recipe.beam}; "
        f"epoch {summary['best_epoch']}, {summary['train_seconds']:.0f} s on {summary['cpu']})"
    )


def _print_evaluation(result: dict[str, Any]) -> None:
    typer.echo(f"Flickr8k {result['split']}: {result['images']} images, beam {result['beam']}")
    typer.echo("  ".join(f"{k} {v:.4f}" for k, v in result["scores"].items()))
    for row in result["examples"]:
        typer.echo(f"\n{row['image']} (CIDEr {row['cider']:.3f})\n  ours: {row['caption']}")
        for ref in row["references"]:
            typer.echo(f"  ref:  {ref}")


@friendly_errors
def eval_captioner_command(
    split: Annotated[str, typer.Option(help="val | test")] = "test",
    data: Annotated[str, typer.Option(help="Flickr8k folder")] = DATA_DEFAULT,
    beam: Annotated[int, typer.Option(min=1, max=10)] = 3,
    examples: Annotated[int, typer.Option(min=0, help="example captions to print")] = 10,
    captioner: Annotated[Path | None, typer.Option(help="folder of a trained captioner")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """BLEU-1..4 and CIDEr (COCO caption toolkit) of the captioner on a Flickr8k split, with
    example captions (the best and the worst by their own CIDEr) beside the references."""
    from crossmodal.eval.caption_metrics import evaluate_captioner
    from crossmodal.models.features import default_cache_dir
    from crossmodal.runtime import cpu_name

    if not Path(data).is_dir():
        raise DatasetError(f"Flickr8k folder not found: {data} (找不到数据集文件夹)")
    setup_torch()
    result = evaluate_captioner(
        data, split, beam, captioner_dir=captioner, cache_dir=default_cache_dir(), examples=examples
    ).to_dict()
    result["cpu"] = cpu_name()
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    _print_evaluation(result)
    typer.echo(f"\n{result['seconds']:.0f} s on {result['cpu']}")
