"""The `open_clip` backend: `"<arch>/<pretrained tag>"` or `"<arch>/<weights file>"` specs.

Loading is offline like the Hugging Face backend's (see `clip_backends`): a tag's weights are
looked up in the open_clip and Hugging Face caches first and loaded straight from the file, so
open_clip's download code never runs unless `HF_HUB_OFFLINE=0`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.base import Encoder
from crossmodal.models.clip_common import (
    _encode_batches,
    _eval_mode,
    _hash_files,
    _hash_state_dict,
    _hf_cache_dir,
    _looks_like_path,
    _rgb,
    hub_offline,
    network_allowed,
)
from crossmodal.runtime import resolve_device

__all__ = ["OpenClipEncoder", "load_open_clip"]

_OPEN_CLIP_INSTALL = (
    "open_clip is not installed: pip install 'crossmodal[openclip]' (it needs torchvision, "
    "so use torch==2.14.1 torchvision==0.29.1 in that environment). Alternatively use a "
    "Hugging Face CLIP folder with hf:/path/to/folder."
)
_OPEN_CLIP_SAFE_ALTERNATIVES = {
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
    "pytorch_model.bin": "model.safetensors",
}


def _import_open_clip() -> ModuleType:
    try:
        import open_clip
    except ImportError as e:
        raise ModelNotAvailable(_OPEN_CLIP_INSTALL) from e
    return open_clip


def _split_open_clip_spec(spec: str) -> tuple[str, str | None]:
    """`"<arch>/<pretrained>"` -> (arch, pretrained); `"hf-hub:org/name"` -> (spec, None)."""
    spec = spec.strip()
    if spec.startswith("hf-hub:"):
        return spec, None
    arch, sep, pretrained = spec.partition("/")
    if not sep or not arch or not pretrained:
        raise ModelNotAvailable(
            f"open_clip spec {spec!r} must look like '<arch>/<pretrained>', e.g. "
            "'ViT-B-32/laion2b_s34b_b79k' or 'ViT-B-32//path/to/open_clip_model.safetensors'."
        )
    return arch, pretrained


def _cached_open_clip_checkpoint(cfg: dict[str, Any], cache_dir: str | None = None) -> str | None:
    """Path of a pretrained tag's weights if they are already on this machine, else None.

    Mirrors open_clip's `download_pretrained`: an explicit `file`, the URL download cache
    (~/.cache/clip/<basename>), or `hf_hub` entries `org/name/[filename]` (default filename
    open_clip_pytorch_model.bin, with its .safetensors alternative tried first).
    """
    file = cfg.get("file")
    if file and os.path.isfile(file):
        return str(file)
    url = cfg.get("url") or ""
    if url:
        target = os.path.join(
            cache_dir or os.path.expanduser(os.path.join("~", ".cache", "clip")),
            os.path.basename(url),
        )
        if os.path.isfile(target):
            return target
    hf_hub = cfg.get("hf_hub") or ""
    if hf_hub:
        from huggingface_hub import try_to_load_from_cache

        # 'org/name/' -> default filename; 'org/name/file.bin' -> that file
        model_id, filename = posixpath.split(hf_hub)
        filename = filename or "open_clip_pytorch_model.bin"
        candidates = [filename]
        if filename in _OPEN_CLIP_SAFE_ALTERNATIVES:
            candidates.insert(0, _OPEN_CLIP_SAFE_ALTERNATIVES[filename])
        for name in candidates:
            try:
                found = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
            except Exception:
                found = None
            if isinstance(found, str) and os.path.isfile(found):
                return found
    return None


def _open_clip_weights_hint(arch: str, tag: str, cfg: dict[str, Any]) -> str:
    hf_hub = (cfg.get("hf_hub") or "").rstrip("/")
    where = []
    if hf_hub:
        repo = hf_hub if hf_hub.count("/") <= 1 else os.path.dirname(hf_hub)
        where.append(f"the Hugging Face cache {_hf_cache_dir()} (huggingface-cli download {repo})")
    if cfg.get("url"):
        where.append(f"~/.cache/clip/{os.path.basename(cfg['url'])} ({cfg['url']})")
    return (
        f"open_clip weights {arch}/{tag} are not on this machine (looked in "
        f"{' and '.join(where) or 'the open_clip caches'}). Download them on a machine with "
        f"network, copy the weights file here and use openclip:{arch}//path/to/weights"
        ".safetensors (or run once with HF_HUB_OFFLINE=0 to let open_clip download them)."
    )


def _open_clip_checkpoint(
    open_clip: ModuleType, arch: str, pretrained: str, offline: bool
) -> tuple[str | None, dict[str, Any]]:
    """(weights file to load directly or None, the tag's preprocessing kwargs) for a spec.

    None means "let open_clip resolve `pretrained` itself" (only when downloads are allowed).
    """
    if arch not in open_clip.list_models():
        known = ", ".join(open_clip.list_models()[:12])
        raise ModelNotAvailable(
            f"open_clip has no architecture {arch!r} (known: {known}, ...). "
            "Spec format: '<arch>/<pretrained>', e.g. 'ViT-B-32/laion2b_s34b_b79k'."
        )
    weights_file = Path(os.path.expanduser(pretrained))
    if weights_file.is_file():
        return str(weights_file), {}
    cfg = open_clip.get_pretrained_cfg(arch, pretrained) or {}
    if not cfg:
        if _looks_like_path(pretrained) or weights_file.suffix in (
            ".bin",
            ".pt",
            ".pth",
            ".safetensors",
        ):
            raise ModelNotAvailable(
                f"open_clip weights file {pretrained} does not exist. Copy the "
                f"weights there and use openclip:{arch}/<path to the file>."
            )
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelNotAvailable(
            f"open_clip has no pretrained tag {pretrained!r} for {arch} "
            f"(available: {', '.join(tags) or 'none'}); or give a weights file path."
        )
    checkpoint = _cached_open_clip_checkpoint(cfg)
    if checkpoint is None and offline:
        raise ModelNotAvailable(_open_clip_weights_hint(arch, pretrained, cfg))
    if checkpoint is None:
        return None, {}
    # load the cached file directly (no download code path at all), with the
    # tag's preprocessing exactly as open_clip would apply it for the tag
    kwargs = {
        "image_mean": cfg.get("mean"),
        "image_std": cfg.get("std"),
        "image_interpolation": cfg.get("interpolation"),
        "image_resize_mode": cfg.get("resize_mode"),
    }
    return checkpoint, {k: v for k, v in kwargs.items() if v is not None}


def _create_open_clip(
    open_clip: ModuleType,
    arch: str,
    pretrained: str | None,
    checkpoint: str | None,
    kwargs: dict[str, Any],
    device: torch.device,
    offline: bool,
) -> tuple[Any, Callable[[Image.Image], torch.Tensor], Callable[..., torch.Tensor]]:
    """(model, preprocess, tokenizer); any failure becomes one ModelNotAvailable message."""
    guard = hub_offline() if offline else contextlib.nullcontext()
    try:
        with guard:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=checkpoint or pretrained,
                device=device,
                **kwargs,
            )
            tokenizer = open_clip.get_tokenizer(arch)
    except ModelNotAvailable:
        raise
    except Exception as e:
        what = f"{arch}/{pretrained}" if pretrained is not None else arch
        hint = (
            "Its weights (or tokenizer files) are not on this machine; download them on a "
            "machine with network, copy the weights file here and use "
            "openclip:<arch>//path/to/weights.safetensors."
            if offline
            else "Check the spec and the network."
        )
        raise ModelNotAvailable(
            f"open_clip model {what} could not be loaded ({type(e).__name__}: {e}). {hint}"
        ) from e
    return model, preprocess, tokenizer


class OpenClipEncoder(Encoder):
    """An `open_clip` model (CLIP / CustomTextCLIP) behind the `Encoder` interface."""

    def __init__(
        self,
        model: Any,
        preprocess: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[..., torch.Tensor],
        device: str | torch.device = "cpu",
        name: str = "openclip",
        checkpoint_path: str | Path | None = None,
        dim: int | None = None,
        spec: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.spec = spec or name
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.dim = int(dim) if dim else self._probe_dim()
        self._fingerprint: str | None = None

    def _probe_dim(self) -> int:
        with _eval_mode(self.model), torch.inference_mode():
            tokens = self.tokenizer([""]).to(self.device)
            return int(self.model.encode_text(tokens).shape[-1])

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_spec(cls, spec: str, device: str | torch.device = "cpu") -> OpenClipEncoder:
        """`"<arch>/<tag>"`, `"<arch>/<weights file>"` or `"hf-hub:org/name"`; offline
        unless `HF_HUB_OFFLINE=0`. Raises ModelNotAvailable when open_clip or the weights
        are missing."""
        open_clip = _import_open_clip()
        arch, pretrained = _split_open_clip_spec(spec)
        dev = resolve_device(device)
        offline = not network_allowed()
        checkpoint: str | None = None
        kwargs: dict[str, Any] = {}
        if pretrained is not None:
            checkpoint, kwargs = _open_clip_checkpoint(open_clip, arch, pretrained, offline)
        model, preprocess, tokenizer = _create_open_clip(
            open_clip, arch, pretrained, checkpoint, kwargs, dev, offline
        )
        dim = None
        if pretrained is not None:
            model_cfg = open_clip.get_model_config(arch) or {}
            dim = model_cfg.get("embed_dim")
        return cls(
            model,
            preprocess,
            tokenizer,
            device=dev,
            name="openclip:" + spec,
            checkpoint_path=checkpoint,
            dim=dim,
            spec=spec,
        )

    # ----------------------------------------------------------------- properties
    @property
    def logit_scale(self) -> float:
        """exp(model.logit_scale), the similarity multiplier (~100 for pretrained CLIP)."""
        return float(self.model.logit_scale.detach().exp().reshape(-1)[0].item())

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(self.spec.encode())
            if self.checkpoint_path is not None and self.checkpoint_path.is_file():
                h.update(_hash_files([self.checkpoint_path]).encode())
            else:
                h.update(_hash_state_dict(self.model).encode())
            pp = getattr(getattr(self.model, "visual", None), "preprocess_cfg", None)
            h.update(repr(pp).encode())
            self._fingerprint = "openclip:" + h.hexdigest()[:16]
        return self._fingerprint

    # ----------------------------------------------------------------- encoding
    def encode_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray:
        dtype = next(self.model.parameters()).dtype

        def encode(batch: list[Image.Image]) -> torch.Tensor:
            pixels = torch.stack([self.preprocess(_rgb(im)) for im in batch])
            return self.model.encode_image(pixels.to(device=self.device, dtype=dtype))

        return _encode_batches(
            self.model, list(images), self.dim, batch_size, show_progress, encode
        )

    def encode_texts(
        self,
        texts: Sequence[str],
        batch_size: int = 128,
        show_progress: bool = False,
    ) -> np.ndarray:
        def encode(batch: list[str]) -> torch.Tensor:
            # open_clip tokenizers pad/truncate to the model's context length themselves
            return self.model.encode_text(self.tokenizer(batch).to(self.device))

        texts = [str(t) for t in texts]
        return _encode_batches(self.model, texts, self.dim, batch_size, show_progress, encode)

    def __repr__(self) -> str:
        return f"OpenClipEncoder(name={self.name!r}, dim={self.dim}, device={self.device})"


def load_open_clip(spec: str, device: str | torch.device = "cpu") -> OpenClipEncoder:
    """An open_clip model from `"<arch>/<pretrained>"`; `.name` is "openclip:" + spec."""
    spec = str(spec)
    if spec.startswith("openclip:"):
        spec = spec[len("openclip:") :]
    enc = OpenClipEncoder.from_spec(spec, device=device)
    enc.name = "openclip:" + spec
    return enc
