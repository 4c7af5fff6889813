"""Where and how this process computes, decided in one place: the device (CPU, a CUDA GPU,
Apple's MPS), mixed precision, the offline set-up of the Hugging Face libraries, the inference
fast paths (`fast_paths`), and a description of the CPU and the path taken. Benchmarks print
that beside every figure, since a speed measured with AVX512-BF16 says little about a laptop
with AVX2 only (and the reverse).

torch is imported inside the functions that need it: the CLI imports this module on its way
to answering `--help`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "RELEVANT_CPU_FLAGS",
    "autocast",
    "cpu_flags",
    "cpu_name",
    "describe_machine",
    "fast_paths",
    "forced_fast_mode",
    "offline_hub",
    "resolve_device",
]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU when torch sees one, else the CPU; also 'cpu', 'cuda',
    'cuda:N' and 'mps'. A device that is not here is a ConfigError saying what torch sees."""
    import torch

    from crossmodal.errors import ConfigError

    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(
            f"device must be auto, cpu, cuda, cuda:N or mps, got {str(name)!r}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {text!r} asked for, but torch sees no GPU here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {text!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {text!r} asked for, but MPS is not available here")
    elif device.type != "cpu":
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {str(name)!r}")
    return device


def autocast(
    device: torch.device, precision: str = "auto"
) -> tuple[Callable[[], contextlib.AbstractContextManager[Any]], Any]:
    """(a factory of the autocast context for `precision`, the gradient scaler fp16 needs or
    None). auto = bf16 on a GPU, fp32 (no autocast) elsewhere."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def offline_hub() -> None:
    """The Hugging Face libraries never reach for the network unless the user asked for it
    (`HF_HUB_OFFLINE=0`): the towers ship inside packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare_torch(threads: int) -> None:
    """Before any model is built: the offline hub, no tokenizer threads of its own, `threads`
    torch threads, quiet transformers (no weight-loading bars)."""
    offline_hub()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


_FORCED_LOCK = threading.Lock()
_forced: list[str] = []


def forced_fast_mode() -> str | None:
    """The mode a `fast_paths` block forces, or None (CROSSMODAL_FAST decides)."""
    return _forced[-1] if _forced else None


@contextlib.contextmanager
def fast_paths(mode: str) -> Iterator[None]:
    """Within the block, the inference fast paths run as `mode` ('off', 'fp32', 'bf16')
    whatever CROSSMODAL_FAST says, in every thread (training turns them 'off': the plain
    modules are both correct and cheaper than a rebuilt copy per epoch)."""
    if mode not in ("off", "fp32", "bf16"):
        raise ValueError(f"fast path mode must be off, fp32 or bf16, got {mode!r}")
    with _FORCED_LOCK:
        _forced.append(mode)
    try:
        yield
    finally:
        with _FORCED_LOCK:
            _forced.remove(mode)


#: The flags that change which kernels run: AVX2 (every x86-64 path), AVX-512 and its bf16
#: extension or AMX (the native bf16 path), VNNI (int8 dot products); NEON/ASIMD, SVE and
#: bf16 on Arm.
RELEVANT_CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_bf16",
    "asimd",
    "sve",
    "bf16",
)


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_name() -> str:
    """The processor's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), or what the platform
    module knows."""
    match = re.search(r"^(?:model name|Model name|Hardware)\s*:\s*(.+)$", _cpuinfo(), re.M)
    if match:
        return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> dict[str, bool]:
    """Each of RELEVANT_CPU_FLAGS: whether this CPU has it (from /proc/cpuinfo; all False
    where that file does not exist)."""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.M)
    present = set(match.group(1).split()) if match else set()
    return {flag: flag in present for flag in RELEVANT_CPU_FLAGS}


def describe_machine() -> str:
    """One line: CPU, cores, the relevant flags it has and lacks, and the inference path this
    process takes (`CROSSMODAL_FAST`, see crossmodal.models.fast)."""
    from crossmodal.models.fast import describe_paths

    flags = cpu_flags()
    arm = platform.machine().lower() in ("aarch64", "arm64")
    shown = [f for f in RELEVANT_CPU_FLAGS if (f in ("asimd", "sve", "bf16")) == arm]
    has = ", ".join(f for f in shown if flags[f]) or "none"
    lacks = ", ".join(f for f in shown if not flags[f]) or "none"
    paths = describe_paths()
    return (
        f"{cpu_name()}, {os.cpu_count()} cores visible; has {has}; lacks {lacks}. "
        f"Inference path {paths['mode']} (native bf16: {paths['bf16_native']}): image tower "
        f"{paths['image']}, text tower {paths['text']}"
    )
