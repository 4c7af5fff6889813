"""The `crossmodal` command: a thin Typer layer over the Python API.

Every command turns a `CrossmodalError` into one line on stderr and exit code 2, so users see
what went wrong and how to fix it, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from crossmodal.errors import CrossmodalError

app = typer.Typer(
    name="crossmodal",
    help="Offline image<->text retrieval: index photos, search four ways, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


def fail(message: str) -> None:
    typer.echo(f"crossmodal: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def friendly_errors(func: F) -> F:
    """One clear line and exit 2 for every expected error; tracebacks only for real bugs."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CrossmodalError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            typer.echo("crossmodal: interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # `crossmodal search … | head` closes the pipe early; that is not an error.
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="default | saved model folder | hf:<dir/id> | openclip:<arch>/<tag>"
    ),
]


def _setup_torch() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@app.command("eval")
@friendly_errors
def eval_command(
    model: ModelOpt = "default",
    dataset: Annotated[
        str, typer.Option(help="flickr8k | captions-json | captions-tsv")
    ] = "flickr8k",
    root: Annotated[Path, typer.Option(help="dataset folder")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="train | val | test | all")] = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the result JSON here")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="embedding cache folder")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="do not read or write the cache")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Recall@1/5/10, MRR and median rank in both directions on an image-text split."""
    from crossmodal.data import ImageTextDataset, load_dataset
    from crossmodal.errors import DatasetError
    from crossmodal.eval import evaluate, format_table
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir

    ds = load_dataset(dataset, root, split=split)
    if not isinstance(ds, ImageTextDataset):
        raise DatasetError(f"{dataset} has labels, not captions: use it with `crossmodal dogs`")
    if json_out is not None:
        _check_writable(json_out)
    _setup_torch()
    encoder = load_model(model)
    cache = None if no_cache else (cache_dir or default_cache_dir())
    result = evaluate(encoder, ds, cache_dir=cache, show_progress=not quiet)
    typer.echo(format_table(result))
    typer.echo(f"({result['seconds']:.1f} s)")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


def _check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CrossmodalError(
            f"cannot write {path}: folder {parent} does not exist or is read-only"
        )


@app.command("train")
@friendly_errors
def train_command(
    out: Annotated[Path, typer.Option(help="run folder (best model in <out>/best)")] = Path(
        "runs/heads"
    ),
    dataset: Annotated[str, typer.Option()] = "flickr8k",
    root: Annotated[Path, typer.Option()] = Path("../shared/data/flickr8k"),
    image_tower: Annotated[str, typer.Option(help="lite0 | lite1 | lite2")] = "lite0",
    text_tower: Annotated[str, typer.Option(help="minilm | use")] = "minilm",
    embed_dim: Annotated[int, typer.Option()] = 256,
    hidden: Annotated[int, typer.Option(help="MLP hidden width of both heads (0 = linear)")] = 1024,
    dropout: Annotated[float, typer.Option()] = 0.1,
    epochs: Annotated[int, typer.Option()] = 40,
    batch_size: Annotated[int, typer.Option()] = 256,
    lr: Annotated[float, typer.Option()] = 1e-3,
    weight_decay: Annotated[float, typer.Option()] = 0.05,
    patience: Annotated[int, typer.Option()] = 6,
    flip_augment: Annotated[bool, typer.Option(help="use mirrored images as extra views")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a dual encoder; this version trains projection heads on frozen towers
    (features cached once), early-stopped on the val split's mean recall."""
    from crossmodal.train.heads import HeadConfig, train_heads

    _setup_torch()
    cfg = HeadConfig(
        dataset=dataset,
        root=str(root),
        out=str(out),
        image_tower={"type": "efficientnet", "variant": image_tower},
        text_tower={"type": text_tower},
        embed_dim=embed_dim,
        image_hidden=hidden,
        text_hidden=hidden,
        dropout=dropout,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        flip_augment=flip_augment,
        seed=seed,
    )
    best = train_heads(cfg, show_progress=not quiet)
    summary = json.loads((out / "summary.json").read_text())
    typer.echo(
        f"best model: {best} (val mean recall {summary['score']:.2f}, "
        f"epoch {summary['epoch']}, {summary['seconds']:.0f} s)"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
