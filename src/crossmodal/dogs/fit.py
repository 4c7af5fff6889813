"""Refit the breed recogniser's small learned parts: `crossmodal dogs fit`.

What is fitted where (the test split is never read here; `benchmarks/dogs.py` scores it once):

* per tower, a multinomial logistic-regression probe on pooled features: fitted on the
  Stanford Dogs **train** split; its regularisation C is picked from a small grid by val NLL;
* the non-negative mixing weights of the signals (ImageNet-restricted + probe, per tower):
  fitted on **val** by minimising the negative log-likelihood, which also calibrates the scores;
* the not-a-dog threshold on the ImageNet dog-class mass: chosen on **val** images, Stanford
  Dogs val plus Flickr8k val photos whose captions mention a dog (positives) against Flickr8k
  val photos whose captions mention none (negatives), maximising TPR - FPR.

Features come from the shared on-disk cache, so a refit after the first costs a minute or two.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.data import ImageTextDataset, LabeledImageDataset, load_dataset
from crossmodal.dogs.features import DEFAULT_VARIANTS, imagenet_logits, tower_features
from crossmodal.dogs.imagenet import IMAGENET_INDEX
from crossmodal.dogs.recognize import (
    PROBE_PATH,
    ProbeParams,
    combine,
    dog_mass,
    log_softmax,
    signal_scores,
)
from crossmodal.errors import DatasetError

__all__ = [
    "DOG_WORDS",
    "choose_threshold",
    "fit_mixing_weights",
    "fit_recognizer",
    "mentions_dog",
    "topk_accuracy",
]

#: Caption words that mark a Flickr8k photo as showing a dog ("hot dog" is food, not a dog).
DOG_WORDS = re.compile(r"(?<!hot )\b(dog|dogs|doggy|doggie|puppy|puppies|pup|pups)\b", re.I)

C_GRID: tuple[float, ...] = (0.3, 1.0, 3.0)


def mentions_dog(captions: Sequence[str]) -> bool:
    """True when any caption mentions a dog or puppy."""
    return any(DOG_WORDS.search(c) for c in captions)


def caption_dog_labels(ds: ImageTextDataset) -> np.ndarray:
    """Per image: does any of its captions mention a dog?"""
    return np.array(
        [mentions_dog([ds.captions[c] for c in caps]) for caps in ds.image_captions], dtype=bool
    )


def topk_accuracy(logp: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    if len(labels) == 0:
        return float("nan")
    top = np.argsort(-logp, axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def nll(logp: np.ndarray, labels: np.ndarray) -> float:
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_mixing_weights(signals: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """Non-negative weights minimising the NLL of softmax(sum_k w_k * signal_k)."""
    from scipy.optimize import minimize

    keys = sorted(signals)
    stack = np.stack([signals[k] for k in keys])  # (K, n, C)
    idx = np.arange(len(labels))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        lp = log_softmax(np.tensordot(w, stack, axes=1))
        p = np.exp(lp)
        value = -lp[idx, labels].mean()
        # d/dw_k of -mean log p_y = -mean(s_k[y] - sum_c p_c s_k[c])
        grad = -(stack[:, idx, labels] - (stack * p[None]).sum(axis=2)).mean(axis=1)
        return float(value), grad

    start = np.full(len(keys), 1.0 / len(keys))
    res = minimize(loss, start, jac=True, bounds=[(0.0, None)] * len(keys), method="L-BFGS-B")
    return {k: round(float(w), 6) for k, w in zip(keys, res.x, strict=True)}


def choose_threshold(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float, float]:
    """Threshold on a score maximising TPR - FPR; ties go to the lower FPR. (t, tpr, fpr)"""
    best = (-1.0, 0.0, 0.0, 0.0)
    for t in np.round(np.arange(0.01, 1.0, 0.01), 2):
        tpr = float((pos >= t).mean())
        fpr = float((neg >= t).mean())
        j = tpr - fpr
        if j > best[0] + 1e-12 or (abs(j - best[0]) <= 1e-12 and fpr < best[3]):
            best = (j, float(t), tpr, fpr)
    return best[1], best[2], best[3]


def _dogs_split(root: Path, split: str) -> LabeledImageDataset:
    ds = load_dataset("stanford-dogs", root, split=split)
    if not isinstance(ds, LabeledImageDataset):  # pragma: no cover - loader contract
        raise DatasetError(f"{root} did not load as a labelled dataset")
    missing = sorted(set(ds.class_ids) - set(IMAGENET_INDEX))
    if missing:
        raise DatasetError(
            f"{root}: classes {', '.join(missing[:3])} are not Stanford Dogs classes "
            "(the recogniser knows exactly the 120 Stanford Dogs breeds)"
        )
    return ds


def _fit_probe(
    variant: str,
    f_train: np.ndarray,
    f_val: np.ndarray,
    train: LabeledImageDataset,
    val: LabeledImageDataset,
    c_grid: Sequence[float],
    log: Any,
) -> Any:
    """The logistic-regression probe of one tower, its C picked from `c_grid` by val NLL."""
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, Any] | None = None
    for c in c_grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs convergence chatter at max_iter
            model = LogisticRegression(C=c, max_iter=3000).fit(f_train, train.labels)
        score = nll(log_softmax(model.decision_function(f_val)), val.labels)
        log(f"  {variant}: probe C={c:g} val NLL {score:.3f}")
        if best is None or score < best[0]:
            best = (score, model)
    assert best is not None
    return best[1]


def _fit_dog_threshold(
    dog_pos: np.ndarray,
    flickr_root: str | Path | None,
    variants: Sequence[str],
    show_progress: bool,
) -> tuple[float, float, float, dict[str, Any]]:
    """The not-a-dog threshold on val dog mass: (threshold, tpr, fpr, what Flickr8k gave)."""
    flickr_info: dict[str, Any] = {"used": False}
    neg = np.zeros(0)
    pos = dog_pos
    if flickr_root is not None and Path(flickr_root).exists():
        fl = load_dataset("flickr8k", flickr_root, split="val")
        assert isinstance(fl, ImageTextDataset)
        has_dog = caption_dog_labels(fl)
        fm = []
        for v in variants:
            res = tower_features(v, fl.image_paths, show_progress=show_progress)
            if not res.ok.all():
                raise DatasetError(f"cannot read Flickr8k image {res.failures[0][0]}")
            fm.append(dog_mass(imagenet_logits(v, res.vectors)))
        fl_mass = np.mean(fm, axis=0)
        neg = fl_mass[~has_dog]
        pos = np.concatenate([dog_pos, fl_mass[has_dog]])
        flickr_info = {
            "used": True,
            "val_images_without_dog": int((~has_dog).sum()),
            "val_images_with_dog": int(has_dog.sum()),
        }
    if len(neg):
        threshold, tpr, fpr = choose_threshold(pos, neg)
    else:
        # no negatives to choose against: a conservative default, said so in meta
        threshold, tpr, fpr = 0.3, float((pos >= 0.3).mean()), float("nan")
    return threshold, tpr, fpr, flickr_info


def fit_recognizer(
    dogs_root: str | Path,
    flickr_root: str | Path | None,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    c_grid: Sequence[float] = C_GRID,
    show_progress: bool = True,
    log: Any = print,
) -> ProbeParams:
    """Fit probes (train), mixing weights and dog threshold (val); returns the parameters."""
    t0 = time.time()
    dogs_root = Path(dogs_root)
    train = _dogs_split(dogs_root, "train")
    val = _dogs_split(dogs_root, "val")
    wnids = list(train.class_ids)
    # labels index class_ids, which the loader sorts; the probe's rows follow the same order
    coef: dict[str, np.ndarray] = {}
    intercept: dict[str, np.ndarray] = {}
    chosen_c: dict[str, float] = {}
    signals: dict[str, np.ndarray] = {}
    masses: list[np.ndarray] = []
    for v in variants:
        f_train = tower_features(v, train.image_paths, show_progress=show_progress)
        f_val = tower_features(v, val.image_paths, show_progress=show_progress)
        if f_train.failures or f_val.failures:
            bad = (f_train.failures + f_val.failures)[0]
            raise DatasetError(f"cannot read dog image {bad[0]}: {bad[1]}")
        model = _fit_probe(v, f_train.vectors, f_val.vectors, train, val, c_grid, log)
        chosen_c[v] = float(model.C)
        coef[v] = model.coef_.astype(np.float32)
        intercept[v] = model.intercept_.astype(np.float32)
        logits = imagenet_logits(v, f_val.vectors)
        masses.append(dog_mass(logits))
        tmp = ProbeParams(wnids, [v], coef, intercept, {v: False}, {}, 0.5)
        signals.update(signal_scores(tmp, v, f_val.vectors, logits))

    per_signal = {
        key: {"top1": topk_accuracy(lp, val.labels, 1), "top5": topk_accuracy(lp, val.labels, 5)}
        for key, lp in signals.items()
    }
    weights = fit_mixing_weights(signals, val.labels)
    mixed = np.log(np.maximum(combine(signals, weights), 1e-300))
    log(f"  mixing weights (val NLL): {weights}")

    threshold, tpr, fpr, flickr_info = _fit_dog_threshold(
        np.mean(masses, axis=0), flickr_root, variants, show_progress
    )
    log(f"  not-a-dog threshold {threshold:.2f} (val TPR {tpr:.3f}, FPR {fpr:.3f})")

    import sklearn

    return ProbeParams(
        wnids=wnids,
        variants=list(variants),
        coef=coef,
        intercept=intercept,
        feature_norm=dict.fromkeys(variants, False),
        weights=weights,
        dog_threshold=float(threshold),
        meta={
            "fitted_on": {
                "probe": f"stanford-dogs train split ({len(train)} images, seed 0)",
                "weights_and_threshold": f"stanford-dogs val split ({len(val)} images)"
                + (" + flickr8k val" if flickr_info["used"] else ""),
            },
            "probe_C": chosen_c,
            "val_per_signal": per_signal,
            "val_mixed_in_sample": {
                "top1": topk_accuracy(mixed, val.labels, 1),
                "top5": topk_accuracy(mixed, val.labels, 5),
                "note": "val also chose the weights, so this is optimistic; see benchmarks/dogs.py",
            },
            "dog_threshold_val": {"tpr": tpr, "fpr": fpr, **flickr_info},
            "sklearn": sklearn.__version__,
            "seconds": round(time.time() - t0, 1),
        },
    )


def fit_and_save(
    dogs_root: str | Path,
    flickr_root: str | Path | None,
    out: str | Path = PROBE_PATH,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    show_progress: bool = True,
    log: Any = print,
) -> ProbeParams:
    """`fit_recognizer` and write the result (default: the packaged `breed_probe.npz`)."""
    params = fit_recognizer(dogs_root, flickr_root, variants, show_progress=show_progress, log=log)
    params.save(out)
    # reset the in-process recogniser so it picks the new file up
    from crossmodal.dogs import recognize

    recognize._recognizer = None
    return params
