"""Text -> text search over the knowledge base's passages (the QA fallback), zh and en.

Passages (`KnowledgeBase.passages(lang)`) are embedded with the multilingual Universal Sentence
Encoder, which puts Chinese and English in one space. Embedding all ~600 passages of a language
takes tens of seconds on two cores, so vectors are kept in memory per process and on disk in the
shared feature cache (keyed by the text's hash, namespace of the USE tower), and each language is
embedded only when a question in it first needs it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmodal.dogs.knowledge import KnowledgeBase

__all__ = ["Passage", "PassageIndex", "get_passage_index"]


@dataclass
class Passage:
    wnid: str
    text: str
    score: float


_encoder_lock = threading.Lock()
_encoder = None


def _use():
    """The multilingual USE tower, built once per process (~2 s)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from crossmodal.models.towers import USETower

            _encoder = USETower()
        return _encoder


def encode_texts(
    texts: list[str], cache_dir: str | Path | bool | None = True, show_progress: bool = False
) -> np.ndarray:
    """USE vectors (n, 512), unit length, through the shared on-disk cache."""
    from tqdm.auto import tqdm

    from crossmodal.models.features import FeatureCache, default_cache_dir, text_digest

    tower = _use()
    root = default_cache_dir() if cache_dir is True else (cache_dir or None)
    # same namespace as `embed_texts` uses for this tower, so the two share vectors
    cache = FeatureCache(root, f"text-features:{tower.fingerprint()}") if root else None
    keys = [text_digest(t) for t in texts]
    found = cache.get_many(keys) if cache else {}
    todo = [i for i, k in enumerate(keys) if k not in found]
    new: dict[str, np.ndarray] = {}
    bar = tqdm(
        total=len(todo),
        desc="embedding passages",
        unit="text",
        disable=not show_progress or not todo,
    )
    for start in range(0, len(todo), 64):
        chunk = todo[start : start + 64]
        vecs = tower([texts[i] for i in chunk]).numpy()
        for i, v in zip(chunk, vecs, strict=True):
            new[keys[i]] = v
        bar.update(len(chunk))
    bar.close()
    if cache:
        cache.put_many(new.items())
        cache.close()
    table = {**found, **new}
    if not texts:
        return np.zeros((0, 512), np.float32)
    out = np.stack([table[k] for k in keys]).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class PassageIndex:
    """Passages of one knowledge base, embedded lazily per language."""

    def __init__(self, kb: KnowledgeBase, cache_dir: str | Path | bool | None = True) -> None:
        self.kb = kb
        self.cache_dir = cache_dir
        self._vectors: dict[str, np.ndarray] = {}
        self._passages: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def _ensure(self, lang: str, show_progress: bool) -> None:
        with self._lock:
            if lang not in self._vectors:
                passages = self.kb.passages(lang)
                self._vectors[lang] = encode_texts(
                    [t for _, t in passages], self.cache_dir, show_progress
                )
                self._passages[lang] = passages

    def search(
        self,
        query: str,
        lang: str,
        k: int = 3,
        wnids: set[str] | None = None,
        show_progress: bool = False,
    ) -> list[Passage]:
        """Top-k passages in `lang` by cosine similarity (optionally only of some breeds)."""
        self._ensure(lang, show_progress)
        q = encode_texts([query], cache_dir=False)[0]
        scores = self._vectors[lang] @ q
        passages = self._passages[lang]
        order = np.argsort(-scores)
        out: list[Passage] = []
        for i in order:
            wnid, text = passages[i]
            if wnids is not None and wnid not in wnids:
                continue
            out.append(Passage(wnid, text, float(scores[i])))
            if len(out) >= k:
                break
        return out


_indexes: dict[int, PassageIndex] = {}


def get_passage_index(kb: KnowledgeBase) -> PassageIndex:
    """One index per knowledge-base object, kept for the life of the process."""
    index = _indexes.get(id(kb))
    if index is None or index.kb is not kb:
        index = _indexes[id(kb)] = PassageIndex(kb)
    return index
