"""Choose the Chinese path's training settings on val: for each setting, fit the USE head onto
a model and score the hand-translated *val* queries (tests/fixtures/chinese_queries_val.json)
in Chinese and English. The test fixture is not read here.

    python benchmarks/multilingual_sweep.py --model runs/finetune-lora-wide-aug/best \\
        --noise 0,0.5,1.0 --hidden 0,1024
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from chinese_queries import score  # noqa: E402
from docsection import update_section  # noqa: E402

from crossmodal.train.multilingual import add_multilingual_head  # noqa: E402

VAL_FIXTURE = REPO / "tests" / "fixtures" / "chinese_queries_val.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--noise", default="0,0.5,0.7,1.0")
    parser.add_argument("--hidden", default="0", help="head MLP widths to try (0 = linear)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "multilingual-sweep")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    lines = [
        "<!-- chinese-sweep:start -->",
        "## Chinese path: settings chosen on val",
        "",
        f"`python benchmarks/multilingual_sweep.py --model {args.model} --noise {args.noise} "
        f"--hidden {args.hidden}`: the USE head fitted with each input-noise level, scored on "
        "40 hand-translated *val* captions (`tests/fixtures/chinese_queries_val.json`) over the "
        "1,000 val images.",
        "",
        "| hidden | input noise | en R@1 | en R@5 | zh R@1 | zh R@5 | zh R@10 | gap R@5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for hidden in [int(x) for x in args.hidden.split(",")]:
        for noise in [float(x) for x in args.noise.split(",")]:
            out = args.work / f"noise-{noise:g}-h{hidden}"
            if not (out / "config.json").exists():
                add_multilingual_head(
                    args.model,
                    out,
                    root=args.root,
                    input_noise=noise,
                    hidden=hidden,
                    show_progress=False,
                )
            result = score(str(out), args.root, fixture=VAL_FIXTURE, split="val")
            en, zh = result["en"], result["zh"]
            lines.append(
                f"| {hidden} | {noise:g} | {en['R@1']:.1f} | {en['R@5']:.1f} | "
                f"{zh['R@1']:.1f} | {zh['R@5']:.1f} | {zh['R@10']:.1f} | "
                f"{en['R@5'] - zh['R@5']:.1f} |"
            )
            print(lines[-1], flush=True)
    lines.append("<!-- chinese-sweep:end -->")
    update_section(args.doc, "chinese-sweep", "\n".join(lines))


if __name__ == "__main__":
    main()
