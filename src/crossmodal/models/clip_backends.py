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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.base import Encoder, l2_normalize
from crossmodal.runtime import resolve_device

if TYPE_CHECKING:
    from tqdm.auto import tqdm
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
#: weights up to this total size are hashed byte for byte; bigger ones by size + mtime
FULL_HASH_LIMIT = 512 * 1024 * 1024


# --------------------------------------------------------------------------- helpers


def network_allowed() -> bool:
    """Downloads are allowed only when the user explicitly set `HF_HUB_OFFLINE=0`."""
    return os.environ.get("HF_HUB_OFFLINE") == "0"


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        cache = str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub always ships with transformers
        cache = os.path.join("~", ".cache", "huggingface", "hub")
    home = os.path.expanduser("~")
    if home not in ("", "/") and cache.startswith(home + os.sep):
        cache = "~" + cache[len(home) :]
    return cache


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Force Hugging Face hub / transformers into offline mode for the duration of the block.

    The env vars alone are not enough once `huggingface_hub` has been imported (it reads them
    at import time), so its module-level flag is patched too, and both are restored after.
    """
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # huggingface_hub.constants once imported: Any, its flag's declared type varies by version
    constants: Any = None
    saved_flag = None
    try:
        import huggingface_hub.constants

        constants = huggingface_hub.constants
        saved_flag = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except Exception:  # pragma: no cover
        constants = None
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' own "Loading weights" progress bar while loading, then restore it."""
    try:
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
    except Exception:  # pragma: no cover - very old transformers
        yield
        return
    if was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _hash_file(h: Any, path: Path, chunk: int = 1 << 20) -> None:
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)


def _hash_files(paths: Sequence[Path], full_limit: int = FULL_HASH_LIMIT) -> str:
    """Hash of file contents; files in a set larger than `full_limit` are hashed by size and
    mtime (or, in the Hugging Face cache, by their content-addressed blob name)."""
    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in paths)
    for p in paths:
        h.update(p.name.encode())
        h.update(b"\0")
        if total <= full_limit:
            _hash_file(h, p)
        else:
            real = p.resolve()
            st = real.stat()
            if real.parent.name == "blobs":  # HF cache: blob name is the file's sha256 / etag
                h.update(real.name.encode())
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(b"\0")
    return h.hexdigest()


def _hash_state_dict(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _features(out: Any) -> torch.Tensor:
    """`get_*_features` returns a tensor in transformers 4 and a model output (whose
    `pooler_output` holds the projected features) in transformers 5; accept both."""
    if isinstance(out, torch.Tensor):
        return out
    for attr in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(out, tuple | list) and len(out) > 1 and isinstance(out[1], torch.Tensor):
        return out[1]  # (last_hidden_state, pooler_output, ...)
    raise TypeError(f"cannot find the embedding tensor in a {type(out).__name__}")


def _batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def _encode_batches(
    model: torch.nn.Module,
    items: list[Any],
    dim: int,
    batch_size: int,
    show_progress: bool,
    encode: Callable[[list[Any]], torch.Tensor],
) -> np.ndarray:
    """`encode(batch)` over `items` in batches (eval mode, no autograd, a progress bar):
    unit float32 rows, (n, dim)."""
    if not items:
        return np.zeros((0, dim), dtype=np.float32)
    out = np.empty((len(items), dim), dtype=np.float32)
    desc, unit = (
        ("Encoding texts", "text") if isinstance(items[0], str) else ("Encoding images", "img")
    )
    with (
        _progress(len(items), desc, unit, show_progress) as bar,
        _eval_mode(model),
        torch.inference_mode(),
    ):
        for start, stop in _batches(len(items), batch_size):
            out[start:stop] = encode(items[start:stop]).float().cpu().numpy()
            bar.update(stop - start)
    return l2_normalize(out)


def _progress(total: int, desc: str, unit: str, show: bool) -> tqdm:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show, leave=False)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode, restoring train mode after (the trainer may share the model)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


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


def _looks_like_path(spec: str) -> bool:
    """True for things that can only be file paths (a hub id is `name` or `org/name`)."""
    return spec.startswith(("/", "~", ".")) or "\\" in spec or ":" in spec or spec.count("/") > 1


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


# --------------------------------------------------------------------------- open_clip

_OPEN_CLIP_INSTALL = (
    "open_clip is not installed: pip install 'crossmodal[openclip]' (it needs torchvision, "
    "so use torch==2.14.1 torchvision==0.29.1 in that environment). Alternatively use a "
    "Hugging Face CLIP folder with hf:/path/to/folder."
)
_OPEN_CLIP_SAFE_ALTERNATIVES = {
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
    "pytorch_model.bin": "model.safetensors",
}


def _vision_image_size(model: CLIPModel) -> int:
    """The vision tower's input size (a CLIPModel's config holds a CLIPVisionConfig whose
    image_size is one int for CLIP)."""
    from transformers import CLIPVisionConfig

    vision = model.config.vision_config
    assert isinstance(vision, CLIPVisionConfig) and isinstance(vision.image_size, int)
    return vision.image_size


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

        kwargs: dict[str, Any] = {}
        checkpoint: str | None = None
        if pretrained is not None:
            if arch not in open_clip.list_models():
                known = ", ".join(open_clip.list_models()[:12])
                raise ModelNotAvailable(
                    f"open_clip has no architecture {arch!r} (known: {known}, ...). "
                    "Spec format: '<arch>/<pretrained>', e.g. 'ViT-B-32/laion2b_s34b_b79k'."
                )
            weights_file = Path(os.path.expanduser(pretrained))
            if weights_file.is_file():
                checkpoint = str(weights_file)
            else:
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
                if checkpoint is not None:
                    # load the cached file directly (no download code path at all), with the
                    # tag's preprocessing exactly as open_clip would apply it for the tag
                    kwargs = {
                        "image_mean": cfg.get("mean"),
                        "image_std": cfg.get("std"),
                        "image_interpolation": cfg.get("interpolation"),
                        "image_resize_mode": cfg.get("resize_mode"),
                    }
                    kwargs = {k: v for k, v in kwargs.items() if v is not None}

        guard = hub_offline() if offline else contextlib.nullcontext()
        try:
            with guard:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch,
                    pretrained=checkpoint or pretrained,
                    device=dev,
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


# --------------------------------------------------------------------------- entry points


def load_hf_clip(spec: str, device: str | torch.device = "cpu") -> HFClipEncoder:
    """A Hugging Face CLIP from a local folder or a cached hub id; `.name` is "hf:" + spec."""
    spec = str(spec)
    if spec.startswith("hf:"):
        spec = spec[3:]
    enc = HFClipEncoder.from_spec(spec, device=device)
    enc.name = "hf:" + spec
    return enc


def load_open_clip(spec: str, device: str | torch.device = "cpu") -> OpenClipEncoder:
    """An open_clip model from `"<arch>/<pretrained>"`; `.name` is "openclip:" + spec."""
    spec = str(spec)
    if spec.startswith("openclip:"):
        spec = spec[len("openclip:") :]
    enc = OpenClipEncoder.from_spec(spec, device=device)
    enc.name = "openclip:" + spec
    return enc


__all__ = [
    "HFClipEncoder",
    "OpenClipEncoder",
    "hub_offline",
    "load_hf_clip",
    "load_open_clip",
    "network_allowed",
]
