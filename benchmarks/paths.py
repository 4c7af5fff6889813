"""Fidelity of the inference paths: the same Flickr8k split embedded on each, against the
reference modules (CROSSMODAL_FAST=0), as `crossmodal eval` scores it.

    .venv/bin/python benchmarks/paths.py                    # test split, every path this CPU runs
    .venv/bin/python benchmarks/paths.py --split val --no-write

For each path: the lowest and mean cosine of every image's and every caption's vector to the
reference one, and text->image / image->text R@1 with the difference to the reference. The
bf16 path is measured only where the CPU runs bf16 natively (emulated, it would take hours on
the full split) unless `--paths` names it. Each path embeds into a fresh cache folder, so no
path reads another's vectors. Writes its section of docs/benchmarks.md (between
`<!-- paths:start -->` and `<!-- paths:end -->`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- paths:start -->", "<!-- paths:end -->"
LABELS = {
    "0": "reference modules (fp32)",
    "fp32": "fp32 (OpenVINO)",
    "fp32-torch": "fp32 (PyTorch, folded)",
    "bf16": "bf16 (PyTorch/oneDNN)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/flickr8k")
    parser.add_argument("--split", default="test")
    parser.add_argument("--paths", default=None, help="comma list (default: all this CPU runs)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from crossmodal.data import load_dataset
    from crossmodal.eval.evaluate import embed_split, split_ranks
    from crossmodal.eval.metrics import metrics_from_ranks
    from crossmodal.models import load_model
    from crossmodal.models.fast import bf16_supported
    from crossmodal.runtime import describe_machine

    if not (args.root / "captions.tsv").is_file():
        sys.exit(f"no Flickr8k at {args.root}: pass --root")
    paths = (
        args.paths.split(",")
        if args.paths
        else ["0", "fp32", "fp32-torch", *(["bf16"] if bf16_supported() else [])]
    )
    if paths[0] != "0":
        paths = ["0", *[p for p in paths if p != "0"]]
    os.environ["CROSSMODAL_FAST"] = "auto"
    machine = describe_machine()
    print(f"measuring on {machine}", flush=True)
    model = load_model(args.model)
    dataset = load_dataset("flickr8k", args.root, split=args.split)
    rows = []
    reference: dict[str, np.ndarray] = {}
    for path in paths:
        os.environ["CROSSMODAL_FAST"] = path
        print(f"== {LABELS.get(path, path)}: embedding {args.split} ...", flush=True)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="crossmodal-paths-") as cache:
            split = embed_split(model, dataset, cache_dir=cache, show_progress=True)
        seconds = time.perf_counter() - start
        t2i, i2t = split_ranks(model, split)
        m_t2i, m_i2t = metrics_from_ranks(t2i), metrics_from_ranks(i2t)
        if path == "0":
            reference = {"image": split.image_emb, "text": split.text_emb}
        cos_i = np.sum(split.image_emb * reference["image"], axis=1)
        cos_t = np.sum(split.text_emb * reference["text"], axis=1)
        row = {
            "path": path,
            "seconds": seconds,
            "t2i_r1": m_t2i["R@1"],
            "i2t_r1": m_i2t["R@1"],
            "image_cos_min": float(cos_i.min()),
            "image_cos_mean": float(cos_i.mean()),
            "text_cos_min": float(cos_t.min()),
            "text_cos_mean": float(cos_t.mean()),
        }
        rows.append(row)
        print(row, flush=True)
    base = rows[0]
    lines = [
        START,
        "## Inference paths: the same vectors on every CPU (`benchmarks/paths.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine}. Command: "
        f"`python benchmarks/paths.py {' '.join(sys.argv[1:])}`. Model {args.model}, Flickr8k "
        f"{args.split} ({len(reference['image'])} images, {len(reference['text'])} captions), "
        "scored as `crossmodal eval` scores it; every path embeds into its own fresh cache.",
        "",
        "| path | T→I R@1 | Δ | I→T R@1 | Δ | image cosine min / mean | caption cosine min / "
        "mean | embedding s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {LABELS.get(r['path'], r['path'])} | {r['t2i_r1']:.2f} | "
            f"{r['t2i_r1'] - base['t2i_r1']:+.2f} | {r['i2t_r1']:.2f} | "
            f"{r['i2t_r1'] - base['i2t_r1']:+.2f} | {r['image_cos_min']:.5f} / "
            f"{r['image_cos_mean']:.5f} | {r['text_cos_min']:.5f} / {r['text_cos_mean']:.5f} | "
            f"{r['seconds']:.0f} |"
        )
    lines += [
        "",
        "Every path must keep each vector within cosine 0.99 of the reference and move R@1 by "
        "at most 0.5 in both directions (tests pin the cosines on photos; this table is the "
        "whole split). The embedding seconds include decoding and were measured on a shared "
        "machine: speed is in the gallery sections.",
        "",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        text = DOC.read_text() if DOC.is_file() else "# Benchmarks\n"
        if START in text and END in text:
            before, rest = text.split(START, 1)
            text = before + section + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)
        print(f"wrote the paths section of {DOC}")


if __name__ == "__main__":
    main()
