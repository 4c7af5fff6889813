"""Retrieval metrics (pure functions) and model evaluation on image-text datasets.

Names are imported lazily so that `crossmodal.eval.options` (which the CLI reads to check a
report's options before anything heavy) does not import torch through `evaluate`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossmodal.eval.evaluate import embed_split, evaluate, format_table, markdown_table
    from crossmodal.eval.metrics import (
        best_relevant_ranks,
        metrics_from_ranks,
        retrieval_metrics,
        retrieval_ranks,
    )

_EXPORTS = {
    "embed_split": "crossmodal.eval.evaluate",
    "evaluate": "crossmodal.eval.evaluate",
    "format_table": "crossmodal.eval.evaluate",
    "markdown_table": "crossmodal.eval.evaluate",
    "best_relevant_ranks": "crossmodal.eval.metrics",
    "metrics_from_ranks": "crossmodal.eval.metrics",
    "retrieval_metrics": "crossmodal.eval.metrics",
    "retrieval_ranks": "crossmodal.eval.metrics",
}

__all__ = [
    "best_relevant_ranks",
    "embed_split",
    "evaluate",
    "format_table",
    "markdown_table",
    "metrics_from_ranks",
    "retrieval_metrics",
    "retrieval_ranks",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossmodal.eval' has no attribute {name!r}")
    return getattr(import_module(module), name)
