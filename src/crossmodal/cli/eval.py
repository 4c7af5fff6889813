"""`crossmodal eval` and `crossmodal report`: score models on an image-text split.

Options are checked (by `ReportOptions.validate`, the dataset loader) before any model loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crossmodal.cli.common import (
    DEFAULT_FLICKR8K_ROOT,
    DatasetOption,
    ModelOpt,
    QuietOption,
    RootOption,
    check_dataset_root,
    check_writable,
    friendly_errors,
    setup_torch,
)

if TYPE_CHECKING:
    from crossmodal.data import ImageTextDataset

__all__ = ["eval_command", "report_command"]

SplitOption = Annotated[str, typer.Option(metavar="SPLIT", help="train | val | test | all")]
CacheDirOption = Annotated[
    Path | None, typer.Option(metavar="FOLDER", help="embedding cache folder")
]


def _load_captioned(dataset: str, root: Path, split: str) -> ImageTextDataset:
    """The split as an ImageTextDataset, saying so when packaged split lists were used."""
    from crossmodal.data import ImageTextDataset, load_dataset
    from crossmodal.errors import DatasetError

    check_dataset_root(root)
    ds = load_dataset(dataset, root, split=split)
    if not isinstance(ds, ImageTextDataset):
        raise DatasetError(f"{dataset} has labels, not captions: use it with `crossmodal dogs`")
    notice = getattr(ds, "notice", None)
    if notice:
        typer.echo(notice, err=True)
    return ds


@friendly_errors
def eval_command(
    model: ModelOpt = "default",
    dataset: DatasetOption = "flickr8k",
    root: RootOption = DEFAULT_FLICKR8K_ROOT,
    split: SplitOption = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="FILE", help="write the result JSON here")
    ] = None,
    cache_dir: CacheDirOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="do not read or write the cache")
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Recall@1/5/10, MRR and median rank in both directions on an image-text split."""
    from crossmodal.eval import evaluate, format_table
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir

    ds = _load_captioned(dataset, root, split)
    if json_out is not None:
        check_writable(json_out)
    setup_torch()
    encoder = load_model(model)
    cache = None if no_cache else (cache_dir or default_cache_dir())
    result = evaluate(encoder, ds, cache_dir=cache, show_progress=not quiet)
    typer.echo(format_table(result))
    typer.echo(f"({result['seconds']:.1f} s)")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@friendly_errors
def report_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="model name or folder; repeat for side-by-side comparison",
        ),
    ] = ["default"],  # noqa: B006 (Typer needs a literal list default for a repeatable option)
    dataset: DatasetOption = "flickr8k",
    root: RootOption = DEFAULT_FLICKR8K_ROOT,
    split: SplitOption = "test",
    out: Annotated[Path, typer.Option(metavar="FOLDER", help="report folder")] = Path("report"),
    gallery_sizes: Annotated[
        str,
        typer.Option(
            metavar="N,N,…", help="comma-separated gallery sizes for the recall-vs-size curve"
        ),
    ] = "100,250,500,1000",
    trials: Annotated[int, typer.Option(help="random galleries per size")] = 5,
    seed: Annotated[int, typer.Option(help="seed of every random sample in the report")] = 0,
    tsne_images: Annotated[int, typer.Option(help="images (with their captions) in t-SNE")] = 150,
    heatmap_images: Annotated[int, typer.Option(help="images in the similarity heatmap")] = 20,
    examples: Annotated[int, typer.Option(help="queries per top-K grid")] = 4,
    top_k: Annotated[int, typer.Option("--top-k", help="results shown per query")] = 5,
    prompt_captions: Annotated[
        int, typer.Option(help="captions in the prompt study, a seeded sample (0 = all)")
    ] = 1000,
    no_photos: Annotated[
        bool,
        typer.Option(
            "--no-photos",
            help="grey placeholders instead of photo thumbnails (for a copy you may share)",
        ),
    ] = False,
    cache_dir: CacheDirOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="use a throw-away cache for this run only")
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Write report.md, a self-contained report.html, metrics.json and figures for one or
    more models on an image-text split (tables and curves side by side)."""
    from crossmodal.eval.options import ReportOptions, check_gallery_sizes, parse_gallery_sizes

    models = list(dict.fromkeys(model))
    options = ReportOptions(
        gallery_sizes=parse_gallery_sizes(gallery_sizes),
        trials=trials,
        seed=seed,
        tsne_images=tsne_images,
        heatmap_images=heatmap_images,
        examples=examples,
        top_k=top_k,
        prompt_captions=prompt_captions,
        photos=not no_photos,
        command=_report_command_line(models, dataset, root, split, out, no_photos),
    ).validate()
    # Cheap checks first, so a typo costs no model loading or embedding.
    from crossmodal.eval.report import build_report, prepare_out_dir
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir

    ds = _load_captioned(dataset, root, split)
    check_gallery_sizes(len(ds), options.gallery_sizes, ds.split)
    prepare_out_dir(out)
    setup_torch()
    encoders = [load_model(name) for name in models]
    cache = None if no_cache else (cache_dir or default_cache_dir())
    result = build_report(
        encoders, ds, out, cache_dir=cache, options=options, show_progress=not quiet
    )
    _print_report(result, out)


def _report_command_line(
    models: list[str], dataset: str, root: Path, split: str, out: Path, no_photos: bool
) -> str:
    """The command that made the report, written into it so anyone can re-run it."""
    return " ".join(
        [
            "crossmodal report",
            *(f"--model {m}" for m in models),
            f"--dataset {dataset} --root {root} --split {split} --out {out}",
            *(["--no-photos"] if no_photos else []),
        ]
    )


def _print_report(result: Any, out: Path) -> None:
    """Each model's metrics table, then where the report was written."""
    from crossmodal.eval import format_table

    for r in result.metrics:
        typer.echo(format_table(r))
    typer.echo(
        f"report written to {out / 'report.html'} and {out / 'report.md'} ({result.seconds:.1f} s)"
    )
