"""Replace (or append) one `<!-- name:start --> … <!-- name:end -->` section of a Markdown file."""

from __future__ import annotations

from pathlib import Path


def update_section(doc: Path, name: str, body: str) -> None:
    """`body` must start with the start marker and end with the end marker."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    doc.write_text(text)
