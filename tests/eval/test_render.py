"""The report's document model (`document.py`) and its two renderers (`render.py`): the same
blocks give the same content in Markdown and in one self-contained HTML file."""

from __future__ import annotations

import base64
from pathlib import Path

from crossmodal.eval import plots
from crossmodal.eval.document import (
    Bullets,
    Fig,
    FigRow,
    Heading,
    Para,
    Pre,
    Section,
    Table,
    flatten,
    sections,
)
from crossmodal.eval.render import inline_html, render_html, render_markdown


def a_document(figure: Path) -> list:
    inner = Section("inner", "Inner 内部", [Para("deep")], level=3)
    return [
        Heading(1, "Title"),
        Section(
            "outer",
            "Outer 外部",
            [
                Para("`code`, **bold** and [a link](x/y.jpg) <b>"),
                Bullets(["one", "two"]),
                Pre("a | b\n"),
                Table(["h|1", "h2"], [["a|b", "c\nd"]]),
                Fig(figure, "a figure"),
                FigRow([Fig(figure, "left"), Fig(figure, "right")]),
                inner,
            ],
        ),
    ]


def make_figure(tmp_path: Path) -> Path:
    fig = plots.flowchart_figure("image tower", "text tower", 8, "")
    plots.save_png(fig, tmp_path / "figures" / "f.png")
    return Path("figures") / "f.png"


def test_sections_open_into_headings(tmp_path: Path):
    doc = a_document(Path("figures/f.png"))
    assert [s.key for s in sections(doc)] == ["outer", "inner"]
    headings = [b for b in flatten(doc) if isinstance(b, Heading)]
    assert [(h.level, h.text) for h in headings] == [
        (1, "Title"),
        (2, "Outer 外部"),
        (3, "Inner 内部"),
    ]


def test_markdown(tmp_path: Path):
    md = render_markdown(a_document(Path("figures/f.png")))
    assert md.startswith("# Title\n\n## Outer 外部\n\n`code`, **bold** and [a link](x/y.jpg) <b>")
    assert "- one\n- two" in md
    assert "```\na | b\n```" in md
    assert "| h\\|1 | h2 |\n|---|---|\n| a\\|b | c d |" in md  # cells escaped, one line each
    assert "![a figure](figures/f.png)\n\n*a figure*" in md
    assert "| left | right |\n|---|---|\n| ![left](figures/f.png) | ![right](figures/f.png) |" in md
    assert md.endswith("### Inner 内部\n\ndeep\n")


def test_html_is_escaped_and_self_contained(tmp_path: Path):
    figure = make_figure(tmp_path)
    page = render_html(a_document(figure), "T <1>", tmp_path)
    assert "<title>T &lt;1&gt;</title>" in page
    assert "<h2>Outer 外部</h2>" in page and "<h3>Inner 内部</h3>" in page
    assert (
        "<p><code>code</code>, <strong>bold</strong> and "
        '<a href="x/y.jpg">a link</a> &lt;b&gt;</p>' in page
    )
    assert "<pre>a | b\n</pre>" in page
    assert "<th>h|1</th>" in page and "<td>c\nd</td>" in page
    images = page.split('<img src="data:image/png;base64,')[1:]
    assert len(images) == 3
    for data in images:
        assert base64.b64decode(data.split('"', 1)[0])[:4] == b"\x89PNG"


def test_inline_markup_only_where_closed():
    assert inline_html("a `b` **c** [d](e) **f") == (
        'a <code>b</code> <strong>c</strong> <a href="e">d</a> **f'
    )
