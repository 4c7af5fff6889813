"""What both pretrained CLIP backends share: the offline policy, fingerprints, batched encoding.

`network_allowed` / `hub_offline` keep loading strictly offline unless `HF_HUB_OFFLINE=0`; the
hashing helpers make fingerprints that change when weights or preprocessing change; and
`_encode_batches` is the one loop (eval mode, no autograd, progress bar) both backends encode in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from crossmodal.models.base import l2_normalize

if TYPE_CHECKING:
    from tqdm.auto import tqdm

#: weights up to this total size are hashed byte for byte; bigger ones by size + mtime
FULL_HASH_LIMIT = 512 * 1024 * 1024


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


def _looks_like_path(spec: str) -> bool:
    """True for things that can only be file paths (a hub id is `name` or `org/name`)."""
    return spec.startswith(("/", "~", ".")) or "\\" in spec or ":" in spec or spec.count("/") > 1
