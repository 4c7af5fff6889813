"""Automatic descriptions of a photo, from the image features the index already computed.

Three generators, all fed by the pooled 1280-d features of the collection's EfficientNet
image tower (the vector `crossmodal index` computes anyway before projecting it), so tagging
never runs a network over the pixels a second time:

* **ImageNet tags**: the tower's own ImageNet-1k classifier (EfficientNet's final linear layer,
  kept in the model although retrieval never uses it) applied to those features; every class
  whose probability reaches `tag_threshold` (at most `max_tags`), named in English and Chinese
  (`imagenet_classes.json`, from OFA-Sys/Chinese-CLIP, MIT). A photo whose ImageNet
  probability mass on the dog and wild-dog classes reaches `dog_threshold` is also tagged
  "dog" / "狗".
* **Dog breeds**: for such a photo, the classifier restricted to the 120 Stanford Dogs breeds
  (the dog edition's `dogs/imagenet.py` table) and renormalised, as the breed recogniser's
  ImageNet signal does (`dogs/recognize.py`); each breed reaching `breed_threshold` (at most
  `max_breeds`) becomes a tag named as the dog edition names it (`dogs/breeds.json`, en + zh).
  The recogniser's other signals need the lite0 and lite2 towers, i.e. two more passes over the
  pixels, which indexing does not pay for; `crossmodal dogs identify` still does.
* **Automatic caption** (opt-in: `crossmodal index --auto-captions`): the shipped captioner
  (`models/captioner.py`), which reads exactly these features when the collection's model is
  the one it was trained on.

The default model's tower was fine-tuned for retrieval, yet its ImageNet head still names the
breed of 84 % of Stanford Dogs val photos (87 % of test), and the thresholds below were chosen
on labelled data, never on the test split (`python benchmarks/breed_search.py --thresholds`
prints the table):

* `tag_threshold` 0.3: tags at or above it are right 89 % of the time on Stanford Dogs val
  (the only labelled ImageNet-class photos we have); 0.2 gives 82 %, 0.1 64 %. On Flickr8k val
  14 % of the photos get a tag at 0.3 (most show people, which ImageNet has no class for).
* `dog_threshold` 0.3: on Flickr8k val, 0.5 % of the photos whose captions mention no dog pass
  it, and 82 % of those that do.
* `breed_threshold` 0.3: 91 % of Stanford Dogs val photos get a breed, right 88 % of the time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.dogs.imagenet import IMAGENET_INDEX
from crossmodal.dogs.recognize import dog_mass, softmax
from crossmodal.errors import ModelNotAvailable
from crossmodal.index.descriptions import Description

__all__ = [
    "CLASS_NAMES_PATH",
    "AutoDescriber",
    "TagSettings",
    "breed_guesses",
    "class_names",
    "imagenet_tags",
    "supports_tags",
]

CLASS_NAMES_PATH = Path(__file__).resolve().with_name("imagenet_classes.json")
#: the 120 Stanford Dogs wnids in a fixed order, and their ImageNet columns
_BREED_WNIDS = sorted(IMAGENET_INDEX)
_BREED_COLUMNS = np.array([IMAGENET_INDEX[w] for w in _BREED_WNIDS])
#: text vectors kept in memory by one describer (tags need ~2,200; captions are unique)
_MEMO_LIMIT = 20_000


@dataclass(frozen=True)
class TagSettings:
    """What the generators keep; the values are chosen on data (module docstring)."""

    tag_threshold: float = 0.3
    max_tags: int = 3
    dog_threshold: float = 0.3
    breed_threshold: float = 0.3
    max_breeds: int = 2
    captions: bool = False
    caption_beam: int = 3

    @classmethod
    def for_index(cls, tags: bool, auto_captions: bool) -> bool | TagSettings:
        """`Collection.index`'s `describe` for `--tags/--no-tags` and `--auto-captions` (the
        CLI's and the web API's options): automatic captions bring tags with them."""
        return cls(captions=True) if auto_captions else tags


@lru_cache(maxsize=1)
def class_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(English names, Chinese names) of the 1,000 ImageNet-1k classes, by class index."""
    try:
        data = json.loads(CLASS_NAMES_PATH.read_text(encoding="utf-8"))
        en, zh = tuple(data["en"]), tuple(data["zh"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailable(
            f"cannot read ImageNet class names {CLASS_NAMES_PATH}: {exc}"
        ) from None
    if len(en) != 1000 or len(zh) != 1000:
        raise ModelNotAvailable(f"{CLASS_NAMES_PATH} must name 1000 classes in en and zh")
    return en, zh


def imagenet_tags(
    probs: np.ndarray, settings: TagSettings = TagSettings()
) -> list[list[tuple[int, float]]]:
    """Per image, (class index, probability) of the classes at or above the tag threshold,
    most probable first. Stanford Dogs breeds are left to `breed_guesses` (named as the dog
    edition names them)."""
    probs = np.asarray(probs, np.float64)
    masked = probs.copy()
    masked[:, _BREED_COLUMNS] = 0.0
    out: list[list[tuple[int, float]]] = []
    for row in masked:
        order = np.argsort(-row)[: settings.max_tags]
        out.append([(int(j), float(row[j])) for j in order if row[j] >= settings.tag_threshold])
    return out


def breed_guesses(
    logits: np.ndarray, settings: TagSettings = TagSettings()
) -> list[tuple[float, list[tuple[str, float]]]]:
    """Per image, (dog mass, [(wnid, probability among the 120 breeds)]); the list is empty
    when the photo shows no dog (mass below the dog threshold) or no breed is likely enough."""
    logits = np.asarray(logits, np.float64)
    masses = dog_mass(logits)
    breeds = softmax(logits[:, _BREED_COLUMNS])
    out: list[tuple[float, list[tuple[str, float]]]] = []
    for mass, row in zip(masses, breeds, strict=True):
        found: list[tuple[str, float]] = []
        if mass >= settings.dog_threshold:
            for j in np.argsort(-row)[: settings.max_breeds]:
                if row[j] >= settings.breed_threshold:
                    found.append((_BREED_WNIDS[j], float(row[j])))
        out.append((float(mass), found))
    return out


def supports_tags(model: object) -> bool:
    """True for a model whose image tower carries an ImageNet classifier (our EfficientNet
    dual encoders); CLIP models and torch-free query bundles have none."""
    tower = getattr(model, "image_tower", None)
    return getattr(getattr(tower, "net", None), "_fc", None) is not None


def _confidence(p: float) -> float:
    return round(min(1.0, max(0.0, float(p))), 4)


def _pair(en: str, zh: str, source: str, p: float) -> list[Description]:
    c = _confidence(p)
    return [Description(en, "tag", source, "en", c), Description(zh, "tag", source, "zh", c)]


class AutoDescriber:
    """Descriptions of images from their pooled tower features (n, 1280)."""

    def __init__(self, model: Any, settings: TagSettings = TagSettings()) -> None:
        if not supports_tags(model):
            raise ModelNotAvailable(
                "automatic tags need an image tower with an ImageNet classifier (the "
                "EfficientNet models); this collection's model has none"
            )
        self.model = model
        self.settings = settings
        self._fc = model.image_tower.net._fc
        self._lock = threading.Lock()
        self._text_vectors: dict[str, np.ndarray] = {}
        self._captioner: Any = None
        if settings.captions:
            from crossmodal.models.captioner import check_image_model, load_captioner

            self._captioner = load_captioner()
            check_image_model(self._captioner, model)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """ImageNet-1k logits (n, 1000) through the tower's own classifier."""
        import torch

        with self._lock, torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, np.float32))
            return self._fc(x).float().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """The model's text vectors of descriptions, each distinct text embedded once: tags come
        from a closed list of ~2,200 names, and embedding them (the Chinese ones through the
        multilingual tower and its gloss table, which takes half a minute to load) costs more
        than tagging. Vectors are kept in memory and in the on-disk cache under the model's
        fingerprint, so a later run embeds no tag again."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_vectors))
        if missing:
            if len(self._text_vectors) > _MEMO_LIMIT:  # automatic captions are all different
                self._text_vectors.clear()
            self._text_vectors.update(self._cached_vectors(missing))
        if not texts:
            return np.zeros((0, int(self.model.dim)), np.float32)
        return np.stack([self._text_vectors[t] for t in texts])

    def _cached_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        from crossmodal.models.features import FeatureCache, default_cache_dir, text_digest

        cache = FeatureCache(default_cache_dir(), f"description-vectors:{self.model.fingerprint}")
        try:
            keys = {t: text_digest(t) for t in texts}
            found = cache.get_many(list(keys.values()))
            out = {t: found[k] for t, k in keys.items() if k in found}
            todo = [t for t in texts if t not in out]
            if todo:
                vectors = np.asarray(self.model.encode_texts(todo), np.float32)
                out.update(zip(todo, vectors, strict=True))
                cache.put_many((keys[t], v) for t, v in zip(todo, vectors, strict=True))
            return out
        finally:
            cache.close()

    def describe(self, features: np.ndarray) -> list[list[Description]]:
        """Per image (row of `features`): its tags, breed tags and automatic caption."""
        features = np.asarray(features, np.float32).reshape(-1, self._fc.in_features)
        if not len(features):
            return []
        logits = self.logits(features)
        tags = imagenet_tags(softmax(logits), self.settings)
        breeds = breed_guesses(logits, self.settings)
        captions = self._captions(features)
        en, zh = class_names()
        kb = _knowledge_base()
        out: list[list[Description]] = []
        for n, (found, (mass, dogs)) in enumerate(zip(tags, breeds, strict=True)):
            items: list[Description] = []
            for j, p in found:
                items += _pair(en[j], zh[j], "imagenet", p)
            if mass >= self.settings.dog_threshold:
                items += _pair("dog", "狗", "imagenet", mass)
            for wnid, p in dogs:
                info = kb.by_wnid(wnid)
                items += _pair(info.name_en, info.name_zh, "breed", p)
            if captions and captions[n]:
                items.append(Description(captions[n], "auto_caption", "captioner", "en"))
            out.append(items)
        return out

    def _captions(self, features: np.ndarray) -> list[str] | None:
        if self._captioner is None:
            return None
        import torch

        return self._captioner.caption_features(
            torch.from_numpy(features), beam=self.settings.caption_beam
        )


@lru_cache(maxsize=1)
def _knowledge_base() -> Any:
    from crossmodal.dogs.knowledge import KnowledgeBase

    return KnowledgeBase.load()
