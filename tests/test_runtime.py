"""crossmodal.runtime: one device resolution, one autocast helper, the fast-path switch, and the
machine description benchmarks print."""

from __future__ import annotations

import threading

import pytest
import torch

from crossmodal import runtime
from crossmodal.errors import ConfigError
from crossmodal.models.fast import fast_mode


def test_devices():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    assert runtime.resolve_device(" AUTO ").type == expected
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda, cuda:N or mps"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no GPU"):
            runtime.resolve_device("cuda:1")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="MPS is not available"):
            runtime.resolve_device("mps")


def test_autocast_choices():
    cpu = torch.device("cpu")
    factory, scaler = runtime.autocast(cpu, "auto")
    assert scaler is None
    with factory():
        assert not torch.is_autocast_enabled("cpu")  # auto on a CPU: plain fp32
    factory, scaler = runtime.autocast(cpu, "bf16")
    with factory():
        assert torch.is_autocast_enabled("cpu")
        y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert y.dtype == torch.bfloat16 and scaler is None


def test_fast_paths_switch_overrides_the_environment_in_every_thread(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32")
    seen: list[str] = []
    with runtime.fast_paths("off"):
        assert fast_mode() == "off"
        worker = threading.Thread(target=lambda: seen.append(fast_mode()))
        worker.start()
        worker.join()
        with runtime.fast_paths("bf16"):
            assert fast_mode() == "bf16"
        assert fast_mode() == "off"
    assert seen == ["off"]
    assert fast_mode() == "fp32"
    with pytest.raises(ValueError, match="off, fp32 or bf16"), runtime.fast_paths("fast"):
        pass


def test_machine_description_names_cpu_flags_and_path(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CROSSMODAL_FAST", "fp32-torch")
    line = runtime.describe_machine()
    assert runtime.cpu_name() in line
    assert "Inference path fp32" in line and "torch fp32" in line
    flags = runtime.cpu_flags()
    assert set(flags) == set(runtime.RELEVANT_CPU_FLAGS)
    for flag, present in flags.items():
        if flag in line:
            assert ("has " in line) and ("lacks " in line)
        if present and flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"):
            assert flag in line.split("lacks")[0]
