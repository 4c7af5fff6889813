"""The `crossmodal` command: a thin Typer layer over the Python API.

`main` first lets a running `crossmodal serve` of the collection answer a plain text search
(crossmodal/cli/served.py: the standard library only, ~0.1 s in all); every other command,
and a search no server can answer, goes to the Typer app (crossmodal/cli/commands.py).
Importing this package stays light: the app and its helpers load on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "app",
    "fail",
    "friendly_errors",
    "main",
    "setup_torch",
]


def main() -> None:
    from crossmodal.cli.served import search_through_server

    code = search_through_server(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)
    from crossmodal.cli.collection import with_ray_address
    from crossmodal.cli.commands import app

    sys.argv[1:] = with_ray_address(sys.argv[1:])

    app()


def __getattr__(name: str) -> Any:
    # lazy: `app`, `fail`, … need typer, which the served search path never imports. Only
    # these names: a submodule asked for by `from crossmodal.cli import x` must be imported
    # by the import system, not looked up here (that would recurse while it loads)
    if name == "main" or name not in __all__:
        raise AttributeError(f"module 'crossmodal.cli' has no attribute {name!r}")
    return getattr(importlib.import_module("crossmodal.cli.commands"), name)
