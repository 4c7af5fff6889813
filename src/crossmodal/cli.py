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
from crossmodal.fsnames import shown

app = typer.Typer(
    name="crossmodal",
    help="Offline image<->text retrieval: index photos, search four ways, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2
#: `crossmodal index` ran, but skipped some files or folders (each is listed on stderr)
EXIT_SKIPPED = 3
#: `crossmodal check` found damage (and --repair was not given, or could not mend it all)
EXIT_DAMAGED = 4


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


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise CrossmodalError(
            f"--gallery-sizes takes comma-separated numbers of images, e.g. 100,250 (got {text!r})"
        ) from None
    return sizes


@app.command("report")
@friendly_errors
def report_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model", "-m", help="model name or folder; repeat for side-by-side comparison"
        ),
    ] = ["default"],  # noqa: B006 (Typer needs a literal list default for a repeatable option)
    dataset: Annotated[
        str, typer.Option(help="flickr8k | captions-json | captions-tsv")
    ] = "flickr8k",
    root: Annotated[Path, typer.Option(help="dataset folder")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="train | val | test | all")] = "test",
    out: Annotated[Path, typer.Option(help="report folder")] = Path("report"),
    gallery_sizes: Annotated[
        str, typer.Option(help="comma-separated gallery sizes for the recall-vs-size curve")
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
    cache_dir: Annotated[Path | None, typer.Option(help="embedding cache folder")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="use a throw-away cache for this run only")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Write report.md, a self-contained report.html, metrics.json and figures for one or
    more models on an image-text split (tables and curves side by side)."""
    from crossmodal.data import ImageTextDataset, load_dataset
    from crossmodal.errors import DatasetError
    from crossmodal.eval import format_table
    from crossmodal.eval.report import (
        ReportOptions,
        build_report,
        check_gallery_sizes,
        prepare_out_dir,
    )
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir

    sizes = _parse_sizes(gallery_sizes)
    for name, value in (
        ("--trials", trials),
        ("--tsne-images", tsne_images),
        ("--heatmap-images", heatmap_images),
        ("--examples", examples),
        ("--top-k", top_k),
    ):
        if value < 1:
            raise CrossmodalError(f"{name} must be at least 1 (got {value})")
    # Cheap checks first, so a typo costs no model loading or embedding.
    ds = load_dataset(dataset, root, split=split)
    if not isinstance(ds, ImageTextDataset):
        raise DatasetError(f"{dataset} has labels, not captions: use it with `crossmodal dogs`")
    check_gallery_sizes(len(ds), sizes, ds.split)
    prepare_out_dir(out)
    _setup_torch()
    encoders = [load_model(name) for name in dict.fromkeys(model)]
    options = ReportOptions(
        gallery_sizes=sizes,
        trials=trials,
        seed=seed,
        tsne_images=tsne_images,
        heatmap_images=heatmap_images,
        examples=examples,
        top_k=top_k,
        prompt_captions=prompt_captions,
        photos=not no_photos,
        command=" ".join(
            [
                "crossmodal report",
                *(f"--model {m}" for m in dict.fromkeys(model)),
                f"--dataset {dataset} --root {root} --split {split} --out {out}",
                *(["--no-photos"] if no_photos else []),
            ]
        ),
    )
    cache = None if no_cache else (cache_dir or default_cache_dir())
    result = build_report(
        encoders, ds, out, cache_dir=cache, options=options, show_progress=not quiet
    )
    for r in result.metrics:
        typer.echo(format_table(r))
    typer.echo(
        f"report written to {out / 'report.html'} and {out / 'report.md'} ({result.seconds:.1f} s)"
    )


def _check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CrossmodalError(
            f"cannot write {path}: folder {parent} does not exist or is read-only"
        )


def _opt(help_text: str = "") -> Any:
    return typer.Option(help=help_text, show_default=False)


@app.command("train")
@friendly_errors
def train_command(
    config: Annotated[
        Path | None, typer.Option(help="TOML file of settings (flags given here override it)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the killed run in --out")] = False,
    out: Annotated[str | None, _opt("run folder (best model in <out>/best)")] = None,
    dataset: Annotated[str | None, _opt("dataset format (default flickr8k)")] = None,
    root: Annotated[str | None, _opt("dataset folder")] = None,
    image_tower: Annotated[str | None, _opt("lite0 | lite1 | lite2 (default lite1)")] = None,
    text_tower: Annotated[
        str | None, _opt("minilm | use | minilm+use (default minilm+use)")
    ] = None,
    embed_dim: Annotated[int | None, _opt("shared space size (default 512)")] = None,
    hidden: Annotated[int | None, _opt("MLP width of both heads (default 0 = linear)")] = None,
    dropout: Annotated[float | None, _opt()] = None,
    recipe: Annotated[str | None, _opt("auto | heads | finetune")] = None,
    clip_model: Annotated[
        str | None, _opt("hf:<folder> of a CLIP to fine-tune instead of our towers")
    ] = None,
    unfreeze_image: Annotated[int | None, _opt("train the top N image blocks (-1 = all)")] = None,
    unfreeze_text: Annotated[int | None, _opt("train the top N text layers (-1 = all)")] = None,
    lora_text: Annotated[int | None, _opt("LoRA rank on the text tower's attention")] = None,
    epochs: Annotated[int | None, _opt()] = None,
    batch_size: Annotated[int | None, _opt()] = None,
    grad_accum: Annotated[int | None, _opt("gradient accumulation steps")] = None,
    lr: Annotated[float | None, _opt("learning rate of heads + temperature")] = None,
    image_lr: Annotated[float | None, _opt("learning rate of unfrozen image layers")] = None,
    text_lr: Annotated[float | None, _opt("learning rate of unfrozen text layers")] = None,
    lora_lr: Annotated[float | None, _opt()] = None,
    max_minutes: Annotated[float | None, _opt("stop training after this many minutes")] = None,
    weight_decay: Annotated[float | None, _opt()] = None,
    patience: Annotated[int | None, _opt("epochs without val improvement before stopping")] = None,
    precision: Annotated[str | None, _opt("auto | fp32 | bf16 | fp16")] = None,
    device: Annotated[str | None, _opt("auto | cpu | cuda")] = None,
    augment: Annotated[bool | None, _opt("random crop + colour jitter when fine-tuning")] = None,
    flip_augment: Annotated[bool | None, _opt("mirrored images as extra views")] = None,
    text_views: Annotated[bool | None, _opt("keyword views of captions as extra positives")] = None,
    hard_negatives: Annotated[
        float | None, _opt("share of batches built from last epoch's look-alike images")
    ] = None,
    max_train_images: Annotated[int | None, _opt("use only the first N train images")] = None,
    seed: Annotated[int | None, _opt()] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a dual encoder. With no tower unfrozen it trains projection heads on cached
    frozen-tower features (minutes on a CPU); with --unfreeze-image/--unfreeze-text/--lora-text
    it fine-tunes end to end (a GPU is used when torch sees one). Early-stopped on the val
    split's mean recall; the run folder holds config.toml, metrics.jsonl and best/."""
    given = {
        k: v
        for k, v in locals().items()
        if k not in ("config", "resume", "quiet") and v is not None
    }
    from crossmodal.train.config import make_config
    from crossmodal.train.runner import run_training

    _setup_torch()
    cfg = make_config(config, **given)
    result = run_training(cfg, resume=resume, show_progress=not quiet)
    typer.echo(
        f"best model: {result.best_dir} (val mean recall {result.score:.2f}, "
        f"epoch {result.best_epoch}, {result.seconds:.0f} s)"
    )


@app.command("train-ssl")
@friendly_errors
def train_ssl_command(
    config: Annotated[
        Path | None, typer.Option(help="TOML file of SSLConfig settings (see recipes/ssl.toml)")
    ] = None,
    out: Annotated[str | None, _opt("run folder (best model in <out>/best)")] = None,
    root: Annotated[str | None, _opt("dataset folder")] = None,
    device: Annotated[str | None, _opt("auto | cpu | cuda")] = None,
    max_train_images: Annotated[int | None, _opt("use only the first N train images")] = None,
    seed: Annotated[int | None, _opt()] = None,
    resume: Annotated[bool, typer.Option(help="continue the killed run in --out")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a small CLIP from scratch: SimSiam image pre-training, masked-language-model text
    pre-training, then InfoNCE alignment (the self-supervised prototype; it scores far below
    the pretrained towers, by design of the comparison)."""
    given = {
        k: v
        for k, v in locals().items()
        if k not in ("config", "quiet", "resume") and v is not None
    }
    from crossmodal.train.config import build_config
    from crossmodal.train.ssl import SSLConfig, train_ssl

    _setup_torch()
    cfg = build_config(SSLConfig, config, **given)
    result = train_ssl(cfg, show_progress=not quiet, resume=resume)
    typer.echo(
        f"best model: {result.best_dir} (val mean recall {result.score:.2f}, "
        f"epoch {result.best_epoch})"
    )


CollectionOpt = Annotated[
    Path | None,
    typer.Option(
        "--collection",
        "-c",
        help="collection folder (default: $CROSSMODAL_COLLECTION, else "
        "~/.local/share/crossmodal/default)",
        show_default=False,
    ),
]


def _read_only_list(path: Path) -> list[str]:
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CrossmodalError(f"cannot read the --only list {path}: {exc}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


#: options of the commands that fit something on a dataset's train split, chosen on its val
DatasetOption = Annotated[str, typer.Option(help="dataset format (see `crossmodal eval`)")]
RootOption = Annotated[Path, typer.Option(help="the dataset's folder")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


@app.command("train-multilingual")
@friendly_errors
def train_multilingual_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="saved model folder to extend")],
    out: Annotated[Path, typer.Option(help="where to save the extended model")],
    dataset: DatasetOption = "flickr8k",
    root: RootOption = Path("../shared/data/flickr8k"),
    seed: Annotated[int, typer.Option()] = 0,
    input_noise: Annotated[
        float,
        typer.Option(
            help="noise norm added to USE inputs in training (robustness to "
            "the language shift; chosen on chinese_queries_val.json)"
        ),
    ] = 0.0,
    hidden: Annotated[int, typer.Option(help="MLP width of the head (0 = linear)")] = 0,
    quiet: QuietOption = False,
) -> None:
    """Add a Chinese/multilingual query path (USE tower + a head distilled from the model's
    English text path on the dataset's captions; no Chinese training data needed)."""
    from crossmodal.train.multilingual import add_multilingual_head

    _setup_torch()
    saved = add_multilingual_head(
        model,
        out,
        dataset=dataset,
        root=root,
        seed=seed,
        show_progress=not quiet,
        input_noise=input_noise,
        hidden=hidden,
    )
    summary = json.loads((out / "multilingual_summary.json").read_text())
    typer.echo(
        f"saved {saved} (val cosine {summary['val_cosine']:.4f}, "
        f"epoch {summary['epoch']}, {summary['seconds']:.0f} s)"
    )


@app.command("hubness")
@friendly_errors
def hubness_command(
    model: Annotated[str, typer.Option("--model", "-m", help="'default' or a model folder")],
    out: Annotated[Path, typer.Option(help="where to save the model with the correction")],
    dataset: DatasetOption = "flickr8k",
    root: RootOption = Path("../shared/data/flickr8k"),
    quiet: QuietOption = False,
) -> None:
    """Add a hubness correction to a model: banks of train captions and images, k and
    weight chosen on val (collections indexed with the model then apply it to cross-modal
    search, and `crossmodal eval` reports with it)."""
    from crossmodal.train.hubness import fit_hubness

    _setup_torch()
    summary = fit_hubness(model, out, dataset=dataset, root=root, show_progress=not quiet)
    raw = summary["val"][0]
    picked = (summary["k"], summary["weight"])
    chosen = next(r for r in summary["val"] if (r["k"], r["weight"]) == picked)
    typer.echo(
        f"saved {out}: k={summary['k']}, weight={summary['weight']} "
        f"(val R@1 t2i {raw['t2i']['R@1']:.2f} -> {chosen['t2i']['R@1']:.2f}, "
        f"i2t {raw['i2t']['R@1']:.2f} -> {chosen['i2t']['R@1']:.2f}; "
        f"{summary['seconds']:.0f} s)"
    )


@app.command("index")
@friendly_errors
def index_command(
    directory: Annotated[
        Path | None,
        typer.Argument(help="folder of photos (searched recursively); optional with --optimize"),
    ] = None,
    collection: CollectionOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="model of a new collection (default: 'default')"),
    ] = None,
    captions: Annotated[
        Path | None,
        typer.Option(help="captions.tsv / captions.json / Flickr8k token file, by file name"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="images per batch (and per commit)")] = 32,
    only: Annotated[
        Path | None, typer.Option(help="file listing the file names to index, one per line")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="retry files that failed before")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            help="vector store of a new collection: auto (default: exact while fast, then "
            "approximate by size) | flat (exact) | flat-fp16 (exact scan, 2x faster) | hnsw | "
            "hnsw-fp16 | ivfpq (docs/benchmarks.md, scale section)"
        ),
    ] = None,
    max_index_memory: Annotated[
        str | None,
        typer.Option(help="memory budget of --store auto's index, e.g. 4G (like clip-retrieval)"),
    ] = None,
    optimize: Annotated[
        bool,
        typer.Option(
            "--optimize",
            help="rebuild the vector indexes from the catalogue: drop removed rows, tune again",
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="collection built with another model (version)? re-embed it all"
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Index a folder of photos incrementally: new, changed, moved and deleted files.

    Exit status: 0 when every image file was indexed, 3 when some were skipped (each one and
    its reason is listed on stderr: undecodable files, dangling links, link loops, folders
    that cannot be read), 2 on an error that stopped the run."""
    from crossmodal.collection import Collection

    if directory is None and not optimize:
        raise CrossmodalError("give the folder of photos to index (or --optimize alone)")
    only_names = _read_only_list(only) if only is not None else None
    _setup_torch()
    with Collection.open(
        collection,
        model=model,
        create=directory is not None,
        store=store,
        rebuild=rebuild,
        max_index_memory=max_index_memory,
    ) as col:
        if directory is None:
            for table, info in col.optimize(show_progress=not quiet).items():
                typer.echo(_store_line(table, info))
            return
        report = col.index(
            directory,
            captions=captions,
            batch_size=batch_size,
            show_progress=not quiet,
            only=only_names,
            retry_failed=retry_failed,
        )
    fresh = [f for f in report.failed if not f.remembered]
    for failure in fresh:
        typer.echo(failure.message, err=True)
    remembered = len(report.failed) - len(fresh)
    if remembered:
        typer.echo(
            f"{remembered} file(s) that failed on an earlier run and have not changed were "
            "skipped again; --retry-failed retries them.",
            err=True,
        )
    typer.echo(report.summary())
    if optimize:
        with Collection.open(collection) as col:
            for table, info in col.optimize(show_progress=not quiet).items():
                typer.echo(_store_line(table, info))
    if report.failed:
        typer.echo(
            f"{len(report.failed)} skipped (exit status {EXIT_SKIPPED}) / "
            f"跳过 {len(report.failed)} 项",
            err=True,
        )
        raise typer.Exit(EXIT_SKIPPED)



def _store_line(table: str, info: dict[str, Any]) -> str:
    """'images: hnsw, 1000000 rows, 2.4 GB in memory, recall@10 0.97 vs exact (200 queries)'"""
    recall = info.get("recall_at_10")
    exact = info.get("kind") in ("flat", "flat-fp16")
    measured = (
        "exact scan"
        if exact
        else f"recall@10 {recall:.3f} vs exact on {info.get('sample_queries', 0)} sample queries"
        if recall is not None
        else "recall not measured"
    )
    line = (
        f"{table} index: {info.get('kind')}, {info.get('rows', 0)} rows, "
        f"{info.get('memory_bytes', 0) / 2**20:.1f} MB in memory"
    )
    if info.get("disk_bytes"):
        line += f" + {info['disk_bytes'] / 2**20:.1f} MB memory-mapped"
    if info.get("params"):
        line += " (" + ", ".join(f"{k} {v}" for k, v in info["params"].items()) + ")"
    return f"{line}; {measured}"


@app.command("search")
@friendly_errors
def search_command(
    query: Annotated[
        list[str],
        typer.Argument(
            help='texts and image paths: "a dog" + beach.jpg - snow, 2:"golden retriever" '
            "(put -- before a term that starts with -)",
            show_default=False,
        ),
    ],
    collection: CollectionOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", help="number of results")] = 10,
    mode: Annotated[
        str, typer.Option(help="auto | t2i | i2i | i2t | t2t (auto: t2i, or i2i with an image)")
    ] = "auto",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="default: the collection's model")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of hits")] = False,
    paths_only: Annotated[
        bool,
        typer.Option(
            "--paths-only",
            help="image paths only, one a line (odd characters escaped: use --print0 for xargs)",
        ),
    ] = False,
    print0: Annotated[
        bool,
        typer.Option(
            "--print0", "-0", help="image paths as raw bytes, each ended by NUL (xargs -0)"
        ),
    ] = False,
) -> None:
    """Search a collection by text, by image, or both combined."""
    from crossmodal.collection import Collection, parse_query

    terms = parse_query(query)
    if not terms:
        raise CrossmodalError("empty query: give a text, the path of an image, or both")
    if k < 1:
        raise CrossmodalError(f"-k must be a positive number of results (got {k})")
    col = Collection.open(collection, model=model)
    _setup_torch()
    import torch

    torch.set_num_threads(1)  # one query: a second thread only waits (docs/benchmarks.md)
    hits = col.search(query=terms, k=k, mode=mode.strip().lower())
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
    elif print0:
        out = sys.stdout.buffer
        for path in dict.fromkeys(h.path for h in hits):
            out.write(os.fsencode(path) + b"\0")
        out.flush()
    elif paths_only:
        for path in dict.fromkeys(h.path for h in hits):
            typer.echo(shown(path))
    else:
        for hit in hits:
            text = hit.text if hit.kind == "text" else shown(hit.path)
            typer.echo(f"{hit.score:.4f}\t{text}")
    if not hits:
        what = "captions or annotations" if mode in ("i2t", "t2t") else "images"
        typer.echo(f"no results: collection {col.path} holds no {what} yet", err=True)


@app.command("stats")
@friendly_errors
def stats_command(
    collection: CollectionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
) -> None:
    """What a collection holds: images, texts, model, size on disk."""
    from crossmodal.collection import Collection

    with Collection.open(collection) as col:
        info = col.stats()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "stores":
            for table, store in value.items():
                typer.echo(_store_line(table, store))
            continue
        if key == "roots":
            value = ", ".join(shown(v) for v in value) or "-"
        typer.echo(f"{key}: {value}")


@app.command("check")
@friendly_errors
def check_command(
    collection: CollectionOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="rebuild damaged FAISS caches; copy the readable rows of a damaged catalogue "
            "into a new one",
        ),
    ] = False,
) -> None:
    """Check a collection: SQLite's integrity check and FAISS caches against the catalogue.

    One line; exit status 0 when sound (or repaired), 4 when damage remains."""
    from crossmodal.collection import default_collection_path
    from crossmodal.index.repair import check_collection

    folder = (collection or default_collection_path()).expanduser().absolute()
    report = check_collection(folder, repair=repair)
    typer.echo(report.line())
    if not report.ok and not report.repaired:
        typer.echo(
            f"run `crossmodal check --collection {folder} --repair` to mend it "
            "(运行 --repair 修复)",
            err=True,
        )
        raise typer.Exit(EXIT_DAMAGED)
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)


# `crossmodal dogs …` lives in crossmodal/dogs/cli.py (its heavy imports are inside commands)
from crossmodal.dogs.cli import dogs_app  # noqa: E402

app.add_typer(dogs_app, name="dogs")

# `crossmodal serve` lives in crossmodal/web/cli.py (FastAPI is imported when it runs)
from crossmodal.web.cli import register as _register_serve  # noqa: E402

_register_serve(app)

# `crossmodal generate …` and `crossmodal web-search` live in crossmodal/providers/cli.py
from crossmodal.providers.cli import register as _register_providers  # noqa: E402

_register_providers(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
