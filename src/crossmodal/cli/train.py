"""`crossmodal train`, `train-ssl`, `train-multilingual` and `hubness`: fit models.

Each command builds its config from the flags, runs one training function and prints one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from crossmodal.cli.common import (
    DEFAULT_FLICKR8K_ROOT,
    DatasetOption,
    QuietOption,
    RootOption,
    friendly_errors,
    opt,
    setup_torch,
)

__all__ = [
    "hubness_command",
    "train_command",
    "train_multilingual_command",
    "train_ssl_command",
]


@friendly_errors
def train_command(
    config: Annotated[
        Path | None, typer.Option(help="TOML file of settings (flags given here override it)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the killed run in --out")] = False,
    out: Annotated[str | None, opt("run folder (best model in <out>/best)")] = None,
    dataset: Annotated[str | None, opt("dataset format (default flickr8k)")] = None,
    root: Annotated[str | None, opt("dataset folder")] = None,
    image_tower: Annotated[str | None, opt("lite0 | lite1 | lite2 (default lite1)")] = None,
    text_tower: Annotated[str | None, opt("minilm | use | minilm+use (default minilm+use)")] = None,
    embed_dim: Annotated[int | None, opt("shared space size (default 512)")] = None,
    hidden: Annotated[int | None, opt("MLP width of both heads (default 0 = linear)")] = None,
    dropout: Annotated[float | None, opt()] = None,
    recipe: Annotated[str | None, opt("auto | heads | finetune")] = None,
    clip_model: Annotated[
        str | None, opt("hf:<folder> of a CLIP to fine-tune instead of our towers")
    ] = None,
    unfreeze_image: Annotated[int | None, opt("train the top N image blocks (-1 = all)")] = None,
    unfreeze_text: Annotated[int | None, opt("train the top N text layers (-1 = all)")] = None,
    lora_text: Annotated[int | None, opt("LoRA rank on the text tower's attention")] = None,
    epochs: Annotated[int | None, opt()] = None,
    batch_size: Annotated[int | None, opt()] = None,
    grad_accum: Annotated[int | None, opt("gradient accumulation steps")] = None,
    lr: Annotated[float | None, opt("learning rate of heads + temperature")] = None,
    image_lr: Annotated[float | None, opt("learning rate of unfrozen image layers")] = None,
    text_lr: Annotated[float | None, opt("learning rate of unfrozen text layers")] = None,
    lora_lr: Annotated[float | None, opt()] = None,
    max_minutes: Annotated[float | None, opt("stop training after this many minutes")] = None,
    weight_decay: Annotated[float | None, opt()] = None,
    patience: Annotated[int | None, opt("epochs without val improvement before stopping")] = None,
    precision: Annotated[str | None, opt("auto | fp32 | bf16 | fp16")] = None,
    device: Annotated[str | None, opt("auto | cpu | cuda")] = None,
    augment: Annotated[bool | None, opt("random crop + colour jitter when fine-tuning")] = None,
    flip_augment: Annotated[bool | None, opt("mirrored images as extra views")] = None,
    text_views: Annotated[bool | None, opt("keyword views of captions as extra positives")] = None,
    hard_negatives: Annotated[
        float | None, opt("share of batches built from last epoch's look-alike images")
    ] = None,
    max_train_images: Annotated[int | None, opt("use only the first N train images")] = None,
    seed: Annotated[int | None, opt()] = None,
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

    setup_torch()
    cfg = make_config(config, **given)
    result = run_training(cfg, resume=resume, show_progress=not quiet)
    typer.echo(
        f"best model: {result.best_dir} (val mean recall {result.score:.2f}, "
        f"epoch {result.best_epoch}, {result.seconds:.0f} s)"
    )


@friendly_errors
def train_ssl_command(
    config: Annotated[
        Path | None, typer.Option(help="TOML file of SSLConfig settings (see recipes/ssl.toml)")
    ] = None,
    out: Annotated[str | None, opt("run folder (best model in <out>/best)")] = None,
    root: Annotated[str | None, opt("dataset folder")] = None,
    device: Annotated[str | None, opt("auto | cpu | cuda")] = None,
    max_train_images: Annotated[int | None, opt("use only the first N train images")] = None,
    seed: Annotated[int | None, opt()] = None,
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

    setup_torch()
    cfg = build_config(SSLConfig, config, **given)
    result = train_ssl(cfg, show_progress=not quiet, resume=resume)
    typer.echo(
        f"best model: {result.best_dir} (val mean recall {result.score:.2f}, "
        f"epoch {result.best_epoch})"
    )


@friendly_errors
def train_multilingual_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="saved model folder to extend")],
    out: Annotated[Path, typer.Option(help="where to save the extended model")],
    dataset: DatasetOption = "flickr8k",
    root: RootOption = DEFAULT_FLICKR8K_ROOT,
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

    setup_torch()
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


@friendly_errors
def hubness_command(
    model: Annotated[str, typer.Option("--model", "-m", help="'default' or a model folder")],
    out: Annotated[Path, typer.Option(help="where to save the model with the correction")],
    dataset: DatasetOption = "flickr8k",
    root: RootOption = DEFAULT_FLICKR8K_ROOT,
    quiet: QuietOption = False,
) -> None:
    """Add a hubness correction to a model: banks of train captions and images, k and
    weight chosen on val (collections indexed with the model then apply it to cross-modal
    search, and `crossmodal eval` reports with it)."""
    from crossmodal.train.hubness import fit_hubness

    setup_torch()
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
