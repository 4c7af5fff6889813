"""The `crossmodal` command's Typer app: a thin layer over the Python API.

(`crossmodal.cli.main` imports this only when a running server could not answer: typer
alone takes ~0.2 s to import.) One module per command group, assembled here in the order a
newcomer needs them (`--help` lists collections first, then the dog edition, then evaluation
and training). Each group's heavy imports (torch, FastAPI, the towers) happen inside its
commands, so `--help` is fast.
"""

from __future__ import annotations

import typer

from crossmodal.cli import annotate, captioner, collection, dogs, eval, providers, serve, train
from crossmodal.cli.common import (
    EXIT_DAMAGED,
    EXIT_SKIPPED,
    EXIT_USAGE,
    MARKUP_MODE,
    SectionedGroup,
    fail,
    friendly_errors,
    setup_torch,
)

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "app",
    "fail",
    "friendly_errors",
    "setup_torch",
]

app = typer.Typer(
    name="crossmodal",
    cls=SectionedGroup,
    help="Offline image<->text retrieval: index photos, search four ways, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP_MODE,
)

# --help lists them in common.HELP_SECTIONS' order, whatever the order here
app.command("index")(collection.index_command)
app.command("search")(collection.search_command)
app.command("annotate")(annotate.annotate_command)
app.command("serve")(serve.serve_command)
app.command("stats")(collection.stats_command)
app.command("check")(collection.check_command)
app.add_typer(dogs.dogs_app, name="dogs")
app.command("eval")(eval.eval_command)
app.command("report")(eval.report_command)
app.command("train")(train.train_command)
app.command("train-ssl")(train.train_ssl_command)
app.command("train-multilingual")(train.train_multilingual_command)
app.command("hubness")(train.hubness_command)
app.command("caption")(captioner.caption_command)
app.command("train-captioner")(captioner.train_captioner_command)
app.command("eval-captioner")(captioner.eval_captioner_command)
app.add_typer(providers.generate_app, name="generate")
app.command("web-search")(providers.web_search_command)
