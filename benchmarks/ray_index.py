"""`crossmodal index --ray`: images/s on Ray workers against in-process indexing (issue 15).

    python benchmarks/ray_index.py [--images 1000] [--workers 1,2] [--no-write]
    python benchmarks/scale.py --ray [--images 1000]          # the same, from the scale script

Indexes the Flickr8k test images (the first `--images` of test.txt, no captions) with the
default model into a fresh collection each time: once in this process (the model already
loaded, as `Collection.index` runs it), then with `--ray` on a local Ray of 1 and of 2 workers
started by the run itself, as `crossmodal index DIR --ray --ray-workers N` does. For each:
the whole `index` call (Ray's start, the workers' model loads and its shutdown included), and
images/s while embedding (from the moment every worker is ready to the last committed batch,
from ray_index's INFO log). Prints the CPU, the inference path and the load average (the
machine may be shared), and writes the `ray` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from benchmarks.docsection import update_section  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"


class _Timings(logging.Handler):
    """Keeps ray_index's "workers ready in S s" and "last batch after S s" of the last run."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for key, pattern in (("ready", r"ready in ([\d.]+) s"), ("last", r"after ([\d.]+) s")):
            found = re.search(pattern, message)
            if found:
                self.seen[key] = float(found.group(1))


def _index_once(
    images: Path, names: list[str], batch_size: int, workers: int | None, timings: _Timings
) -> dict[str, Any]:
    from crossmodal import Collection

    timings.seen.clear()
    with tempfile.TemporaryDirectory(prefix="crossmodal-raybench-") as tmp:
        col = Collection.open(Path(tmp) / "col", model="default", create=True)
        col.model  # noqa: B018 -- loaded before the clock starts, in both kinds of run
        started = time.perf_counter()
        report = col.index(
            images, only=names, batch_size=batch_size, show_progress=False,
            ray="local" if workers else None, ray_workers=workers,
        )  # fmt: skip
        whole = time.perf_counter() - started
        col.close()
    assert report.added == len(names), report.summary()
    if workers:
        embedding = timings.seen["last"] - timings.seen["ready"]
        startup = timings.seen["ready"]
    else:
        embedding, startup = report.embed_seconds, 0.0
    return {
        "workers": workers,
        "images": report.added,
        "whole_s": whole,
        "startup_s": startup,
        "embed_s": embedding,
        "images_per_s": report.added / embedding,
    }


def section(runs: list[dict[str, Any]], machine: str, load: str, command: str) -> str:
    base = runs[0]
    lines = [
        "<!-- ray:start -->",
        "## Indexing on Ray workers (`crossmodal index DIR --ray`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine}; {load}.",
        f"Command: `{command}`. Flickr8k test images ({base['images']}, JPEG 224x224), "
        "default model, no captions, batch 32, a fresh collection per row. *Embedding* is "
        "from the moment every worker holds the model to the last committed batch; *whole "
        "run* adds starting the local Ray, the workers' model loads and the shutdown. "
        "Ray workers are processes of one core each (one torch thread); in-process "
        "indexing overlaps decoding threads with 2 model threads.",
        "",
        "| run | embedding images/s | vs in-process | whole run s | Ray start + model loads s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        name = f"--ray, {run['workers']} worker(s)" if run["workers"] else "in-process"
        ratio = run["images_per_s"] / base["images_per_s"]
        startup = f"{run['startup_s']:.1f}" if run["workers"] else "-"
        lines.append(
            f"| {name} | {run['images_per_s']:.1f} | {ratio:.2f}x | {run['whole_s']:.1f} "
            f"| {startup} |"
        )
    lines += [
        "",
        "On one machine Ray adds a fixed cost (its start and a model load per worker) and "
        "moves each batch's paths and vectors through its object store; it pays off when "
        "the workers are on more machines (README, Past one machine).",
        "<!-- ray:end -->",
    ]
    return "\n".join(lines)


def run(image_count: int, worker_counts: list[int], root: Path, write: bool) -> None:
    from crossmodal.runtime import describe_machine, prepare_torch

    prepare_torch(max(1, os.cpu_count() or 1))  # as the CLI does
    names = (root / "test.txt").read_text().split()[:image_count]
    timings = _Timings()
    logger = logging.getLogger("crossmodal.index.ray_index")
    logger.setLevel(logging.INFO)
    logger.addHandler(timings)
    machine = describe_machine()
    load_before = os.getloadavg()[0]
    runs = []
    for workers in [None, *worker_counts]:
        result = _index_once(root / "images", names, 32, workers, timings)
        print(result, flush=True)
        runs.append(result)
    load_after = os.getloadavg()[0]
    load = f"load average {load_before:.1f} when it started, {load_after:.1f} when it ended"
    if max(load_before, load_after) > 2.5:  # more than the run itself puts on 2 cores
        load += (
            " (the machine was shared with other jobs: every figure is slower than on an idle "
            "machine, and each extra process of a run takes a share of the cores from those "
            "jobs, which flatters the runs with more processes; compare on an idle machine "
            "before drawing a conclusion from the ratios)"
        )
    else:
        load += " (no other work on the machine: the run's own processes make that load)"
    print(machine)
    print(load)
    command = "python benchmarks/scale.py --ray" + (
        f" --images {image_count}" if image_count != 1000 else ""
    )
    if write:
        update_section(DOC, "ray", section(runs, machine, load, command))
        print(f"wrote the ray section of {DOC.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="Flickr8k test images")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to measure")
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "test.txt").is_file():
        parser.error(f"no Flickr8k at {root} (give --root)")
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    run(args.images, workers, root, not args.no_write)


if __name__ == "__main__":
    main()
