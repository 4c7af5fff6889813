"""The web app: `crossmodal serve`, or `create_app(collection, settings)` for your own server.

    from crossmodal import Collection
    from crossmodal.web import WebSettings, create_app
    app = create_app(Collection.open("~/photos.cm"), WebSettings(token="s3cret"))

Names are imported lazily so that `crossmodal --help` (which imports `crossmodal.cli.serve`)
does not load FastAPI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossmodal.web.app import create_app
    from crossmodal.web.settings import WebSettings

_EXPORTS = {"create_app": "crossmodal.web.app", "WebSettings": "crossmodal.web.settings"}
__all__ = ["WebSettings", "create_app"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossmodal.web' has no attribute {name!r}")
    return getattr(import_module(module), name)
