"""Record or compare the numbers of a tiny heads run and a tiny SSL run (CPU, deterministic).

A refactor of `crossmodal.train` must not change what training computes. This script runs the
tiny configurations the tests use on generated colour squares and writes every per-epoch
number (loss, val metrics, temperature; not the seconds) of both runs as JSON:

    python tools/train_baseline.py --save /tmp/before.json     # before the change
    python tools/train_baseline.py --compare /tmp/before.json  # after it: exit 1 on a difference
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import torch  # noqa: E402

from tests.train.test_heads import tiny_config as tiny_heads_config  # noqa: E402
from tests.train.test_heads import write_colour_dataset  # noqa: E402
from tests.train.test_ssl import tiny_config as tiny_ssl_config  # noqa: E402


def _without_timing(value: Any) -> Any:
    """The value less its wall-clock fields ("seconds", "device"), which differ run to run."""
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in ("seconds", "device")}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_all(work: Path) -> dict[str, Any]:
    from crossmodal.train.heads import train_heads
    from crossmodal.train.ssl import train_ssl

    torch.set_num_threads(1)
    data = write_colour_dataset(work / "data")
    train_heads(tiny_heads_config(data, work / "heads"), show_progress=False)
    heads_summary = json.loads((work / "heads" / "summary.json").read_text())
    train_ssl(tiny_ssl_config(data, work / "ssl", align_epochs=3), show_progress=False)
    ssl_summary = json.loads((work / "ssl" / "summary.json").read_text())
    return _without_timing(
        {
            "heads": {
                "summary": heads_summary,
                "epochs": _records(work / "heads" / "metrics.jsonl"),
            },
            "ssl": {
                "summary": ssl_summary,
                "epochs": {
                    stage: _records(work / "ssl" / stage / "metrics.jsonl")
                    for stage in ("simsiam", "mlm", "align")
                },
            },
        }
    )


def differences(a: Any, b: Any, where: str = "", tol: float = 1e-6) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{where}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for key in sorted(set(a) & set(b)):
            found += differences(a[key], b[key], f"{where}.{key}", tol)
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} entries"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{where}[{i}]", tol)]
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return [] if abs(a - b) <= tol or a == b else [f"{where}: {a} vs {b}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        now = run_all(Path(tmp))
    if args.save:
        args.save.write_text(json.dumps(now, indent=1) + "\n")
        print(f"saved to {args.save}")
        return 0
    before = json.loads(args.compare.read_text())
    found = differences(before, now)
    for line in found:
        print(line)
    print(f"{len(found)} differences (tolerance 1e-6)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
