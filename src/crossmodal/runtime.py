"""What this process computes on: the CPU, the vector extensions that pick an inference path,
and the path taken. Benchmarks print it beside every figure, since a speed measured with
AVX512-BF16 says little about a laptop with AVX2 only (and the reverse)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

__all__ = ["RELEVANT_CPU_FLAGS", "cpu_flags", "cpu_name", "describe_machine"]

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
