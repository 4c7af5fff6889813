"""How long `crossmodal search` and `crossmodal serve` make a person wait (issue 14).

On a collection of the 1,000 Flickr8k test images: the wall time of a cold `crossmodal search`
(a fresh process each run: text query, image query), of one while a `crossmodal serve` of the
same collection runs, and the server's time from start to its first answer. Medians of
`--runs` runs. Prints the CPU, the inference path and the load average (the machine may be
shared), and writes the `cli-latency` section of docs/benchmarks.md.

    python benchmarks/cli_latency.py [--runs 5] [--collection DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from docsection import update_section  # noqa: E402

TEXT_QUERY = "a dog runs through the grass"
SERVER_FILE = "server.json"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "crossmodal", *args]


#: CPU seconds (user + system) of each timed child, beside its wall time: on a machine shared
#: with other jobs the wall time is mostly waiting for a core, the CPU time is not
CPU_SECONDS: dict[str, list[float]] = {}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], label: str = "other") -> tuple[float, subprocess.CompletedProcess[str]]:
    cpu = _child_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    CPU_SECONDS.setdefault(label, []).append(_child_cpu() - cpu)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return seconds, done


def _ensure_collection(col: Path, root: Path) -> None:
    if (col / "catalog.sqlite").is_file():
        return
    print(f"indexing the 1,000 Flickr8k test images into {col} (once)…", flush=True)
    cmd = _cli("index", str(root / "images"), "--only", str(root / "test.txt"))
    _timed([*cmd, "--collection", str(col), "-q"])


def _median_search(col: Path, query: str, runs: int, label: str) -> tuple[float, list[float]]:
    cmd = _cli("search", query, "--collection", str(col))
    times = [_timed(cmd, label)[0] for _ in range(runs)]
    return statistics.median(times), times


def _server_cpu(pid: int) -> float:
    """CPU seconds the server process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(col: Path, runs: int) -> dict[str, float]:
    """Seconds from starting `crossmodal serve` to its first answer, and the median wall
    time of `crossmodal search` while it runs."""
    port = _free_port()
    cmd = _cli("serve", "--collection", str(col), "--port", str(port), "--no-access-log")
    start = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/search?q=a+dog&k=10"
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    response.read()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - start > 600:
                    raise SystemExit("crossmodal serve did not answer") from None
                time.sleep(0.05)
        first_answer = time.perf_counter() - start
        CPU_SECONDS["serve"] = [_server_cpu(server.pid)]
        while not (col / SERVER_FILE).is_file():
            time.sleep(0.05)
        warm, _ = _median_search(col, TEXT_QUERY, runs, "warm")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    return {"first_answer": first_answer, "warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/flickr8k")
    parser.add_argument("--collection", type=Path, default=Path("/tmp/crossmodal-cli-latency"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    from crossmodal.runtime import describe_machine

    machine = describe_machine()
    load_before = os.getloadavg()
    print(machine, flush=True)
    _ensure_collection(args.collection, args.root)
    image = args.root / "images" / (args.root / "test.txt").read_text().split()[0]
    # the first search of a model exports its query bundle (once): timed apart
    first, done = _timed(_cli("search", TEXT_QUERY, "--collection", str(args.collection)))
    exported = "preparing the quick query path" in done.stderr
    text, text_all = _median_search(args.collection, TEXT_QUERY, args.runs, "text")
    picture, picture_all = _median_search(args.collection, str(image), args.runs, "image")
    served = _serve(args.collection, args.runs)
    load_after = os.getloadavg()
    cpu = {k: statistics.median(v) for k, v in CPU_SECONDS.items()}
    rows = [
        ("cold `crossmodal search` (text)", text, cpu["text"], 2.0),
        ("cold `crossmodal search` (image)", picture, cpu["image"], 3.0),
        (
            "`crossmodal search` (text), `crossmodal serve` running",
            served["warm"],
            cpu["warm"],
            0.3,
        ),
        ("`crossmodal serve`: start to first answer", served["first_answer"], cpu["serve"], 10.0),
    ]
    for label, seconds, cpu_s, target in rows:
        print(f"{label}: {seconds:.2f} s wall, {cpu_s:.2f} s CPU (target <= {target} s)")
    print(
        f"text runs {[round(t, 2) for t in text_all]}, image {[round(t, 2) for t in picture_all]}"
    )
    load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    print(load)
    if args.no_write:
        return
    lines = [
        "<!-- cli-latency:start -->",
        "## CLI latency: an instant `crossmodal search` (issue 14)",
        "",
        f"`python benchmarks/cli_latency.py --runs {args.runs}` on the 1,000 Flickr8k test "
        f"images; medians of {args.runs} runs, each a fresh process, wall time. {machine}. "
        + (
            f"The machine was shared with other jobs ({load}): "
            "figures on an idle machine are lower."
            if max(load_before[0], load_after[0]) > 1.5
            else f"The machine was otherwise idle ({load})."
        ),
        "",
        "| what | wall s | CPU s | target (wall) |",
        "| --- | --- | --- | --- |",
        *(f"| {label} | {w:.2f} | {c:.2f} | <= {t} |" for label, w, c, t in rows),
        "",
        "CPU s: user + system seconds of the search process (of the server process alone, "
        "not its encoder children, for `serve`); on a busy machine the wall time is mostly "
        "waiting for a core.",
        "",
        f"The first search with a model exports its torch-free query bundle "
        f"(crossmodal/models/query_bundle.py){f': {first:.1f} s, once' if exported else ''}; "
        "later searches load no torch (OpenVINO, tokenizers and numpy embed the query), and with "
        "a server running the search is one HTTP request to it (crossmodal/client.py).",
        "<!-- cli-latency:end -->",
    ]
    update_section(REPO / "docs" / "benchmarks.md", "cli-latency", "\n".join(lines) + "\n")
    print("wrote the cli-latency section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
