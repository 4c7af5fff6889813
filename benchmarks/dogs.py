"""Breed recognition and not-a-dog detection, scored once on held-out data.

* breeds: top-1 / top-5 of the packaged recogniser (`src/crossmodal/dogs/breed_probe.npz`)
  on the Stanford Dogs **test** split (stratified 60/20/20, seed 0; 600 images, 5 per breed),
  which nothing in `crossmodal dogs fit` reads; each single signal is listed too.
* not-a-dog: precision / recall of `is_dog` on Stanford Dogs test + Flickr8k **test**, a Flickr
  photo counting as a dog when any of its captions mentions a dog or puppy.

Caveat: the EfficientNet-Lite towers were pretrained on ImageNet-1k, and Stanford Dogs was built
from ImageNet, so these test images may well have been training images of the towers.

    .venv/bin/python benchmarks/dogs.py [--dogs ../shared/data/stanford_dogs]
        [--flickr ../shared/data/flickr8k] [--out docs/dogs-benchmark.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from crossmodal.data import ImageTextDataset, LabeledImageDataset, load_dataset
from crossmodal.dogs.features import imagenet_logits, tower_features
from crossmodal.dogs.fit import caption_dog_labels, topk_accuracy
from crossmodal.dogs.recognize import BreedRecognizer, dog_mass, signal_scores

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _features(rec: BreedRecognizer, paths: list[Path]) -> dict[str, np.ndarray]:
    out = {}
    for v in rec.variants:
        res = tower_features(v, paths, show_progress=True)
        if not res.ok.all():
            raise SystemExit(f"cannot read {res.failures[0][0]}: {res.failures[0][1]}")
        out[v] = res.vectors
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dogs", default=str(DATA / "stanford_dogs"))
    parser.add_argument("--flickr", default=str(DATA / "flickr8k"))
    parser.add_argument("--out", default=str(REPO / "docs" / "dogs-benchmark.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()

    rec = BreedRecognizer()
    test = load_dataset("stanford-dogs", args.dogs, split="test")
    assert isinstance(test, LabeledImageDataset)
    if list(test.class_ids) != rec.params.wnids:
        raise SystemExit("the test classes differ from the ones the probe was fitted on")
    feats = _features(rec, test.image_paths)
    probs, mass = rec.score_features(feats)
    logp = np.log(np.maximum(probs, 1e-300))
    y = test.labels
    breeds = {
        "split": f"stanford-dogs test ({len(test)} images, {len(test.class_ids)} breeds)",
        "top1": topk_accuracy(logp, y, 1),
        "top5": topk_accuracy(logp, y, 5),
        "mean_top1_score": float(probs.max(axis=1).mean()),
        "per_signal": {},
    }
    for v in rec.variants:
        sig = signal_scores(rec.params, v, feats[v], imagenet_logits(v, feats[v]))
        for key, lp in sig.items():
            breeds["per_signal"][key] = {
                "top1": topk_accuracy(lp, y, 1),
                "top5": topk_accuracy(lp, y, 5),
            }

    # --- not-a-dog on a mixed held-out set
    fl = load_dataset("flickr8k", args.flickr, split="test")
    assert isinstance(fl, ImageTextDataset)
    has_dog = caption_dog_labels(fl)
    fl_feats = _features(rec, fl.image_paths)
    fl_mass = np.mean([dog_mass(imagenet_logits(v, fl_feats[v])) for v in rec.variants], axis=0)
    t = rec.params.dog_threshold
    truth = np.concatenate([np.ones(len(test), bool), has_dog])
    said = np.concatenate([mass >= t, fl_mass >= t])
    tp = int((said & truth).sum())
    fp = int((said & ~truth).sum())
    fn = int((~said & truth).sum())
    not_dog = {
        "set": (
            f"stanford-dogs test ({len(test)} dogs) + flickr8k test ({len(fl)} photos: "
            f"{int(has_dog.sum())} whose captions mention a dog, {int((~has_dog).sum())} none)"
        ),
        "threshold": t,
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "recall_stanford_test": float((mass >= t).mean()),
        "recall_flickr_dog_photos": float((fl_mass[has_dog] >= t).mean()),
        "false_positive_rate_flickr_no_dog": float((fl_mass[~has_dog] >= t).mean()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }
    result = {
        "breeds": breeds,
        "not_a_dog": not_dog,
        "weights": rec.params.weights,
        "seconds": round(time.time() - t0, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Breed recognition, {breeds['split']}:")
    print(f"  top-1 {100 * breeds['top1']:.1f} %   top-5 {100 * breeds['top5']:.1f} %")
    for key, m in breeds["per_signal"].items():
        print(f"    {key:16s} top-1 {100 * m['top1']:.1f} %   top-5 {100 * m['top5']:.1f} %")
    print(f"Not-a-dog (is_dog = dog-class mass >= {t:.2f}), {not_dog['set']}:")
    print(
        f"  precision {100 * not_dog['precision']:.1f} %   recall {100 * not_dog['recall']:.1f} %"
        f"   (Stanford test recall {100 * not_dog['recall_stanford_test']:.1f} %, Flickr dog "
        f"photos {100 * not_dog['recall_flickr_dog_photos']:.1f} %, false positives on Flickr "
        f"photos without dogs {100 * not_dog['false_positive_rate_flickr_no_dog']:.1f} %)"
    )
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
