"""Snapshot what retrieval returns, to show a refactoring changed no result (issue 18).

    python tools/compare_results.py --out before.json            # on the tree before
    python tools/compare_results.py --compare before.json        # after: exit 1 on any change

It records (a) the figures of `crossmodal eval --model default --dataset flickr8k --split test`
and (b) the top-10 results (relative path, text, score rounded to 1e-5) of a fixed set of
searches in all four modes (and weighted query arithmetic) over a fresh collection of the
Flickr8k test images with their captions, through the Python API and through the web
service's search functions (pages at offset 0 and 10). Indexing runs each time, so the index
path is compared too. Timing figures (`seconds`) are left out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CROSSMODAL_FLICKR8K", ROOT.parent / "shared" / "data" / "flickr8k"))

TEXT_QUERIES = [
    "a dog running on the grass",
    "two children playing in the water",
    "a man riding a bike on a dirt road",
    "a black dog and a white dog",
    "people standing in the snow",
    "a girl in a pink dress",
    "一只在草地上奔跑的狗",
]
#: test images used as image queries (the first ones of test.txt)
IMAGE_QUERY_COUNT = 4


def round_score(value: float) -> float:
    return round(float(value), 5)


def eval_figures(model: str) -> dict[str, Any]:
    """`crossmodal eval ... --json` in a subprocess (the CLI as a user runs it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [
            sys.executable, "-m", "crossmodal", "eval", "--model", model,
            "--dataset", "flickr8k", "--root", str(DATA), "--split", "test",
            "--json", str(out), "--quiet",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        result = json.loads(out.read_text())
    return _without_timings(result)


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def hit_rows(hits: list[Any]) -> list[list[Any]]:
    return [[h.relpath, h.text, round_score(h.score)] for h in hits]


def page_rows(page: Any) -> list[Any]:
    rows = [[r["path"], r["text"], round_score(r["score"])] for r in page.results]
    return [rows, page.total, page.next_offset]


def searches(model: str) -> dict[str, Any]:
    from crossmodal import Collection
    from crossmodal.web import WebSettings
    from crossmodal.web.service import WebService

    test_names = (DATA / "test.txt").read_text().split()
    images = DATA / "images"
    queries = [images / name for name in test_names[:IMAGE_QUERY_COUNT]]
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Collection.open(Path(tmp) / "c", model=model, create=True) as collection,
    ):
        report = collection.index(
            images, captions=DATA / "captions.tsv", only=test_names, show_progress=False
        )
        out["index"] = {
            "added": report.added,
            "captions": report.captions,
            "failed": len(report.failed),
        }
        api: dict[str, Any] = {}
        for text in TEXT_QUERIES:
            for mode in ("t2i", "t2t"):
                api[f"{mode} {text}"] = hit_rows(collection.search(text=text, mode=mode))
        for path in queries:
            for mode in ("i2i", "i2t"):
                api[f"{mode} {path.name}"] = hit_rows(collection.search(image=path, mode=mode))
        arithmetic = [
            [(1.0, "a dog"), (1.0, queries[0]), (-1.0, "snow")],
            [(2.0, "golden retriever"), (-0.5, queries[1])],
            [(1.0, "a beach"), (1.0, "children")],
        ]
        for n, query in enumerate(arithmetic):
            for mode in ("auto", "t2i", "i2t", "t2t"):
                try:
                    api[f"arith{n} {mode}"] = hit_rows(collection.search(query=query, mode=mode))
                except Exception as exc:  # a refused mode is a result too
                    api[f"arith{n} {mode}"] = f"{type(exc).__name__}: {exc}"
        first = collection.search(text=TEXT_QUERIES[0], k=1)[0].id
        for mode in ("i2i", "i2t"):
            api[f"by_id {mode}"] = hit_rows(collection.search_by_id(first, mode=mode))
        out["api"] = api
        out["web"] = web_pages(collection, WebService, WebSettings, queries, first)
    return out


def web_pages(
    collection: Any, service_type: Any, settings_type: Any, queries: list[Path], first: int
) -> dict[str, Any]:
    pages: dict[str, Any] = {}
    for batch in (1, 16):
        service = service_type(collection, settings_type(max_batch=batch, warm_up=False))
        try:
            for text in TEXT_QUERIES[:4]:
                for mode in ("t2i", "t2t"):
                    for offset in (0, 10):
                        page = service.search_text(text, mode, 10, offset)
                        pages[f"b{batch} {mode} {text} @{offset}"] = page_rows(page)
            for path in queries[:2]:
                data = path.read_bytes()
                for mode in ("i2i", "i2t"):
                    for offset in (0, 10):
                        page = service.search_image(data, mode, 10, offset)
                        pages[f"b{batch} {mode} {path.name} @{offset}"] = page_rows(page)
            for mode in ("i2i", "i2t"):
                for offset in (0, 10):
                    page = service.search_by_id(first, mode, 10, offset)
                    pages[f"b{batch} by_id {mode} @{offset}"] = page_rows(page)
        finally:
            service.close()
    return pages


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            if key not in new:
                out.append(f"{where}/{key}: missing now")
            elif key not in old:
                out.append(f"{where}/{key}: new")
            else:
                out += differences(old[key], new[key], f"{where}/{key}")
        return out
    if old != new:
        return [f"{where}: {json.dumps(old, ensure_ascii=False)[:300]} -> "
                f"{json.dumps(new, ensure_ascii=False)[:300]}"]  # fmt: skip
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the snapshot here")
    parser.add_argument("--compare", type=Path, help="compare with this snapshot")
    parser.add_argument("--model", default="default")
    parser.add_argument("--skip-eval", action="store_true", help="searches only")
    parser.add_argument(
        "--with", dest="saved", type=Path, help="with --compare: diff this saved snapshot instead"
    )
    args = parser.parse_args()
    if args.compare is not None and args.saved is not None:
        return report(
            json.loads(args.compare.read_text()), json.loads(args.saved.read_text()), args.compare
        )
    if not (DATA / "test.txt").is_file():
        print(f"no Flickr8k at {DATA}: see ../shared/data/README", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    started = time.perf_counter()
    snapshot: dict[str, Any] = {"model": args.model}
    if not args.skip_eval:
        snapshot["eval"] = eval_figures(args.model)
    snapshot["searches"] = searches(args.model)
    print(f"snapshot taken in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.out is not None:
        args.out.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n")
    if args.compare is not None:
        old = json.loads(args.compare.read_text())
        if args.skip_eval:
            old.pop("eval", None)
        return report(old, snapshot, args.compare)
    return 0


def report(old: dict[str, Any], new: dict[str, Any], name: Path) -> int:
    """Print the differences; 1 when there are some."""
    found = differences(old, new)
    for line in found[:50]:
        print(line)
    if found:
        print(f"{len(found)} differences from {name}")
        return 1
    print(f"identical to {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
