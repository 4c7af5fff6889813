"""The recipes table of docs/training.md: every run folder's best model scored on the Flickr8k
test split (`crossmodal eval`'s code path), beside its val selection score, wall time and
hardware.

    python benchmarks/training_table.py runs/heads runs/finetune-lora-wide-aug …

A run folder is what `crossmodal train --out RUN` writes (best/, summary.json, config.toml);
the command column names the recipe file of the same name under recipes/ when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from docsection import update_section  # noqa: E402


def score(best: Path, root: str) -> dict:
    from crossmodal.data import load_dataset
    from crossmodal.eval.evaluate import evaluate
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir

    model = load_model(str(best))
    return evaluate(
        model,
        load_dataset("flickr8k", root, split="test"),
        cache_dir=default_cache_dir(),
        show_progress=False,
    )


def row(run: Path, root: str) -> str:
    summary = json.loads((run / "summary.json").read_text())
    info = json.loads((run / "best" / "config.json").read_text()).get("info", {})
    result = score(run / "best", root)
    recipe = REPO / "recipes" / f"{run.name}.toml"
    verb = "train-ssl" if str(info.get("recipe", "")).startswith("ssl") else "train"
    command = (
        f"`crossmodal {verb} --config recipes/{recipe.name}`"
        if recipe.exists()
        else f"see `{run}/config.toml`"
    )
    score_val = summary.get("score", summary.get("best_val_mean_recall"))
    epoch = summary.get("epoch", summary.get("best_epoch"))
    seconds = summary.get("seconds")
    if not isinstance(seconds, int | float):  # the SSL recipe times each stage separately
        seconds = info.get("train_seconds", 0.0)
    t, i = result["t2i"], result["i2t"]
    cells = [
        f"**{run.name}**<br>{info.get('recipe', 'heads only')}",
        f"{t['R@1']:.2f} / {t['R@5']:.2f} / {t['R@10']:.2f}",
        f"{t['MRR']:.3f}",
        f"{i['R@1']:.2f} / {i['R@5']:.2f} / {i['R@10']:.2f}",
        f"{i['MRR']:.3f}",
        f"{score_val:.2f} (epoch {epoch})",
        f"{seconds / 60:.1f} min, {info.get('device', 'cpu')}",
        command,
    ]
    print(run.name, t["R@1"], i["R@1"], flush=True)
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "training.md")
    args = parser.parse_args()
    lines = [
        "<!-- recipes:start -->",
        "| run | T→I R@1 / 5 / 10 | T→I MRR | I→T R@1 / 5 / 10 | I→T MRR | val mean recall "
        "(selection) | wall time, hardware | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(run, args.root) for run in args.runs]
    lines += [
        "",
        "Produced by `python benchmarks/training_table.py "
        + " ".join(str(r) for r in args.runs)
        + "` (Flickr8k test, 1,000 images, 5,000 "
        "captions).",
        "<!-- recipes:end -->",
    ]
    body = "\n".join(lines)
    print(body)
    update_section(args.doc, "recipes", body)


if __name__ == "__main__":
    main()
