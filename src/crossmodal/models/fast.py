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
   pooled features stay within cosine 0.995 of fp32 on real photos (0.999 on average);
6. ReLU6 and the residual additions done by the convolution kernel itself (oneDNN's fused
   post-ops, what torch.compile's CPU backend calls), and channels_last padding that stays
   channels_last: no extra pass over the activations;
7. 4 images per pass through the network: their activations stay in the caches between
   layers, where those of 32 images (~90 MB at 240 px) went to memory after every layer.

On one core that is ~10x the reference (10.7 -> 108.6 images/s on this project's 2-core
EPYC, docs/benchmarks.md); the indexing pipeline then runs one single-threaded batch per core
in parallel (`crossmodal.index.pipeline`, 211 images/s), which scales better than intra-op
threads.

A text query is bound by the text tower; `fast_text_net` gives it `PackedBert`
(`crossmodal.models.packed_bert`), an inference copy of MiniLM with bf16 matrix products that
runs the tokens of a batch without padding (features within cosine 0.9999 of fp32; see its
docstring for the speed).

Measured steps, and what was tried and not kept, are in docs/benchmarks.md.

CPUs without native bf16 (AVX2 laptops and servers, most Arm machines) take the fp32 path:
bf16 there is emulated and dozens of times slower, so `auto` (the default) picks fp32, and both
towers run on OpenVINO's fp32 kernels when it is installed (`crossmodal.models.openvino_net`;
same arithmetic, about 1.3x (image) and 2x (text) PyTorch's fp32 on an AVX2 core), else on
the folded fp32 module and `PackedBert` in fp32.

The towers call these from `forward` when no gradient is needed; they return None (the caller
falls back to the reference path) when a fast path does not apply: training mode, grad enabled,
modules replaced by adapters (LoRA) in the image tower, or `CROSSMODAL_FAST=0`.
`CROSSMODAL_FAST` = auto | bf16 | fp32 | fp32-torch | 0: bf16 forces the bf16 path (runs
anywhere, slowly where emulated), fp32 the fp32 path (OpenVINO where installed), fp32-torch the
fp32 path on PyTorch alone. Rebuilt modules are cached on the tower and rebuilt whenever a
weight changes in place (as an optimiser step does), keyed by the tensors' version counters.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from crossmodal.models.packed_bert import PackedBert, packable

__all__ = [
    "FastEfficientNet",
    "PackedBert",
    "bf16_supported",
    "describe_paths",
    "fast_features",
    "fast_mode",
    "fast_text_net",
    "image_backend",
]


_BUILD_LOCK = threading.Lock()


#: A foreign module tree the fast paths read by attribute name (efficientnet_lite_pytorch's
#: EfficientNet and its blocks, which ship no types; a transformers BertModel and its layers).
#: `nn.Module.__getattr__` types every child as `Tensor | Module`, so walking such a tree with
#: `nn.Module` would need a cast per attribute; `_supported` / `packed_bert.packable` check the
#: shape at run time before any of it is read.
ForeignModule: TypeAlias = Any


def bf16_supported() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (else bf16 is emulated: slower)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


def _fast_setting() -> str:
    return os.environ.get("CROSSMODAL_FAST", "auto").strip().lower()


def fast_mode() -> str:
    """'off', 'fp32' or 'bf16', from CROSSMODAL_FAST (default: bf16 where native).

    `CROSSMODAL_FAST` = auto (default) | bf16 | fp32 | fp32-torch | 0: `fp32` and
    `fp32-torch` are both the fp32 path; they differ in the image tower's runtime
    (`image_backend`)."""
    from crossmodal.runtime import forced_fast_mode

    forced = forced_fast_mode()
    if forced is not None:
        return forced
    value = _fast_setting()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("fp32", "fp32-torch"):
        return "fp32"
    if value == "bf16":
        return "bf16"
    return "bf16" if bf16_supported() else "fp32"


def image_backend() -> str:
    """Which runtime runs the towers: 'openvino' on the fp32 path where OpenVINO is installed
    (unless CROSSMODAL_FAST=fp32-torch), 'torch' otherwise, 'reference' when off."""
    from crossmodal.runtime import forced_fast_mode

    mode = fast_mode()
    if mode == "off":
        return "reference"
    if mode == "fp32" and (_fast_setting() != "fp32-torch" or forced_fast_mode() is not None):
        from crossmodal.models.openvino_net import openvino_available

        if openvino_available():
            return "openvino"
    return "torch"


def describe_paths() -> dict[str, str]:
    """What this process runs, for benchmarks and `crossmodal stats`: the mode and the
    runtime of each tower."""
    mode = fast_mode()
    image = {
        "reference": "torch reference modules (fp32)",
        "openvino": "OpenVINO fp32",
        "torch": f"torch {mode} (BatchNorm folded, channels_last, oneDNN)",
    }[image_backend()]
    text = {"off": "torch reference (fp32)"}.get(mode, f"PackedBert {mode} (no padding)")
    if image_backend() == "openvino":
        text = "MiniLM on OpenVINO fp32"
    return {"mode": mode, "bf16_native": str(bf16_supported()), "image": image, "text": text}


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weights and bias with an eval-mode BatchNorm folded in (computed in float64)."""
    # eval-mode BatchNorm: running statistics tracked (the `_supported` check sees to it)
    assert bn.running_var is not None and bn.running_mean is not None
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
            tuple(weight.shape[2:]),  # type: ignore[arg-type]  # (kh, kw): a 2-tuple at run time
            stride=conv.stride,  # type: ignore[arg-type]  # Conv2d's own stride tuple
            padding=padding,
            groups=conv.groups,
            bias=True,
        )
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)  # type: ignore[union-attr]  # bias=True above
        self.relu6 = relu6
        #: conv + activation / residual in one oneDNN kernel (set by FastEfficientNet)
        self.fused = False

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """conv(x) (+ ReLU6) (+ residual), with the activation or the addition done by the
        convolution kernel itself where oneDNN's fused ops are available."""
        if self.pre_pad is not None:
            x = _pad(x, self.pre_pad)
        conv = self.conv
        if self.fused:
            args = (conv.padding, conv.stride, conv.dilation, conv.groups)
            fused: torch.Tensor  # (_CONV_PW is an untyped torch.ops handle)
            if residual is not None:  # (the projection convs, which have no activation)
                assert not self.relu6
                fused = _CONV_PW.binary(
                    x, residual, conv.weight, conv.bias, *args, "add", None, None, [], None
                )
            elif self.relu6:
                fused = _CONV_PW(x, conv.weight, conv.bias, *args, "hardtanh", [0.0, 6.0], None)
            else:
                fused = _CONV_PW(x, conv.weight, conv.bias, *args, "none", [], None)
            return fused
        x = conv(x)
        if self.relu6:
            x = F.hardtanh_(x, 0.0, 6.0)
        return x + residual if residual is not None else x


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """`F.pad(x, pad)` (zeros) that keeps channels_last: F.pad gave a contiguous (NCHW) tensor,
    which the next convolution converted back, and wrote every element twice (fill, copy)."""
    if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
        return F.pad(x, pad)
    left, right, top, bottom = pad
    n, c, h, w = x.shape
    out = torch.empty(
        (n, c, h + top + bottom, w + left + right),
        dtype=x.dtype,
        memory_format=torch.channels_last,
    )
    out[:, :, :top].zero_()
    out[:, :, top + h :].zero_()
    out[:, :, top : top + h, :left].zero_()
    out[:, :, top : top + h, left + w :].zero_()
    out[:, :, top : top + h, left : left + w].copy_(x)
    return out


#: oneDNN convolution with a fused post-op (what torch.compile's CPU backend calls); an
#: internal op, so its use is probed once per dtype and dropped if it is missing or fails.
_CONV_PW: Any = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
_FUSED_WORKS: dict[torch.dtype, bool] = {}


def _fused_ops_work(dtype: torch.dtype) -> bool:
    works = _FUSED_WORKS.get(dtype)
    if works is None:
        works = _probe_fused_ops(dtype)
        _FUSED_WORKS[dtype] = works
    return works


def _probe_fused_ops(dtype: torch.dtype) -> bool:
    """Whether the fused ops run here and give what the plain ops give (a tiny conv)."""
    if _CONV_PW is None or os.environ.get("CROSSMODAL_FAST_FUSED", "1") == "0":
        return False
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 9, generator=gen).to(dtype, memory_format=torch.channels_last)
    w = torch.randn(8, 1, 3, 3, generator=gen).to(dtype, memory_format=torch.channels_last)
    b = torch.randn(8, generator=gen).to(dtype)
    try:
        with torch.inference_mode():
            plain = F.hardtanh(F.conv2d(x, w, b, 1, 1, 1, 8), 0.0, 6.0)
            fused = _CONV_PW(x, w, b, [1, 1], [1, 1], [1, 1], 8, "hardtanh", [0.0, 6.0], None)
            summed = _CONV_PW.binary(
                x, x, w, b, [1, 1], [1, 1], [1, 1], 8, "add", None, None, [], None
            )
    except (RuntimeError, TypeError, AttributeError, NotImplementedError):
        return False
    tol = 0.05 if dtype == torch.bfloat16 else 1e-4
    return bool(
        torch.allclose(plain.float(), fused.float(), atol=tol)
        and torch.allclose((F.conv2d(x, w, b, 1, 1, 1, 8) + x).float(), summed.float(), atol=tol)
    )


class _Block(nn.Module):
    def __init__(self, block: ForeignModule) -> None:
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
        return self.project(self.depthwise(y), x if self.skip else None)


#: Images per pass through `FastEfficientNet` (see its forward).
IMAGES_PER_PASS = 4


class FastEfficientNet(nn.Module):
    """Inference-only copy of an EfficientNet-Lite feature extractor: pixels -> pooled features."""

    def __init__(
        self,
        net: ForeignModule,
        dtype: torch.dtype = torch.float32,
        fused: bool | None = None,
        images_per_pass: int | None = None,
    ) -> None:
        """`fused`: convolutions with their ReLU6 / residual addition fused (None: where the
        fused oneDNN ops work); `images_per_pass`: see `forward` (None: IMAGES_PER_PASS)."""
        super().__init__()
        self.stem = _ConvBN(net._conv_stem, net._bn0, True)
        self.blocks = nn.Sequential(*[_Block(b) for b in net._blocks])
        self.head = _ConvBN(net._conv_head, net._bn1, True)
        self.dtype = dtype
        self.images_per_pass = images_per_pass or IMAGES_PER_PASS
        use_fused = _fused_ops_work(dtype) if fused is None else fused
        for module in self.modules():
            if isinstance(module, _ConvBN):
                module.fused = use_fused
        self.eval()
        self.to(memory_format=torch.channels_last, dtype=dtype)  # type: ignore[call-overload]  # torch's stubs lack this overload

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(dtype=self.dtype, memory_format=torch.channels_last)
        # a few images at a time: the activations of 4 images at 240 px (up to ~11 MB in
        # bf16) stay in the caches between layers, 32 at once (~90 MB) go to memory after
        # every layer; on the 2-core EPYC 4 at a time ran ~1.3x as fast (docs/benchmarks.md)
        step = self.images_per_pass
        parts = [self._features(x[i : i + step]) for i in range(0, len(x), step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.head(x)
        # pooled in float32: the mean of 49 bf16 values would add rounding for nothing
        return x.float().mean(dim=(2, 3))


def _supported(net: ForeignModule) -> bool:
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


# Any parameter, buffer or submodule registered anywhere (a model built, a LoRA adapter
# injected) bumps this count; a module's list of tensors is collected again only then. Walking
# the module tree for it on every call (`net.parameters()`) took ~1 ms of a 10 ms text query.
# The hooks are global (every module of the process), so they are installed on the first use
# of a fast path, not when this module is imported: a tensor list collected then is current,
# and any registration after it is counted.
_registrations = [0]
_hooks_installed = [False]


def _registered(*args: object) -> None:
    _registrations[0] += 1


_HOOKS_LOCK = threading.Lock()


def _install_hooks() -> None:
    with _HOOKS_LOCK:
        if not _hooks_installed[0]:
            nn.modules.module.register_module_parameter_registration_hook(_registered)
            nn.modules.module.register_module_buffer_registration_hook(_registered)
            nn.modules.module.register_module_module_registration_hook(_registered)
            _hooks_installed[0] = True


def _weights_key(net: nn.Module) -> tuple[int, ...]:
    if not _hooks_installed[0]:
        _install_hooks()
    cached = net.__dict__.get("_fast_tensors")
    if cached is None or cached[0] != _registrations[0]:
        cached = (_registrations[0], (*net.parameters(), *net.buffers()))
        net.__dict__["_fast_tensors"] = cached  # outside the module tree, like _fast_cache
    # data_ptr catches a load_state_dict that swapped tensors, _version an in-place update
    return tuple(x for t in cached[1] for x in (t.data_ptr(), t._version))


def fast_features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor | None:
    """Pooled features through the fast path, or None when it does not apply (see module doc)."""
    if tower.training or torch.is_grad_enabled() or pixels.device.type != "cpu":
        return None
    mode = fast_mode()
    if mode == "off":
        return None
    net: ForeignModule = tower.net
    backend = image_backend()
    size = int(getattr(tower, "image_size", 0))
    if backend == "openvino" and tuple(pixels.shape[-2:]) != (size, size):
        backend = "torch"  # the OpenVINO graph is compiled for the tower's own input size
    key = (mode, backend, _weights_key(net))
    slot = f"_fast_cache_{backend}"
    cached = tower.__dict__.get(slot)
    if cached is None or cached[0] != key:
        with _BUILD_LOCK:  # the indexing pipeline calls this from several threads at once
            cached = tower.__dict__.get(slot)
            if cached is None or cached[0] != key:
                if not _supported(net):
                    return None
                dtype = torch.bfloat16 if mode == "bf16" else torch.float32
                fast: Any = FastEfficientNet(net, dtype)
                if backend == "openvino":
                    from crossmodal.models.openvino_net import OpenVINONet

                    fast = OpenVINONet(fast, size)
                # a plain __dict__ entry, outside the module tree: not saved, trained or moved
                cached = (key, fast)
                tower.__dict__[slot] = cached
    features: torch.Tensor = cached[1](pixels)
    return features


def fast_text_net(tower: nn.Module) -> Any:
    """An inference copy of a text tower's transformer, or None (use the original).

    `PackedBert` for a plain BERT (MiniLM), in bf16 where the CPU computes it natively and in
    fp32 elsewhere: dropping the padding rows pays on every CPU. On the fp32 path with
    OpenVINO installed (`image_backend() == 'openvino'`), `OpenVINOBert` instead: about
    twice PackedBert's fp32 speed on an AVX2 core. For anything else (a
    LoRA-wrapped one) a bf16 deep copy of the module on the bf16 path, and the original
    module on the fp32 path. A single query through MiniLM-L6 is bound by its weights, which
    bf16 halves (pooled features within cosine 0.9999 of fp32). Dynamic int8 quantisation was
    faster still but moved features by up to 0.06 in cosine: not kept.
    """
    mode = fast_mode()
    if tower.training or torch.is_grad_enabled() or mode == "off":
        return None
    net = getattr(tower, "net", None)
    if not isinstance(net, nn.Module):
        return None
    packable_net = packable(net)
    if mode == "fp32" and not packable_net:
        return None
    backend = image_backend()  # the fp32 path runs both towers on OpenVINO where installed
    key = (mode, backend, _weights_key(net))
    cached = tower.__dict__.get("_fast_cache")
    if cached is None or cached[0] != key:
        with _BUILD_LOCK:
            cached = tower.__dict__.get("_fast_cache")
            if cached is None or cached[0] != key:
                fast: Any
                if backend == "openvino":
                    from crossmodal.models.openvino_net import OpenVINOBert

                    fast = OpenVINOBert(net)
                elif packable_net:
                    fast = PackedBert(net, torch.bfloat16 if mode == "bf16" else torch.float32)
                else:
                    fast = copy.deepcopy(net).to(torch.bfloat16).eval()
                cached = (key, fast)
                tower.__dict__["_fast_cache"] = cached
    return cached[1]
