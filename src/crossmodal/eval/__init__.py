"""Retrieval metrics (pure functions) and model evaluation on image-text datasets."""

from crossmodal.eval.evaluate import embed_split, evaluate, format_table, markdown_table
from crossmodal.eval.metrics import (
    best_relevant_ranks,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_ranks,
)

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
