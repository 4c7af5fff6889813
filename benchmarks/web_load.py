"""Load test of `crossmodal serve`: concurrent clients running text searches against 127.0.0.1.

    .venv/bin/python benchmarks/web_load.py                      # 50 clients, 60 s, 2 scenarios
    .venv/bin/python benchmarks/web_load.py --duration 10 --scenarios unique --no-write

The server runs in a subprocess through `crossmodal.web.server.serve` (what `crossmodal serve`
runs) over a Flickr8k collection: --collection, by default the 1,000 Flickr8k test images with
their captions indexed into .venv/web-bench-collection with --model (built on the first run,
and again whenever that model's weights change). Each client holds one
keep-alive connection and sends its next request as soon as the last one is answered (a closed
loop, no think time: a harsher load than 50 people would make). The client is a few lines of
raw asyncio HTTP/1.1 rather than httpx, so that the load generator, which shares the same two
cores, takes as little of them as it can.

Scenarios (queries are captions of Flickr8k train and val images, never part of the served
collection; each scenario starts a fresh server, with empty caches):
- `popular`: each request picks one of --pool distinct queries at random, as a search box
  sees the same popular queries again and again; once each has been asked the server's
  answer cache serves them;
- `unique`: every request is a caption not asked before: every one needs a text-tower
  forward (MiniLM + multilingual USE for the default model), batched with the others in
  flight.

Only traffic to 127.0.0.1 is sent; the run is bounded by --duration and stops by itself.
Results go to docs/benchmarks.md between `<!-- web:start -->` and `<!-- web:end -->`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CROSSMODAL_SHARED_DATA", REPO.parent / "shared" / "data"))
FLICKR8K = DATA / "flickr8k"
#: Built here (ignored by git) and rebuilt when the model it was built with has changed.
DEFAULT_COLLECTION = REPO / ".venv" / "web-bench-collection"
REPORT = REPO / "docs" / "benchmarks.md"


def markers(path: str) -> tuple[str, str]:
    """docs/benchmarks.md markers of the web section of one inference path (bf16 / fp32)."""
    return f"<!-- web:{path}:start -->", f"<!-- web:{path}:end -->"


# ---- the server ------------------------------------------------------------------------------
def ensure_collection(path: Path, model: str) -> None:
    """Index the Flickr8k test split into `path` unless it holds a collection of `model`."""
    from crossmodal import Collection
    from crossmodal.models import load_model

    if (path / "catalog.sqlite").is_file():
        with Collection.open(path) as col:
            built_with = col.catalog.get_meta("model_fingerprint")
        if built_with == load_model(model).fingerprint:
            return
        if path != DEFAULT_COLLECTION:
            sys.exit(f"{path} was built with another version of model {model}: reindex it")
        print(f"{path} was built with an older {model}: rebuilding it")
        shutil.rmtree(path)

    if not (FLICKR8K / "captions.tsv").is_file():
        sys.exit(f"no collection at {path} and no Flickr8k at {FLICKR8K} to build one")
    names = (FLICKR8K / "test.txt").read_text().split()
    print(f"indexing {len(names)} Flickr8k test images into {path} with model {model} ...")
    with Collection.open(path, model=model, create=True) as col:
        report = col.index(FLICKR8K / "images", captions=FLICKR8K / "captions.tsv", only=names)
    print(report.summary())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    collection: Path, port: int, workers: int, max_batch: int, cache: int, children: bool
) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        __file__,
        "--serve",
        "--collection",
        str(collection),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--max-batch",
        str(max_batch),
        "--cache",
        str(cache),
        "--child-encoders" if children else "--no-child-encoders",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    url = f"http://127.0.0.1:{port}/api/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            sys.exit(f"the server exited with {proc.returncode}:\n{err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the server did not answer /api/health within 180 s")


def serve_only(args: argparse.Namespace) -> None:
    """The server subprocess: what `crossmodal serve --no-access-log` runs, with the
    benchmark's settings."""
    from crossmodal.web.server import serve
    from crossmodal.web.settings import WebSettings

    settings = WebSettings(
        max_batch=args.max_batch, query_cache_size=args.cache, child_encoders=args.child_encoders
    )
    serve(
        args.collection,
        port=args.port,
        settings=settings,
        workers=args.workers,
        access_log=False,
        announce=lambda line: None,
    )


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (/proc/stat): with the
    server's and the load generator's own, it tells how much other work shared the cores."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn workers, text-encoding children), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def tree_rss_gb(pid: int) -> float:
    """Resident memory of a process and its descendants, GB (shared pages counted in each)."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s*(\d+) kB", status)
        total += int(match[1]) if match else 0
    return total / 1024**2


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants alive now (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


# ---- the clients -----------------------------------------------------------------------------
@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    answered: int = 0  # every answer, warm-up included (server CPU is counted over both)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def one_client(
    port: int, next_query, k: int, record_from: float, stop_at: float, result: Result
) -> None:  # type: ignore[no-untyped-def]
    reader = writer = None
    while time.perf_counter() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            query = urllib.parse.urlencode({"q": next_query(), "mode": "t2i", "k": k})
            request = f"GET /api/search?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            status = int(head[9:12])
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(match[1])) if match else b""
            elapsed = time.perf_counter() - started
            result.answered += 1
            if started >= record_from:
                if status != 200 or b'"results"' not in body:
                    result.error(f"HTTP {status}")
                else:
                    result.latencies.append(elapsed)
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader = writer = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            if time.perf_counter() >= record_from:
                result.error(type(exc).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def held_out_captions() -> list[str]:
    """Distinct captions of the Flickr8k images outside the test split (train + val): texts
    the served collection (the test split, captions included) has never held."""
    served = set((FLICKR8K / "test.txt").read_text().split())
    lines = (FLICKR8K / "captions.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = (line.split("\t", 1) for line in lines if "\t" in line)
    return list(dict.fromkeys(text.strip() for image, text in rows if image not in served))


def make_queries(scenario: str, pool: int, seed: int):  # type: ignore[no-untyped-def]
    captions = held_out_captions()
    rng = random.Random(seed)
    rng.shuffle(captions)
    if scenario == "popular":
        chosen = captions[:pool]
        return lambda: rng.choice(chosen)
    counter = iter(range(10**9))
    # every request a caption not asked before (a numbered copy once all ~35k are used): no
    # cache of the server can answer it, every one needs a text-tower forward
    return lambda: (lambda n: captions[n % len(captions)] + ("" if n < len(captions) else f" {n}"))(
        next(counter)
    )


async def load(
    port: int, clients: int, seconds: float, warmup: float, next_query, k: int
) -> Result:  # type: ignore[no-untyped-def]
    result = Result()
    now = time.perf_counter()
    record_from, stop_at = now + warmup, now + warmup + seconds
    await asyncio.gather(
        *(one_client(port, next_query, k, record_from, stop_at, result) for _ in range(clients))
    )
    return result


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def run_scenario(args: argparse.Namespace, scenario: str) -> dict:
    port = free_port()
    server = start_server(
        args.collection, port, args.workers, args.max_batch, args.cache, args.child_encoders
    )
    try:
        next_query = make_queries(scenario, args.pool, args.seed)
        load_before = os.getloadavg()[0]
        cpu_before = process_cpu_seconds(server.pid)
        busy_before = machine_busy_seconds()
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        result = asyncio.run(
            load(port, args.clients, args.duration, args.warmup, next_query, args.k)
        )
        wall = time.perf_counter() - wall
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = process_cpu_seconds(server.pid) - cpu_before
        busy = machine_busy_seconds() - busy_before
        rss = tree_rss_gb(server.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=10) as r:
            stats = json.load(r)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    lat = [x * 1000 for x in result.latencies]
    client_cpu = (self_after.ru_utime + self_after.ru_stime) - (
        self_before.ru_utime + self_before.ru_stime
    )
    return {
        "scenario": scenario,
        "clients": args.clients,
        "seconds": args.duration,
        "workers": args.workers,
        "child_encoders": args.child_encoders,
        "max_batch": args.max_batch,
        "images": stats["images"],
        "model": Path(str(stats["model"])).name,
        "requests": len(lat),
        "throughput": len(lat) / args.duration,
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
        "errors": sum(result.errors.values()),
        "error_kinds": result.errors,
        "server_cores": server_cpu / wall,
        # CPU time per answer: what the server would need on idle cores (others share these)
        "server_cpu_ms_per_request": 1000 * server_cpu / max(1, result.answered),
        "client_cores": client_cpu / wall,
        "server_rss_gb": rss,
        "load_before": load_before,
        # cores' worth of CPU that other processes used during the run (0: a quiet machine)
        "other_cores": max(0.0, busy - server_cpu - client_cpu) / wall,
        "cache": stats.get("query_cache"),
        "page_cache": stats.get("page_cache"),
        "batches": stats.get("query_batches"),
    }


# ---- the report ------------------------------------------------------------------------------
def format_section(runs: list[dict], command: str, path: str, machine: str) -> str:
    start, end = markers(path)
    label = {"bf16": "bf16 path (AVX512-BF16 / AMX)", "fp32": "fp32 path (AVX2 and others)"}
    lines = [
        start,
        f"## Web app under load (`benchmarks/web_load.py`) — {label[path]}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine}.",
        "",
        f"`{command}` on this machine (2 cores shared by the server, the load generator and "
        "whatever else runs): each of the clients holds a keep-alive connection to "
        "127.0.0.1 and sends `GET /api/search?q=<caption>&mode=t2i&k=10` as soon as its "
        "last answer arrives (closed loop, no think time), after an unmeasured warm-up. "
        "Queries are captions of Flickr8k train/val images, never in the served collection "
        "(the 1,000 test images); each scenario starts a fresh server. "
        "`popular`: queries drawn from a fixed pool of distinct captions (once asked, the "
        "answer cache serves them); `unique`: every query a caption never asked before (a "
        "text-tower forward each, batched with the others in flight). `server CPU ms/req`: "
        "the server's CPU time per answer, warm-up included. `other processes' cores`: CPU "
        "that other jobs on the machine used meanwhile (from /proc/stat), which the figures "
        "share the 2 cores with.",
        "",
        "| scenario | clients | s | workers | batch | mean / largest batch | images | requests | "
        "req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server cores | server CPU ms/req | "
        "server GB | client cores | other processes' cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        batches = r.get("batches") or {}
        mean = batches.get("texts", 0) / max(1, batches.get("batches", 0))
        lines.append(
            f"| {r['scenario']} | {r['clients']} | {r['seconds']:.0f} | {r['workers']} | "
            f"{r['max_batch']} | {mean:.1f} / {batches.get('largest', '-')} | "
            f"{r['images']} | {r['requests']} | {r['throughput']:.0f} | "
            f"{r['p50_ms']:.0f} | {r['p90_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} | "
            f"{r['errors']} | {r['server_cores']:.2f} | {r['server_cpu_ms_per_request']:.1f} | "
            f"{r['server_rss_gb']:.2f} | "
            f"{r['client_cores']:.2f} | "
            f"{r['other_cores']:.2f} |"
        )
    lines += ["", end]
    return "\n".join(lines)


def write_report(section: str, notes: str | None, path: str) -> None:
    start, end = markers(path)
    if notes:
        section = section.replace(f"\n\n{end}", f"\n\n{notes.strip()}\n\n{end}")
    text = REPORT.read_text(encoding="utf-8") if REPORT.is_file() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, default=DEFAULT_COLLECTION)
    parser.add_argument("--model", default="default", help="model of a collection built here")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument(
        "--warmup", type=float, default=15.0, help="unmeasured seconds first (fills the cache)"
    )
    parser.add_argument("--scenarios", default="popular,unique")
    parser.add_argument("--pool", type=int, default=500, help="distinct queries of `popular`")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--child-encoders",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="text tower in child processes, as crossmodal serve runs it by default",
    )
    parser.add_argument(
        "--max-batch", type=int, default=None, help="default: the server's (WebSettings)"
    )
    parser.add_argument("--cache", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs")
    parser.add_argument("--notes", help="a paragraph added under the table")
    parser.add_argument(
        "--fast",
        choices=["auto", "bf16", "fp32", "fp32-torch"],
        default=None,
        help="inference path of the server (CROSSMODAL_FAST); default: as set, else auto",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fast:
        os.environ["CROSSMODAL_FAST"] = args.fast  # the server subprocess inherits it
    if args.serve:
        serve_only(args)
        return
    from crossmodal.models.fast import fast_mode
    from crossmodal.runtime import describe_machine

    path = fast_mode()
    if path == "off":
        parser.error("CROSSMODAL_FAST=0 turns the fast paths off: nothing to benchmark")
    machine = describe_machine()
    print(f"measuring on {machine}", flush=True)
    if args.max_batch is None:
        from crossmodal.web.settings import WebSettings

        args.max_batch = WebSettings().max_batch
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    ensure_collection(args.collection, args.model)
    runs = []
    for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        if scenario not in ("popular", "unique"):
            parser.error(f"unknown scenario {scenario!r}: popular | unique")
        print(f"== {scenario}: {args.clients} clients for {args.duration:.0f} s ...", flush=True)
        run = run_scenario(args, scenario)
        print(json.dumps(run, indent=2), flush=True)
        runs.append(run)
    command = (
        f"python benchmarks/web_load.py --clients {args.clients} --duration {args.duration:g} "
        f"--scenarios {args.scenarios} --pool {args.pool} --workers {args.workers} "
        f"--max-batch {args.max_batch}"
        + ("" if args.child_encoders else " --no-child-encoders")
        + (f" --fast {args.fast}" if args.fast else "")
    )
    section = format_section(runs, command, path, machine)
    print(section)
    if not args.no_write:
        write_report(section, args.notes, path)
        print(f"written to {REPORT}")


if __name__ == "__main__":
    main()
