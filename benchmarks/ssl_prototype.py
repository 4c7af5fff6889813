"""Train a small CLIP from scratch on Flickr8k (SimSiam + MLM + InfoNCE), CPU-bounded.

The measured run (about ten minutes on two CPU cores) uses SSLConfig's defaults:

    python benchmarks/ssl_prototype.py --root ../shared/data/flickr8k --out runs/ssl

then scores the saved model once per split, exactly as any other model:

    crossmodal eval --model runs/ssl/best --dataset flickr8k \
        --root ../shared/data/flickr8k --split val
    crossmodal eval --model runs/ssl/best --dataset flickr8k \
        --root ../shared/data/flickr8k --split test

`--quick` trains on 500 images for one epoch per stage (a smoke run of about a minute).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from crossmodal.train.ssl import SSLConfig, train_ssl

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    defaults = SSLConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--out", default=str(REPO / "runs" / "ssl"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--text-width", type=int, default=defaults.text_width)
    parser.add_argument("--simsiam-epochs", type=int, default=defaults.simsiam_epochs)
    parser.add_argument("--mlm-epochs", type=int, default=defaults.mlm_epochs)
    parser.add_argument("--align-epochs", type=int, default=defaults.align_epochs)
    parser.add_argument("--max-train-images", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="500 images, 1 epoch per stage")
    args = parser.parse_args()
    cfg = SSLConfig(
        root=args.root,
        out=args.out,
        device=args.device,
        image_size=args.image_size,
        text_width=args.text_width,
        simsiam_epochs=args.simsiam_epochs,
        mlm_epochs=args.mlm_epochs,
        align_epochs=args.align_epochs,
        max_train_images=args.max_train_images,
        seed=args.seed,
        threads=args.threads,
    )
    if args.quick:
        cfg.max_train_images, cfg.max_val_images = 500, 200
        cfg.simsiam_epochs = cfg.mlm_epochs = cfg.align_epochs = 1
    print(json.dumps(asdict(cfg)))
    start = time.perf_counter()
    best = train_ssl(cfg).best_dir
    wall = time.perf_counter() - start
    summary = json.loads((Path(cfg.out) / "summary.json").read_text())
    print(f"saved {best} in {wall:.0f} s wall")
    print(json.dumps({k: summary[k] for k in ("best_val_mean_recall", "best_epoch", "seconds")}))


if __name__ == "__main__":
    main()
