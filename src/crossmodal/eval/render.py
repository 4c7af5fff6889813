"""Renderers of the report's document model (`crossmodal.eval.document`): Markdown, and one
self-contained HTML file with every figure inlined, so nothing beside it is needed to read it."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from crossmodal.eval.document import (
    Block,
    Bullets,
    Fig,
    FigRow,
    Heading,
    Para,
    Pre,
    Table,
    flatten,
)

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """The inline markup (`code`, **bold**, [label](link)) as HTML, everything else escaped."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, bold, label, href = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        else:
            out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


# ----------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |"]
    lines.append("|" + "---|" * len(t.header))
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
    return "\n".join(lines)


def _md_fig(f: Fig) -> str:
    return f"![{f.caption}]({f.path.as_posix()})\n\n*{f.caption}*"


def _md_fig_row(row: FigRow) -> str:
    if len(row.figs) == 1:
        return _md_fig(row.figs[0])
    # Markdown has no side-by-side layout; a one-row table puts figures next to each other on
    # GitHub and in most viewers.
    return (
        "| " + " | ".join(f.caption for f in row.figs) + " |\n"
        + "|" + "---|" * len(row.figs) + "\n"
        + "| " + " | ".join(f"![{f.caption}]({f.path.as_posix()})" for f in row.figs) + " |"
    )  # fmt: skip


def render_markdown(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for b in flatten(blocks):
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Pre):
            parts.append("```\n" + b.text.rstrip("\n") + "\n```")
        elif isinstance(b, Table):
            parts.append(_md_table(b))
        elif isinstance(b, Fig):
            parts.append(_md_fig(b))
        elif isinstance(b, FigRow):
            parts.append(_md_fig_row(b))
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:.7em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:.5em 0;flex:1 1 0;min-width:320px}figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}
"""


def _html_img(f: Fig, out_dir: Path) -> str:
    data = base64.b64encode((out_dir / f.path).read_bytes()).decode("ascii")
    alt = html.escape(f.caption, quote=True)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{inline_html(f.caption)}</figcaption></figure>"
    )


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{inline_html(h)}</th>" for h in t.header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in r) + "</tr>" for r in t.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(blocks: Sequence[Block], title: str, out_dir: Path) -> str:
    """One HTML file with every figure inlined as a base64 PNG (no files beside it needed)."""
    body: list[str] = []
    for b in flatten(blocks):
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Pre):
            body.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Table):
            body.append(_html_table(b))
        elif isinstance(b, Fig):
            body.append(f'<div class="row">{_html_img(b, out_dir)}</div>')
        elif isinstance(b, FigRow):
            body.append(
                '<div class="row">' + "".join(_html_img(f, out_dir) for f in b.figs) + "</div>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


__all__ = ["inline_html", "render_html", "render_markdown"]
