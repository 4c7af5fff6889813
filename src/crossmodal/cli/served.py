"""`crossmodal search "text"` answered by a running `crossmodal serve`, in ~0.1 s.

Before the CLI imports typer, numpy, FAISS or PIL (~0.8 s on 2 cores), `main` hands the
command line here. A search that a server of the collection can answer as an in-process
search would (one text, t2i or t2t, no --model; crossmodal/client.py `one_text`) is sent to
it with the local key from `server.json`, and the answer (full paths, first captions) is
printed in the very lines, JSON or NUL-separated paths the full command prints. Anything
else — another command, an option this parser does not know, a bad value, no server, an
empty answer, a name it cannot reproduce byte for byte — returns None and the full command
runs as before (and reports any mistake in its own words). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = ["hit_line", "parse_search_args", "search_through_server"]

#: options taking a value, by every spelling, and the name they set
_VALUED = {"-c": "collection", "--collection": "collection", "-k": "k", "--top": "k"}
_VALUED |= {"--mode": "mode"}
#: flags: options taking no value
_FLAGS = {"--text": "text_only", "--json": "as_json", "--paths-only": "paths_only"}
_FLAGS |= {"--print0": "print0", "-0": "print0"}


def parse_search_args(args: list[str]) -> dict[str, Any] | None:
    """`search`'s words and options as the Typer command reads them (click's rules: options
    anywhere, `--opt=value`, `-kN`, `--` ends them), or None for anything else (--help,
    --model, an unknown option): the full command then handles it."""
    words: list[str] = []
    found: dict[str, Any] = {}
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            words.extend(rest)
            break
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        name, sep, value = arg.partition("=")
        has_value = bool(sep)
        if not has_value and name[:2] in _VALUED and len(name) > 2 and name[1] != "-":
            name, has_value, value = name[:2], True, name[2:]  # -k5, -cFOLDER
        if name in _FLAGS and not has_value:
            found[_FLAGS[name]] = True
        elif name in _VALUED:
            if not has_value:
                value = next(rest, None)  # type: ignore[assignment]
                if value is None:
                    return None
            found[_VALUED[name]] = value
        else:
            return None
    if "k" in found:
        try:
            found["k"] = int(found["k"])
        except ValueError:
            return None
    return {"words": words, **found}


def hit_line(hit: Any) -> str:
    """score, caption, its image for a caption hit; score, image, its first caption for an
    image (a `SearchHit`, or the server's hit with the same attributes), then (hybrid t2i)
    an indented line per description that lifted it."""
    from crossmodal.fsnames import shown

    if hit.kind == "text":
        auto = "" if hit.by_person is not False else " (auto)"
        return f"{hit.score:.4f}\t{_one_line(hit.text)}{auto}\t{shown(hit.path)}"
    caption = f"\t{_one_line(hit.caption)}" if hit.caption else ""
    return f"{hit.score:.4f}\t{shown(hit.path)}{caption}" + "".join(
        "\n\t" + matched_line(m) for m in hit.matched or []
    )


def matched_line(matched: dict[str, Any]) -> str:
    """Why a description lifted a hit:
    `matched: "Max at the farm" (annotation; similar 0.93; words: max, farm; +0.130)`."""
    parts = [matched["kind"] + ("" if matched["by_person"] else ", auto")]
    if matched.get("similarity") is not None:
        parts.append(f"similar {matched['similarity']:.2f}")
    if matched.get("words"):
        parts.append("words: " + ", ".join(matched["words"]))
    parts.append(f"+{matched['added']:.3f}")
    return f'matched: "{_one_line(matched["text"])}" ({"; ".join(parts)})'


def _one_line(text: str | None) -> str:
    """Tabs and newlines inside a caption would break the columns."""
    return " ".join((text or "").split())


#: the keys of `SearchHit.to_dict()`, in its order: `--json` prints them so
_HIT_KEYS = ("rank", "score", "id", "path", "text", "caption", "kind", "text_id", "relpath")
#: keys after them that a server of an older version may leave out (None then)
_LATER_KEYS = ("text_kind", "by_person", "matched")


def _printable(results: list[Any], print0: bool) -> list[dict[str, Any]] | None:
    """The server's hits as `SearchHit.to_dict()` gives them, or None when the printout could
    differ from the full command's: a hit without its full path, a name escaped by the server
    (its bytes are unknown here) where raw bytes are printed, text the terminal layer of the
    full command (click) would change."""
    hits: list[dict[str, Any]] = []
    for result in results:
        if not isinstance(result, dict) or not set(_HIT_KEYS) <= result.keys():
            return None
        hit = {key: result[key] for key in _HIT_KEYS} | {k: result.get(k) for k in _LATER_KEYS}
        texts = [str(hit[key] or "") for key in ("path", "text", "caption")]
        texts += [str(m.get("text") or "") for m in hit["matched"] or [] if isinstance(m, dict)]
        if any("\x1b" in text for text in texts) or (print0 and "\\" in hit["path"]):
            return None
        hits.append(hit)
    return hits or None


def _print(hits: list[dict[str, Any]], options: dict[str, Any]) -> None:
    out = sys.stdout
    if options.get("as_json"):
        out.write(json.dumps(hits, indent=2, ensure_ascii=False) + "\n")
    elif options.get("print0"):
        out.flush()
        for path in dict.fromkeys(h["path"] for h in hits):
            out.buffer.write(os.fsencode(path) + b"\0")
        out.buffer.flush()
    elif options.get("paths_only"):
        out.write("".join(f"{path}\n" for path in dict.fromkeys(h["path"] for h in hits)))
    else:
        out.write("".join(hit_line(SimpleNamespace(**h)) + "\n" for h in hits))
    out.flush()


def search_through_server(argv: list[str]) -> int | None:
    """0 once a running server's answer to `crossmodal search …` is printed; None when the
    full command must run (see the module's docstring)."""
    if not argv or argv[0] != "search":
        return None
    options = parse_search_args(argv[1:])
    if options is None:
        return None
    from crossmodal.client import one_text, server_text_search
    from crossmodal.errors import CrossmodalError
    from crossmodal.search_options import check_search, parse_query

    try:
        terms = parse_query(options["words"], text_only=options.get("text_only", False))
        mode = check_search(terms, options.get("k", 10), options.get("mode", "auto"))
    except CrossmodalError:
        return None  # the full command says what is wrong, in its words
    text = one_text(terms, mode)
    if text is None:
        return None
    from crossmodal.defaults import default_collection_path

    given = options.get("collection")
    if given == "":
        return None
    folder = (Path(given).expanduser() if given else default_collection_path()).absolute()
    results = server_text_search(
        folder, text, "t2t" if mode == "t2t" else "t2i", options.get("k", 10), absolute=True
    )
    hits = _printable(results, bool(options.get("print0"))) if results else None
    if hits is None:
        return None
    _print(hits, options)
    return 0
