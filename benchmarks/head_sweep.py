"""Model selection for the default model: tower sizes x head shapes, scored on Flickr8k *val*.

Test is never looked at here: the winner is trained by `crossmodal train` with the
chosen flags and scored once on test by `crossmodal eval`. Writes docs/model-selection.md.

    python benchmarks/head_sweep.py [--root ../shared/data/flickr8k] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from crossmodal.data import load_dataset
from crossmodal.models.dual import DualEncoder
from crossmodal.models.features import default_cache_dir
from crossmodal.train.heads import (
    HeadConfig,
    fit_heads,
    model_config,
    split_features,
    text_tower_spec,
)

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--towers", default="lite0,lite2")
    parser.add_argument("--texts", default="minilm")
    parser.add_argument("--hidden", default="0,1024,2048")
    parser.add_argument("--dropout", default="0.1,0.3")
    parser.add_argument("--embed-dim", default="256")
    parser.add_argument("--lr", default="1e-3")
    parser.add_argument("--wd", default="0.05")
    parser.add_argument("--batch", default="256")
    parser.add_argument("--out", default=str(REPO / "docs" / "model-selection.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_ds = load_dataset("flickr8k", args.root, split="train")
    val_ds = load_dataset("flickr8k", args.root, split="val")
    rows = []
    for tower, text in itertools.product(args.towers.split(","), args.texts.split(",")):
        base = HeadConfig(
            root=args.root,
            image_tower={"type": "efficientnet", "variant": tower},
            text_tower=text_tower_spec(text),
        )
        probe = DualEncoder(model_config(base))
        train = split_features(probe, train_ds, default_cache_dir(), flip=True)
        val = split_features(probe, val_ds, default_cache_dir())
        grid = itertools.product(
            [int(h) for h in args.hidden.split(",")],
            [float(d) for d in args.dropout.split(",")],
            [int(e) for e in args.embed_dim.split(",")],
            [float(x) for x in args.lr.split(",")],
            [float(x) for x in args.wd.split(",")],
            [int(x) for x in args.batch.split(",")],
        )
        for hidden, dropout, dim, lr, wd, batch in grid:
            cfg = replace(
                base,
                image_hidden=hidden,
                text_hidden=hidden,
                dropout=dropout,
                embed_dim=dim,
                lr=lr,
                weight_decay=wd,
                batch_size=batch,
            )
            torch.manual_seed(cfg.seed)
            model = DualEncoder(model_config(cfg), build_towers=False)
            start = time.perf_counter()
            best = fit_heads(model, train, val, cfg, show_progress=False)
            row = {
                "image": tower,
                "text": text,
                "hidden": hidden,
                "dropout": dropout,
                "dim": dim,
                "lr": lr,
                "wd": wd,
                "batch": batch,
                "epoch": best["epoch"],
                "val_mean_recall": best["score"],
                "t2i_R@1": best["val"]["t2i"]["R@1"],
                "i2t_R@1": best["val"]["i2t"]["R@1"],
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    rows.sort(key=lambda r: -r["val_mean_recall"])
    lines = [
        "# Default model selection (Flickr8k val split)",
        "",
        "Frozen towers, heads trained on the train split (5,000 images, mirrored views as",
        "augmentation), early-stopped and ranked on **val** mean recall (mean of R@1/5/10 in",
        "both directions). Test is not used here. Produced by:",
        "",
        "    .venv/bin/python benchmarks/head_sweep.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k in ("towers", "texts", "hidden", "dropout", "embed_dim", "lr", "wd", "batch")
        ),
        "",
        "| image tower | text tower | head hidden | dropout | dim | lr | wd | batch | best epoch "
        "| val mean R | val T→I R@1 | val I→T R@1 | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['image']} | {r['text']} | {r['hidden']} | {r['dropout']} | {r['dim']} | "
            f"{r['lr']} | {r['wd']} | {r['batch']} | {r['epoch']} | "
            f"{r['val_mean_recall']:.2f} | {r['t2i_R@1']:.2f} | {r['i2t_R@1']:.2f} | "
            f"{r['seconds']} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
