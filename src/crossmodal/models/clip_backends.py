"""Pretrained CLIP backends: Hugging Face `transformers.CLIPModel` and `open_clip` models.

Both wrap a pretrained dual encoder behind crossmodal's `Encoder` interface (PIL images and
strings in, L2-normalised float32 `(n, dim)` arrays out) and load strictly offline: nothing is
downloaded unless the environment variable `HF_HUB_OFFLINE` is explicitly `"0"`. When weights
are missing, loading raises `ModelNotAvailable` with one message that says what is missing and
how to put it on this machine.

Specs:
    hf:     a local folder written by `CLIPModel.save_pretrained` (+ tokenizer and image
            processor), or a hub id such as `openai/clip-vit-base-patch32` that is already in
            the local Hugging Face cache.
    openclip: `<arch>/<pretrained tag>` (e.g. `ViT-B-32/laion2b_s34b_b79k`, weights must be in
            the open_clip / Hugging Face cache) or `<arch>/<path to .bin/.pt/.safetensors>`.

The Hugging Face backend is here; the open_clip one is in `openclip_backend` (re-exported), and
what both share in `clip_common`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.base import Encoder
from crossmodal.models.clip_common import (
    _encode_batches,
    _features,
    _hash_files,
    _hash_state_dict,
    _hf_cache_dir,
    _looks_like_path,
    _quiet_transformers,
    _rgb,
    hub_offline,
    network_allowed,
)
from crossmodal.models.openclip_backend import OpenClipEncoder, load_open_clip
from crossmodal.runtime import resolve_device

if TYPE_CHECKING:
    from transformers import CLIPModel

log = logging.getLogger(__name__)

#: weights files `from_pretrained` accepts, in the order transformers prefers them
HF_WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: small files that change how text/images are turned into inputs (part of the fingerprint)
HF_PREPROCESSING_FILES = (
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)


# --------------------------------------------------------------------------- Hugging Face


def _load_hf_image_processor(folder: Path, vision_image_size: int) -> Any:
    """The CLIP image processor on its PIL/numpy path (no torchvision needed).

    transformers 5 splits CLIP's processor into `CLIPImageProcessor` (torchvision backend)
    and `CLIPImageProcessorPil`; transformers 4's `CLIPImageProcessor` is already numpy-only.
    A folder without preprocessor_config.json gets CLIP's standard preprocessing at the
    vision tower's image size.
    """
    processor_cls: Any  # one of two classes, by transformers version
    try:
        from transformers import CLIPImageProcessorPil

        processor_cls = CLIPImageProcessorPil
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor

        processor_cls = CLIPImageProcessor

    if (folder / "preprocessor_config.json").is_file():
        return processor_cls.from_pretrained(str(folder), local_files_only=True)
    log.warning(
        "%s has no preprocessor_config.json; using standard CLIP preprocessing at %dpx",
        folder,
        vision_image_size,
    )
    return processor_cls(
        size={"shortest_edge": vision_image_size},
        crop_size={"height": vision_image_size, "width": vision_image_size},
    )


def _check_hf_folder(folder: Path, spec: str) -> dict[str, Any]:
    """Validate a local model folder; return its parsed config.json."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: the folder {folder} has no config.json, so it is not a "
            "saved model. Point hf: at a folder written by CLIPModel.save_pretrained (with its "
            "tokenizer and preprocessor_config.json)."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: {config_path} is not readable JSON ({e}). "
            "Copy the model folder again."
        ) from e
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "clip":
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: {config_path} describes model_type {model_type!r}, "
            "not 'clip'; only transformers CLIPModel checkpoints are supported here."
        )
    if not any((folder / f).is_file() for f in HF_WEIGHTS_FILES):
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: the folder {folder} has no weights file "
            "(model.safetensors or pytorch_model.bin). Copy the complete model folder, "
            "including model.safetensors, and try again."
        )
    has_tokenizer = (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )
    if not has_tokenizer:
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: the folder {folder} has no tokenizer "
            "(tokenizer.json, or vocab.json + merges.txt). Save the tokenizer next to the "
            "model (tokenizer.save_pretrained(folder)) or copy the complete model folder."
        )
    return config


def _weights_paths(folder: Path) -> list[Path]:
    for name in HF_WEIGHTS_FILES:
        p = folder / name
        if not p.is_file():
            continue
        if name.endswith(".index.json"):
            try:
                index = json.loads(p.read_text(encoding="utf-8"))
                shards = sorted(set(index.get("weight_map", {}).values()))
            except (OSError, ValueError):
                shards = []
            return [p] + [folder / s for s in shards if (folder / s).is_file()]
        return [p]
    return []


def _not_on_machine_message(spec: str) -> str:
    return (
        f"Hugging Face CLIP {spec!r} is not on this machine (no local folder of that name and "
        f"not in the Hugging Face cache {_hf_cache_dir()}). Download it on a machine with "
        f"network (huggingface-cli download {spec}), copy the folder here and use "
        "hf:/path/to/folder."
    )


def _resolve_hf_folder(spec: str) -> Path | None:
    """Local folder for `spec`: the folder itself, or a hub id's snapshot in the HF cache.

    Returns None only when downloads are allowed and the id is not cached yet.
    """
    local = Path(os.path.expanduser(spec))
    if local.is_dir():
        return local
    if local.exists():
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: {local} is a file, not a model folder. Point hf: at "
            "the folder that holds config.json and model.safetensors."
        )
    if _looks_like_path(spec):
        raise ModelNotAvailable(
            f"Hugging Face CLIP {spec!r}: there is no folder {local.absolute()}. Copy a model "
            "folder written by CLIPModel.save_pretrained there (or download one on a machine with "
            "network: huggingface-cli download openai/clip-vit-base-patch32 --local-dir DIR)."
        )
    try:
        from huggingface_hub import snapshot_download

        with hub_offline():
            return Path(snapshot_download(spec, local_files_only=True))
    except Exception as e:
        if network_allowed():
            return None
        raise ModelNotAvailable(_not_on_machine_message(spec)) from e


class HFClipEncoder(Encoder):
    """A Hugging Face `transformers.CLIPModel` behind the `Encoder` interface.

    Images go through the checkpoint's `CLIPImageProcessor` (PIL/numpy path), texts through
    its CLIP tokenizer, truncated to the text tower's context length; embeddings come from
    `get_image_features` / `get_text_features` and are L2-normalised float32.
    """

    def __init__(
        self,
        model: Any,
        image_processor: Any,
        tokenizer: Any,
        device: str | torch.device = "cpu",
        name: str = "hf-clip",
        source_dir: str | Path | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.name = name
        self.source_dir = Path(source_dir) if source_dir is not None else None
        config = model.config
        self.dim = int(config.projection_dim)
        max_pos = int(config.text_config.max_position_embeddings)
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            max_pos = min(max_pos, tok_max)
        #: texts are truncated to this many tokens (including start/end tokens)
        self.max_length = max_pos
        self._fingerprint: str | None = None

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_spec(cls, spec: str, device: str | torch.device = "cpu") -> HFClipEncoder:
        """Load from a local folder or a hub id in the local HF cache (offline unless
        `HF_HUB_OFFLINE=0`). Raises ModelNotAvailable with a how-to when it is not here."""
        spec = str(spec)
        folder = _resolve_hf_folder(spec)
        if folder is None:  # downloads allowed and not cached: let transformers fetch it
            return cls._download(spec, device)
        _check_hf_folder(folder, spec)
        try:
            from transformers import AutoTokenizer, CLIPModel

            with hub_offline(), _quiet_transformers():
                model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                processor = _load_hf_image_processor(folder, _vision_image_size(model))
        except ModelNotAvailable:
            raise
        except Exception as e:
            raise ModelNotAvailable(
                f"Hugging Face CLIP {spec!r}: could not load the model in {folder} "
                f"({type(e).__name__}: {e}). Copy the complete model folder again."
            ) from e
        return cls(model, processor, tokenizer, device=device, name="hf:" + spec, source_dir=folder)

    @classmethod
    def _download(cls, spec: str, device: str | torch.device) -> HFClipEncoder:
        try:
            from huggingface_hub import snapshot_download
            from transformers import AutoTokenizer, CLIPModel

            model = CLIPModel.from_pretrained(spec)
            tokenizer = AutoTokenizer.from_pretrained(spec)
            with hub_offline():
                folder = Path(snapshot_download(spec, local_files_only=True))
            processor = _load_hf_image_processor(folder, _vision_image_size(model))
        except Exception as e:
            raise ModelNotAvailable(
                f"Hugging Face CLIP {spec!r} could not be downloaded ({type(e).__name__}: {e}). "
                f"Check the id and the network, or download it elsewhere "
                f"(huggingface-cli download {spec}) and use hf:/path/to/folder."
            ) from e
        return cls(model, processor, tokenizer, device=device, name="hf:" + spec, source_dir=folder)

    # ----------------------------------------------------------------- properties
    @property
    def logit_scale(self) -> float:
        """The learned similarity multiplier, exp(model.logit_scale) (about 100 for
        pretrained CLIP). The raw trainable parameter is `self.model.logit_scale`."""
        return float(self.model.logit_scale.detach().exp().item())

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = "hf:" + self._compute_fingerprint()[:16]
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        folder = self.source_dir
        weights = _weights_paths(folder) if folder is not None else []
        if folder is not None and weights:
            h.update((folder / "config.json").read_bytes())
            h.update(_hash_files(weights).encode())
            small = [folder / f for f in HF_PREPROCESSING_FILES if (folder / f).is_file()]
            h.update(_hash_files(small).encode())
        else:  # built in memory: hash what decides the vectors
            h.update(self.model.config.to_json_string(use_diff=False).encode())
            h.update(_hash_state_dict(self.model).encode())
            h.update(json.dumps(self.image_processor.to_dict(), sort_keys=True).encode())
            h.update(str(sorted(self.tokenizer.get_vocab().items())).encode())
        h.update(f"max_length={self.max_length}".encode())
        return h.hexdigest()

    # ----------------------------------------------------------------- encoding
    def encode_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray:
        def encode(batch: list[Image.Image]) -> torch.Tensor:
            rgb = [_rgb(im) for im in batch]
            pixels = self.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device=self.device, dtype=torch.float32)
            return _features(self.model.get_image_features(pixel_values=pixels))

        return _encode_batches(
            self.model, list(images), self.dim, batch_size, show_progress, encode
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids + attention mask for `texts`, padded and truncated to `max_length`."""
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask") if k in enc}

    def encode_texts(
        self,
        texts: Sequence[str],
        batch_size: int = 128,
        show_progress: bool = False,
    ) -> np.ndarray:
        def encode(batch: list[str]) -> torch.Tensor:
            return _features(self.model.get_text_features(**self.tokenize(batch)))

        texts = [str(t) for t in texts]
        return _encode_batches(self.model, texts, self.dim, batch_size, show_progress, encode)

    def __repr__(self) -> str:
        return f"HFClipEncoder(name={self.name!r}, dim={self.dim}, device={self.device})"


def _vision_image_size(model: CLIPModel) -> int:
    """The vision tower's input size (a CLIPModel's config holds a CLIPVisionConfig whose
    image_size is one int for CLIP)."""
    from transformers import CLIPVisionConfig

    vision = model.config.vision_config
    assert isinstance(vision, CLIPVisionConfig) and isinstance(vision.image_size, int)
    return vision.image_size


# --------------------------------------------------------------------------- entry points


def load_hf_clip(spec: str, device: str | torch.device = "cpu") -> HFClipEncoder:
    """A Hugging Face CLIP from a local folder or a cached hub id; `.name` is "hf:" + spec."""
    spec = str(spec)
    if spec.startswith("hf:"):
        spec = spec[3:]
    enc = HFClipEncoder.from_spec(spec, device=device)
    enc.name = "hf:" + spec
    return enc


__all__ = [
    "HFClipEncoder",
    "OpenClipEncoder",
    "hub_offline",
    "load_hf_clip",
    "load_open_clip",
    "network_allowed",
]
