"""The report's document model: small dataclasses a report is built of, rendered twice.

`crossmodal report` builds one `list[Block]` from its measurements and hands it to both
renderers (`crossmodal.eval.render`: Markdown and self-contained HTML), so report.md and
report.html always hold the same content. Text fields use a tiny inline markup shared by both
renderers: `code`, **bold** and [label](link).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # inline markup: `code`, **bold**, [text](link)


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Pre:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Fig:
    path: Path  # relative to the report folder
    caption: str


@dataclass
class FigRow:
    """Figures shown side by side (one per model)."""

    figs: list[Fig]


@dataclass
class Section:
    """A titled part of the report: its heading followed by its blocks (which may hold
    sub-sections). `key` names the section for tests and for readers of analysis.json."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


Block = Heading | Para | Bullets | Pre | Table | Fig | FigRow | Section


def flatten(
    blocks: Sequence[Block],
) -> Iterator[Heading | Para | Bullets | Pre | Table | Fig | FigRow]:
    """The blocks in reading order with every section opened into its heading and content."""
    for b in blocks:
        if isinstance(b, Section):
            yield Heading(b.level, b.title)
            yield from flatten(b.blocks)
        else:
            yield b


def sections(blocks: Sequence[Block]) -> Iterator[Section]:
    """Every section of a document, outer ones first, in reading order."""
    for b in blocks:
        if isinstance(b, Section):
            yield b
            yield from sections(b.blocks)


__all__ = [
    "Block",
    "Bullets",
    "Fig",
    "FigRow",
    "Heading",
    "Para",
    "Pre",
    "Section",
    "Table",
    "flatten",
    "sections",
]
