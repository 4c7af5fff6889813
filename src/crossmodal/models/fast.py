"""Faster inference paths for the towers (same vectors, within noise).

Indexing a photo collection is bound by the image tower. The reference module (lukemelas-style
EfficientNet with separate BatchNorm layers, explicit `ZeroPad2d` modules and NCHW tensors) runs
at about 20-30 images/s on two cores. `FastEfficientNet` rebuilds the same network for
inference:

1. BatchNorm folded into the preceding convolution (one op instead of three per layer);
2. symmetric TF-"SAME" padding folded into the convolution's own `padding` (the asymmetric
   padding of the stride-2 layers stays an explicit pad, so results are unchanged);
3. ReLU6 as an in-place `hardtanh_`, average pooling as a mean over H, W;
4. channels_last memory format (neutral in fp32, but oneDNN's bf16 kernels run twice as
   fast with it);
5. bfloat16 weights and activations where the CPU computes bf16 natively (AVX512-BF16, AMX):
   pooled features stay within cosine 0.995 of fp32 on real photos (0.999 on average).

On one core that is ~7x the reference (about 13 -> 95 images/s on this project's 2-core
EPYC); the indexing pipeline then runs one single-threaded batch per core in parallel
(`crossmodal.index.pipeline`), which scales better than intra-op threads.

A text query is bound by the text tower; `fast_text_net` gives it a bf16 copy of MiniLM
(2x faster for one query, features within cosine 0.9999).

Measured steps, and what was tried and not kept, are in docs/benchmarks.md.

The towers call these from `forward` when no gradient is needed; they return None (the caller
falls back to the reference path) when a fast path does not apply: training mode, grad enabled,
modules replaced by adapters (LoRA) in the image tower, or `CROSSMODAL_FAST=0`.
`CROSSMODAL_FAST=fp32` keeps the folded image network but no bf16 anywhere. Rebuilt modules are
cached on the tower and rebuilt whenever a weight changes in place (as an optimiser step does),
keyed by the tensors' version counters.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastEfficientNet", "bf16_supported", "fast_features", "fast_mode", "fast_text_net"]


_BUILD_LOCK = threading.Lock()


def bf16_supported() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (else bf16 is emulated: slower)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


def fast_mode() -> str:
    """'off', 'fp32' or 'bf16', from CROSSMODAL_FAST (default: bf16 where native)."""
    value = os.environ.get("CROSSMODAL_FAST", "auto").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value == "fp32":
        return "fp32"
    if value == "bf16":
        return "bf16"
    return "bf16" if bf16_supported() else "fp32"


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weights and bias with an eval-mode BatchNorm folded in (computed in float64)."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0]).double()
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = w * scale.reshape(-1, 1, 1, 1)
    b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return w.float(), b.float()


class _ConvBN(nn.Module):
    """conv + folded BN (+ ReLU6); TF-SAME padding folded into the conv when symmetric."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool) -> None:
        super().__init__()
        weight, bias = _fold(conv, bn)
        pad = getattr(getattr(conv, "static_padding", None), "padding", (0, 0, 0, 0))
        left, right, top, bottom = pad
        self.pre_pad: tuple[int, int, int, int] | None = None
        padding: tuple[int, int] = (0, 0)
        if left == right and top == bottom:
            padding = (top, left)
        else:
            self.pre_pad = (left, right, top, bottom)
        self.conv = nn.Conv2d(
            weight.shape[1] * conv.groups,
            weight.shape[0],
            tuple(weight.shape[2:]),  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=padding,
            groups=conv.groups,
            bias=True,
        )
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)  # type: ignore[union-attr]
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        x = self.conv(x)
        return F.hardtanh_(x, 0.0, 6.0) if self.relu6 else x


class _Block(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        args = block._block_args
        self.expand = (
            _ConvBN(block._expand_conv, block._bn0, True) if args.expand_ratio != 1 else None
        )
        self.depthwise = _ConvBN(block._depthwise_conv, block._bn1, True)
        self.project = _ConvBN(block._project_conv, block._bn2, False)
        self.skip = bool(
            args.id_skip and args.stride == 1 and args.input_filters == args.output_filters
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.skip else y


class FastEfficientNet(nn.Module):
    """Inference-only copy of an EfficientNet-Lite feature extractor: pixels -> pooled features."""

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.stem = _ConvBN(net._conv_stem, net._bn0, True)
        self.blocks = nn.Sequential(*[_Block(b) for b in net._blocks])
        self.head = _ConvBN(net._conv_head, net._bn1, True)
        self.dtype = dtype
        self.eval()
        self.to(memory_format=torch.channels_last, dtype=dtype)  # type: ignore[call-overload]

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(dtype=self.dtype, memory_format=torch.channels_last)
        x = self.head(self.blocks(self.stem(x)))
        # pooled in float32: the mean of 49 bf16 values would add rounding for nothing
        return x.float().mean(dim=(2, 3))


def _supported(net: nn.Module) -> bool:
    """Only the exact module types we know how to fold (not LoRA/peft wrappers, not SE blocks)."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    def plain(conv: Any, bn: Any) -> bool:
        return type(conv) is Conv2dStaticSamePadding and type(bn) is nn.BatchNorm2d

    try:
        if not plain(net._conv_stem, net._bn0) or not plain(net._conv_head, net._bn1):
            return False
        for block in net._blocks:
            if block.has_se or not isinstance(block._swish, nn.ReLU6):
                return False
            if block._block_args.expand_ratio != 1 and not plain(block._expand_conv, block._bn0):
                return False
            if not plain(block._depthwise_conv, block._bn1):
                return False
            if not plain(block._project_conv, block._bn2):
                return False
    except AttributeError:
        return False
    return True


def _weights_key(net: nn.Module) -> tuple[int, ...]:
    # data_ptr catches a load_state_dict that swapped tensors, _version an in-place update
    return tuple(x for t in (*net.parameters(), *net.buffers()) for x in (t.data_ptr(), t._version))


def fast_features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor | None:
    """Pooled features through the fast path, or None when it does not apply (see module doc)."""
    if tower.training or torch.is_grad_enabled() or pixels.device.type != "cpu":
        return None
    mode = fast_mode()
    if mode == "off":
        return None
    net = tower.net  # type: ignore[attr-defined]
    key = (mode, _weights_key(net))
    cached = tower.__dict__.get("_fast_cache")
    if cached is None or cached[0] != key:
        with _BUILD_LOCK:  # the indexing pipeline calls this from several threads at once
            cached = tower.__dict__.get("_fast_cache")
            if cached is None or cached[0] != key:
                if not _supported(net):
                    return None
                dtype = torch.bfloat16 if mode == "bf16" else torch.float32
                # a plain __dict__ entry, outside the module tree: not saved, trained or moved
                cached = (key, FastEfficientNet(net, dtype))
                tower.__dict__["_fast_cache"] = cached
    return cached[1](pixels)


def fast_text_net(tower: nn.Module) -> nn.Module | None:
    """A bf16 copy of a text tower's transformer for inference, or None (use the original).

    A single query through MiniLM-L6 is bound by reading its 42 MB of fp32 weights; in bf16
    it takes half the time (pooled features within cosine 0.9999 of fp32). Dynamic int8
    quantisation was faster still but moved features by up to 0.06 in cosine: not kept.
    """
    if tower.training or torch.is_grad_enabled() or fast_mode() != "bf16":
        return None
    net = getattr(tower, "net", None)
    if not isinstance(net, nn.Module):
        return None
    key = ("bf16", _weights_key(net))
    cached = tower.__dict__.get("_fast_cache")
    if cached is None or cached[0] != key:
        with _BUILD_LOCK:
            cached = tower.__dict__.get("_fast_cache")
            if cached is None or cached[0] != key:
                cached = (key, copy.deepcopy(net).to(torch.bfloat16).eval())
                tower.__dict__["_fast_cache"] = cached
    return cached[1]
