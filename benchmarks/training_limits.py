"""What limits the trained models on Flickr8k: learning curves of the fine-tuning runs and
val recall against the number of training images (heads-only recipe on cached features).

    python benchmarks/training_limits.py --runs runs/finetune-lora-wide-aug runs/finetune-lora
        [--sizes 625,1250,2500,5000] [--gap-models default runs/heads/best]

and, for each `--gap-models` model, recall on 1,000 images it was trained on against the
1,000 val images it never saw (the same gallery size, raw similarities): how much of what a
model knows is memorised training pairs.

Writes docs/training/limits.png and the `limits` section of docs/benchmarks.md. Train and val
splits only: these curves choose and explain, they do not report test scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from docsection import update_section  # noqa: E402


def data_size_curve(root: str, sizes: list[int], work: Path) -> list[dict]:
    from crossmodal.train.config import make_config
    from crossmodal.train.runner import run_training

    rows = []
    for n in sizes:
        out = work / f"heads-{n}"
        if not (out / "summary.json").exists():
            cfg = make_config(
                REPO / "recipes" / "heads.toml", root=root, out=str(out), max_train_images=n
            )
            start = time.perf_counter()
            run_training(cfg, show_progress=False)
            print(f"{n} images: {time.perf_counter() - start:.0f} s", flush=True)
        summary = json.loads((out / "summary.json").read_text())
        val = summary["val"]
        rows.append(
            {
                "images": n,
                "mean_recall": summary["score"],
                "t2i_r1": val["t2i"]["R@1"],
                "i2t_r1": val["i2t"]["R@1"],
            }
        )
    return rows


def generalisation_gap(root: str, models: list[str], n_images: int) -> list[dict]:
    """Raw recall on the first `n_images` train images (seen in training) and on as many val
    images (never seen), with the same gallery size so the two are comparable."""
    from crossmodal.data import load_dataset
    from crossmodal.eval.evaluate import embed_split
    from crossmodal.eval.metrics import retrieval_metrics
    from crossmodal.models import load_model

    rows = []
    for name in models:
        model = load_model(name)
        row: dict = {"model": name}
        for split in ("train", "val"):
            ds = load_dataset("flickr8k", root, split=split)
            ds = ds.subset(np.arange(min(n_images, len(ds.image_paths))))
            emb = embed_split(model, ds, show_progress=False)
            metrics = retrieval_metrics(emb.image_emb, emb.text_emb, emb.caption_image)
            row[split] = {d: metrics[d]["R@1"] for d in ("t2i", "i2t")}
            row[f"{split}_images"] = len(emb.image_paths)
        rows.append(row)
        print(f"{name}: {row}", flush=True)
    return rows


def read_log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def plot(rows: list[dict], runs: list[Path], gaps: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if gaps else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5))
    ax = axes[0]
    n = np.array([r["images"] for r in rows], float)
    for key, label in (("t2i_r1", "text→image R@1"), ("i2t_r1", "image→text R@1")):
        y = np.array([r[key] for r in rows])
        ax.plot(n, y, "o-", label=label)
        slope, icpt = np.polyfit(np.log2(n), y, 1)
        ext = np.array([n[-1], 6000, 30000])
        ax.plot(
            ext,
            slope * np.log2(ext) + icpt,
            ":",
            color=ax.lines[-1].get_color(),
            label=f"{label}: +{slope:.1f} per doubling (extrapolated)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images (5 captions each)")
    ax.set_ylabel("val recall@1 (%)")
    ax.set_title("Heads-only recipe: more data keeps helping")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for run in runs:
        log = read_log(run)
        epochs = [r["epoch"] for r in log]
        ax.plot(epochs, [r["val_mean_recall"] for r in log], "o-", label=f"{run.name} val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mean recall (%)")
    ax.set_title("Fine-tuning: val flattens while train loss keeps falling")
    twin = ax.twinx()
    for run in runs:
        log = read_log(run)
        twin.plot([r["epoch"] for r in log], [r["loss"] for r in log], "--", alpha=0.5)
    twin.set_ylabel("train loss (dashed)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    if gaps:
        ax = axes[2]
        width = 0.2
        for j, (split, direction) in enumerate(
            (("train", "t2i"), ("val", "t2i"), ("train", "i2t"), ("val", "i2t"))
        ):
            x = np.arange(len(gaps)) + (j - 1.5) * width
            label = f"{direction.replace('2', '→').upper()} on {split} images"
            ax.bar(
                x,
                [g[split][direction] for g in gaps],
                width,
                label=label,
                alpha=0.55 if split == "train" else 1.0,
            )
        ax.set_xticks(np.arange(len(gaps)), [g["model"] for g in gaps], fontsize=8)
        ax.set_ylabel("recall@1 (%), 1,000-image gallery")
        ax.set_title("Seen vs unseen images: memorised, not learned")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--sizes", default="625,1250,2500,5000")
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    parser.add_argument(
        "--gap-models", nargs="*", default=[], help="models whose seen-vs-unseen recall to measure"
    )
    parser.add_argument("--gap-images", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "limits")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    rows = data_size_curve(args.root, [int(s) for s in args.sizes.split(",")], args.work)
    gaps = generalisation_gap(args.root, args.gap_models, args.gap_images)
    image = REPO / "docs" / "training" / "limits.png"
    plot(rows, args.runs, gaps, image)
    gap_flags = " --gap-models " + " ".join(args.gap_models) if args.gap_models else ""
    lines = [
        "<!-- limits:start -->",
        "## What limits the trained models (train and val splits)",
        "",
        "`python benchmarks/training_limits.py --runs "
        + " ".join(str(r) for r in args.runs)
        + gap_flags
        + "`: the heads-only recipe (`recipes/heads.toml`) trained on the first N train "
        "images, and the learning curves of the fine-tuning runs named.",
        "",
        "| train images | val mean recall | T→I R@1 | I→T R@1 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['images']} | {r['mean_recall']:.2f} | {r['t2i_r1']:.2f} | {r['i2t_r1']:.2f} |"
        for r in rows
    ]
    for run in args.runs:
        log = read_log(run)
        best = max(log, key=lambda r: r["val_mean_recall"])
        lines.append("")
        lines.append(
            f"`{run.name}`: best val mean recall {best['val_mean_recall']:.2f} at "
            f"epoch {best['epoch']} of {len(log)}; train loss {log[0]['loss']:.2f} → "
            f"{log[-1]['loss']:.2f}."
        )
    if gaps:
        lines += [
            "",
            f"Seen vs unseen (`--gap-models {' '.join(args.gap_models)}`): raw recall@1 on the "
            f"first {args.gap_images:,} train images with their captions, which the model "
            "trained on, and on as many val images, which it never saw — the same gallery "
            "size, so the two are comparable.",
            "",
            "| model | T→I R@1 train / val | I→T R@1 train / val |",
            "|---|---|---|",
        ]
        lines += [
            f"| {g['model']} | {g['train']['t2i']:.2f} / {g['val']['t2i']:.2f} | "
            f"{g['train']['i2t']:.2f} / {g['val']['i2t']:.2f} |"
            for g in gaps
        ]
    lines += ["", "![data size and learning curves](training/limits.png)", "<!-- limits:end -->"]
    body = "\n".join(lines)
    print(body)
    update_section(args.doc, "limits", body)


if __name__ == "__main__":
    main()
