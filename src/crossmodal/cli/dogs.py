"""`crossmodal dogs …`: breed recognition, questions, refitting and dog datasets.

Thin: every command parses its options, calls one function of `crossmodal.dogs` and prints.
Heavy imports (torch, the towers) happen inside the commands so `crossmodal --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crossmodal.cli.common import (
    DEFAULT_DATA_ROOT,
    DEFAULT_FLICKR8K_ROOT,
    MARKUP_MODE,
    CollectionOpt,
    friendly_errors,
    setup_torch,
)
from crossmodal.errors import ConfigError, CrossmodalError

if TYPE_CHECKING:
    from crossmodal.collection import Collection

__all__ = ["dogs_app"]

dogs_app = typer.Typer(
    help="Dog edition: identify breeds, ask breed questions (zh/en), build dog datasets.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP_MODE,
)


@dogs_app.command("identify")
@friendly_errors
def identify_command(
    images: Annotated[list[Path], typer.Argument(help="image files", show_default=False)],
    top: Annotated[int, typer.Option("--top", "-k", help="breeds to list per image")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list, one object per image")] = (
        False
    ),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not cache features")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Which of the 120 Stanford Dogs breeds is in each photo (or: not a dog)."""
    from crossmodal.dogs.recognize import identify_many

    if top < 1:
        raise ConfigError(f"--top must be at least 1 (got {top})")
    setup_torch()
    results, failures = identify_many(
        [str(p) for p in images],
        top=top,
        cache_dir=not no_cache,
        show_progress=len(images) > 8 and not quiet,
    )
    for path, why in failures:
        typer.echo(f"skipping {path}: {why}", err=True)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        for r in results:
            typer.echo(r.image)
            if not r.is_dog:
                typer.echo(f"  not a dog / 不是狗 (dog score {r.dog_score:.2f})")
                continue
            for i, b in enumerate(r.breeds, start=1):
                typer.echo(f"  {i}. {b.name_en} / {b.name_zh}  [{b.breed}]  {b.score:.3f}")
    if failures and not results:
        raise CrossmodalError(f"none of the {len(images)} image(s) could be read")


@dogs_app.command("ask")
@friendly_errors
def ask_command(
    question: Annotated[str, typer.Argument(help="the question, in Chinese or English")],
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="photo the question is about")
    ] = None,
    lang: Annotated[
        str | None, typer.Option(help="answer language: en | zh (default: the question's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the full answer as JSON")] = False,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="never rephrase through CROSSMODAL_LLM_URL")
    ] = False,
) -> None:
    """Answer a breed question from the knowledge base (with --image: about that photo)."""
    from crossmodal.dogs.qa import answer

    if image is not None:
        setup_torch()
    result = answer(question, image=image, lang=lang, use_llm=False if no_llm else None)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(result.text)


@dogs_app.command("fit")
@friendly_errors
def fit_command(
    dogs: Annotated[Path, typer.Option(help="Stanford Dogs folder")] = (
        DEFAULT_DATA_ROOT / "stanford_dogs"
    ),
    flickr: Annotated[
        Path | None, typer.Option(help="Flickr8k folder (val photos for the not-a-dog threshold)")
    ] = DEFAULT_FLICKR8K_ROOT,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: the packaged breed_probe.npz)")
    ] = None,
    variants: Annotated[str, typer.Option(help="EfficientNet-Lite towers to combine")] = (
        "lite0,lite2"
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Refit the breed probes (train split) and mixing weights / dog threshold (val split)."""
    from crossmodal.dogs.fit import fit_and_save
    from crossmodal.dogs.recognize import PROBE_PATH

    names = [v.strip() for v in variants.split(",") if v.strip()]
    if not names:
        raise ConfigError("--variants needs at least one of lite0, lite1, lite2")
    setup_torch()
    target = out or PROBE_PATH
    params = fit_and_save(dogs, flickr, target, names, show_progress=not quiet, log=typer.echo)
    typer.echo(
        f"wrote {target}: weights {params.weights}, dog threshold {params.dog_threshold:.2f} "
        f"({params.meta.get('seconds', 0):.0f} s); score it with `python benchmarks/dogs.py`"
    )


@dogs_app.command("build-dataset")
@friendly_errors
def build_dataset_command(
    out: Annotated[Path, typer.Option(help="output folder for captions.json + split lists")],
    images: Annotated[Path | None, typer.Option(help="folder holding the images")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="labels.tsv: image<TAB>wnid[<TAB>breed]")
    ] = None,
    tsinghua: Annotated[
        Path | None,
        typer.Option(help="a Tsinghua Dogs folder (low-resolution/ + TrainAndValList/) instead"),
    ] = None,
    lang: Annotated[str, typer.Option(help="caption language: en | zh | both")] = "both",
    seed: Annotated[int, typer.Option(help="seed of the stratified split and captions")] = 0,
) -> None:
    """Write a captions-json dataset with knowledge-base captions for labelled dog photos
    (--images + --labels, or --tsinghua for the Tsinghua Dogs layout)."""
    from crossmodal.dogs.dataset import build_dataset, build_tsinghua_dataset

    if tsinghua is not None:
        if images is not None or labels is not None:
            raise ConfigError("give either --tsinghua or --images with --labels, not both")
        report = build_tsinghua_dataset(tsinghua, out, lang=lang.strip().lower(), seed=seed)
    else:
        if images is None or labels is None:
            raise ConfigError("give --images and --labels (or --tsinghua FOLDER)")
        report = build_dataset(images, labels, out, lang=lang.strip().lower(), seed=seed)
    typer.echo(report.summary())
    typer.echo(f"evaluate with: crossmodal eval --dataset captions-json --root {out}")


@dogs_app.command("search")
@friendly_errors
def search_command(
    text: Annotated[
        str | None, typer.Argument(help="what to look for, Chinese or English", show_default=False)
    ] = None,
    like: Annotated[
        Path | None, typer.Option("--like", help="find dogs that look like this photo instead")
    ] = None,
    breed: Annotated[
        str | None, typer.Option("--breed", "-b", help="only this breed (English or Chinese name)")
    ] = None,
    any_breed: Annotated[
        bool, typer.Option("--any-breed", help="with --like: do not require the same breed")
    ] = False,
    collection: CollectionOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", help="number of results")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of hits")] = False,
) -> None:
    """Search an indexed collection for dogs: by text with a breed filter, or by a photo."""
    from crossmodal.collection import Collection
    from crossmodal.dogs.search import dog_search, similar_dogs

    if (text is None) == (like is None):
        raise ConfigError("give either a search text or --like PHOTO (not both)")
    setup_torch()
    with Collection.open(collection) as col:
        if like is not None:
            hits = similar_dogs(col, like, k=k, same_breed=not any_breed)
        else:
            hits = dog_search(col, text or "", breed=breed, k=k)
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return
    for h in hits:
        typer.echo(f"{h.score:.4f}\t{h.breed or '-'}\t{h.path}")
    if not hits:
        typer.echo("no matching dogs in the collection", err=True)


@dogs_app.command("chat")
@friendly_errors
def chat_command(
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="photo the conversation is about")
    ] = None,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="say this (repeatable) instead of reading stdin"),
    ] = None,
    collection: CollectionOpt = None,
    lang: Annotated[
        str | None, typer.Option(help="answer language: en | zh (default: the message's)")
    ] = None,
) -> None:
    """A conversation about dogs (zh/en), grounded in the knowledge base; type `/image PATH`
    to show a photo, an empty line or Ctrl-D to stop. Generation requests ("画一只萨摩耶")
    go to the generation providers. Without a key the rule-based answers reply."""
    from crossmodal.dogs.chat import ChatReply, ChatSession, stream_turn
    from crossmodal.providers import load_config

    config = load_config()
    session = ChatSession()
    pending = _read_photo(image) if image is not None else None
    if pending is not None:
        setup_torch()
    missing = [k for k, v in config.summary().items() if not v]
    if missing:
        typer.echo(
            f"(without keys: {', '.join(missing)}; see docs/dogs.md / 未配置密钥的功能："
            f"{', '.join(missing)})",
            err=True,
        )
    col = _open_collection(collection)
    interactive = message is None and sys.stdin.isatty()
    lines = iter(message) if message is not None else sys.stdin
    try:
        while True:
            if interactive:
                typer.echo("> ", nl=False, err=True)
            line = next(lines, None)
            if line is None or not line.strip():
                break
            text = line.strip()
            if text.startswith("/image "):
                pending = _read_photo(Path(text[7:].strip()))
                setup_torch()
                typer.echo("(photo attached / 已添加照片)", err=True)
                continue
            reply: ChatReply | None = None
            for piece in stream_turn(
                session, text, pending, lang=lang, config=config, collection=col
            ):
                if isinstance(piece, ChatReply):
                    reply = piece
                elif piece:
                    typer.echo(piece, nl=False)
            pending = None
            assert reply is not None
            typer.echo("")
            if reply.provider and reply.notice:
                typer.echo(reply.notice)  # the facts the model's answer rests on
            if reply.media:
                typer.echo(f"[{reply.media['kind']}] {reply.media['path']}")
            for p in reply.photos:
                typer.echo(f"[{p['label']}] {p['path']}")
    finally:
        if col is not None:
            col.close()


def _read_photo(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"{path}: no such photo")
    return path.read_bytes()


def _open_collection(path: Path | None) -> Collection | None:
    """The collection whose photos are offered when generation has no key (none: no offer)."""
    if path is None:
        return None
    from crossmodal.collection import Collection

    setup_torch()
    return Collection.open(path)
