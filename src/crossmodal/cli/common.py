"""What every `crossmodal` command shares: error mapping, exit codes, torch set-up, option types.

Every command turns a `CrossmodalError` into one line on stderr and exit code 2, so users see
what went wrong and how to fix it, never a traceback. Nothing heavy is imported here, so
`crossmodal --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    # Typer 0.29 carries its own Click; its group's methods take that Click's types
    from typer._click import Context, HelpFormatter

from crossmodal.defaults import DEFAULT_DATA_ROOT, DEFAULT_FLICKR8K_ROOT
from crossmodal.errors import CrossmodalError

__all__ = [
    "DEFAULT_DATA_ROOT",
    "DEFAULT_FLICKR8K_ROOT",
    "EXIT_DAMAGED",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "CollectionOpt",
    "DatasetOption",
    "DbOpt",
    "ModelOpt",
    "QuietOption",
    "RootOption",
    "check_dataset_root",
    "check_writable",
    "fail",
    "friendly_errors",
    "setup_torch",
]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2
#: `crossmodal index` ran, but skipped some files or folders (each is listed on stderr)
EXIT_SKIPPED = 3
#: `crossmodal check` found damage (and --repair was not given, or could not mend it all)
EXIT_DAMAGED = 4

#: `crossmodal --help`'s sections, in the order a newcomer needs them
HELP_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Collections", ("index", "search", "annotate", "serve", "stats", "check")),
    ("Dog edition", ("dogs",)),
    (
        "Evaluation and training",
        (
            "eval",
            "report",
            "train",
            "train-ssl",
            "train-multilingual",
            "hubness",
            "caption",
            "train-captioner",
            "eval-captioner",
        ),
    ),
    ("Online providers (need a key)", ("generate", "web-search")),
)

#: plain Click help, not Typer's rich boxes: those print `<bool>` beside every flag, and
#: plain help imports no `rich`
MARKUP_MODE = None


class SectionedGroup(TyperGroup):
    """Commands listed by `HELP_SECTIONS`, each section under its own heading."""

    def list_commands(self, ctx: Context) -> list[str]:
        order = [name for _, names in HELP_SECTIONS for name in names]
        known = [n for n in order if n in self.commands]
        return known + [n for n in self.commands if n not in order]

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        names = self.list_commands(ctx)
        width = formatter.width or 80
        limit = width - 6 - max((len(n) for n in names), default=0)
        placed: set[str] = set()
        for title, section in (*HELP_SECTIONS, ("Other commands", tuple(names))):
            rows = []
            for name in section:
                cmd = self.commands.get(name)
                if cmd is None or cmd.hidden or name in placed:
                    continue
                placed.add(name)
                rows.append((name, cmd.get_short_help_str(limit)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


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


def setup_torch() -> None:
    """Offline hub, quiet transformers, every core for torch: before any model is built."""
    from crossmodal.runtime import prepare_torch

    prepare_torch(max(1, os.cpu_count() or 1))


def check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CrossmodalError(
            f"cannot write {path}: folder {parent} does not exist or is read-only"
        )


def check_dataset_root(root: Path) -> None:
    """The default --root is relative to a checkout: outside one, say which option to give."""
    if root == DEFAULT_FLICKR8K_ROOT and not root.exists():
        raise CrossmodalError(
            f"no dataset at the default --root {root} (it is relative to a crossmodal checkout): "
            "give the dataset folder with --root PATH / 用 --root 指定数据集文件夹"
        )


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        help="default | saved model folder | hf:<dir/id> | openclip:<arch>/<tag>",
    ),
]

CollectionOpt = Annotated[
    Path | None,
    typer.Option(
        "--collection",
        "-c",
        metavar="FOLDER",
        help="collection folder (default: $CROSSMODAL_COLLECTION, else "
        "~/.local/share/crossmodal/default)",
        show_default=False,
    ),
]

#: a collection in PostgreSQL instead of a folder (crossmodal/index/pg_collection.py)
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="a collection in PostgreSQL with pgvector (postgresql://user@host:port/database) "
        "instead of a folder; see README, 'Past one machine'",
        show_default=False,
    ),
]

#: every dataset format `load_dataset` reads (kept in step with crossmodal.data.DATASET_NAMES
#: by tests/test_cli_help.py; not imported from there, so --help imports no numpy)
DATASET_FORMATS = (
    "flickr8k (captions.tsv, Flickr8k.token.txt, Kaggle captions.txt or Karpathy JSON) | "
    "captions-json | captions-tsv | folder (one folder per class) | stanford-dogs"
)

#: options of the commands that fit or score something on a dataset
DatasetOption = Annotated[
    str, typer.Option(metavar="FORMAT", help=f"dataset format: {DATASET_FORMATS}")
]
RootOption = Annotated[Path, typer.Option(metavar="FOLDER", help="the dataset's folder")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def opt(help_text: str = "", metavar: str | None = None) -> Any:
    """An option with no shown default (the training commands' defaults live in the config)."""
    return typer.Option(help=help_text, show_default=False, metavar=metavar)
