"""The towers on OpenVINO: the fp32 path for CPUs without native bf16 (AVX2 and older).

`FastEfficientNet` makes the EfficientNet-Lite tower fast with oneDNN's bf16 kernels, which
only AVX512-BF16 / AMX CPUs run natively; on an AVX2 CPU its fp32 variant is the one left,
and PyTorch's fp32 convolutions for this network (depthwise 3x3 and 5x5, small 1x1s) are
the slow part. OpenVINO's CPU plugin has JIT kernels for exactly these layers on AVX2 and
runs the same fp32 arithmetic (features within cosine 0.99999 of the reference module):
measured side by side in docs/benchmarks.md.

The graph is built directly with OpenVINO's operation set from the BatchNorm-folded weights
of `FastEfficientNet` (a few dozen convolutions): no tracing, no ONNX file, a few
milliseconds to build, so a new or changed model needs no conversion step or cache.
Asymmetric TF-"SAME" padding becomes the convolution's own begin/end padding.

MiniLM (`OpenVINOBert`) is converted from the transformers module by OpenVINO's PyTorch
frontend, which takes seconds, so its graph is saved under the feature cache folder, keyed by
a digest of the weights and the OpenVINO version, and read back by later processes. Its
per-query time on an AVX2 core is about half that of PyTorch's fp32 (docs/benchmarks.md).

int8 was tried twice and not kept (issue 13; `benchmarks/image_runtimes.py` re-runs it).
ONNX Runtime static QDQ, per-channel weights, calibrated on Flickr8k train images, measured on
256 val images on the 2-core AMD EPYC (AVX2, no VNNI): the default u8s8 moves pooled features
to cosine 0.58 (without VNNI, u8 x s8 products are summed in pairs into int16, which
saturates) and is no faster than fp32 (22 vs 25 images per CPU-second); 7-bit weights avoid
the saturation but reach only 0.81; u8u8 (exact integer sums) 0.89 at 2 images per
CPU-second; even only the 1x1 expansion convolutions in int8 give 0.96 and 18.5 per
CPU-second. The bar is 0.99 per image. ONNX Runtime fp32 gives these same vectors (cosine
0.9999999) at 24.9 images per CPU-second to OpenVINO's 23.1 (interleaved in one process on
the loaded machine): within its noise, so OpenVINO stays, running both towers.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["OpenVINOBert", "OpenVINONet", "openvino_available"]


def openvino_available() -> bool:
    """Whether the `openvino` package imports (installed by `make setup`)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVINONet:
    """pixels (n, 3, S, S) float32 -> pooled features (n, 1280), compiled for this CPU.

    Thread-safe: each calling thread gets its own infer request, and the compiled model has
    one stream per core, so the indexing pipeline's side-by-side batches run in parallel
    (as its single-threaded torch batches do) and a single query takes one stream.
    """

    def __init__(self, fast_net: Any, image_size: int, streams: int | None = None) -> None:
        """`fast_net`: a float32 `FastEfficientNet` (its folded weights are read, not kept)."""
        self.streams = max(1, streams or os.cpu_count() or 1)
        self._compiled = _compile(_build(fast_net, image_size), self.streams)
        self._local = threading.local()

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenVINONet:
        # a deep-copied tower carries this in its fast-path cache: the compiled model cannot
        # be copied, and need not be (the copy's weights are new tensors, so its cache key
        # differs and it builds its own on first use)
        return self

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        array = np.ascontiguousarray(pixels.detach().float().numpy())
        out = request.infer({0: array})[0]
        # the request reuses its output buffer on the next call: copy it out
        return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))


def _build(fast_net: Any, image_size: int) -> Any:
    """The OpenVINO graph of a float32 `FastEfficientNet`."""
    import openvino as ov
    import openvino.opset15 as ops

    pixels = ops.parameter([-1, 3, image_size, image_size], ov.Type.f32, name="pixels")
    x = _conv(pixels, fast_net.stem)
    for block in fast_net.blocks:
        y = _conv(x, block.expand) if block.expand is not None else x
        y = _conv(_conv(y, block.depthwise), block.project)
        x = ops.add(y, x) if block.skip else y
    x = _conv(x, fast_net.head)
    pooled = ops.reduce_mean(x, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)
    pooled.output(0).get_tensor().set_names({"features"})
    return ov.Model([pooled], [pixels], "efficientnet-lite-features")


def _conv(x: Any, unit: Any) -> Any:
    """One folded `_ConvBN`: convolution (+ bias) (+ ReLU6), its padding as begin/end pads."""
    import openvino.opset15 as ops

    conv = unit.conv
    weight = conv.weight.detach().float().contiguous().numpy()
    bias = conv.bias.detach().float().numpy().reshape(1, -1, 1, 1)
    if unit.pre_pad is not None:
        left, right, top, bottom = unit.pre_pad
    else:
        top = bottom = int(conv.padding[0])
        left = right = int(conv.padding[1])
    stride = [int(s) for s in conv.stride]
    begin, end, dilation = [top, left], [bottom, right], [1, 1]
    groups = int(conv.groups)
    if groups == 1:
        y = ops.convolution(x, ops.constant(weight), stride, begin, end, dilation)
    else:
        out_ch, in_per_group = weight.shape[0], weight.shape[1]
        grouped = weight.reshape(groups, out_ch // groups, in_per_group, *weight.shape[2:])
        y = ops.group_convolution(x, ops.constant(grouped), stride, begin, end, dilation)
    y = ops.add(y, ops.constant(bias))
    return ops.clamp(y, 0.0, 6.0) if unit.relu6 else y


def _compile(model: Any, streams: int) -> Any:
    import openvino as ov

    return ov.Core().compile_model(
        model,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "f32",  # never bf16/fp16: same vectors on every CPU
            "NUM_STREAMS": streams,
            "INFERENCE_NUM_THREADS": streams,
            # other processes share the cores: pinned threads would wait on them
            "ENABLE_CPU_PINNING": False,
        },
    )


@dataclass
class BertOutput:
    """The one field of a transformers model output that `MiniLMTower` reads."""

    last_hidden_state: torch.Tensor


class _HiddenStates(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _weights_digest(net: torch.nn.Module) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class OpenVINOBert:
    """A transformers BertModel (MiniLM) on OpenVINO: `(input_ids=, attention_mask=)` ->
    an object with `last_hidden_state`, as the module returns (within 1e-5 of it)."""

    def __init__(
        self, net: torch.nn.Module, cache_dir: Path | None = None, streams: int | None = None
    ) -> None:
        import openvino as ov

        from crossmodal.models.features import default_cache_dir

        self.streams = max(1, streams or os.cpu_count() or 1)
        folder = (cache_dir or default_cache_dir()) / "openvino"
        key = f"bert-{_weights_digest(net)}-ov{ov.__version__.split('-')[0]}"
        xml = folder / f"{key}.xml"
        model = None
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            try:
                model = ov.Core().read_model(str(xml))
            except RuntimeError:  # a damaged file: convert again below
                model = None
        if model is None:
            model = self._convert(net)
            self._save(model, folder, xml)
        self._compiled = _compile(model, self.streams)
        self._local = threading.local()

    @staticmethod
    def _convert(net: torch.nn.Module) -> Any:
        import openvino as ov

        example = (torch.ones(1, 8, dtype=torch.long), torch.ones(1, 8, dtype=torch.long))
        dynamic = [("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)]
        # transformers' attention code warns that tracing fixes its Python conditions; the
        # ones it fixes do not depend on the shapes (a mask is always given)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ov.convert_model(_HiddenStates(net).eval(), example_input=example, input=dynamic)

    @staticmethod
    def _save(model: Any, folder: Path, xml: Path) -> None:
        """Written under temporary names and renamed: a reader never sees half a file."""
        import openvino as ov

        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{xml.stem}.{os.getpid()}.{threading.get_ident()}.xml"
            ov.save_model(model, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(tmp, xml)
        except (OSError, RuntimeError):  # a read-only cache: convert again next time
            pass

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenVINOBert:
        return self  # see OpenVINONet.__deepcopy__

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BertOutput:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        out = request.infer(
            {
                "input_ids": input_ids.to(torch.long).numpy(),
                "attention_mask": attention_mask.to(torch.long).numpy(),
            }
        )[0]
        return BertOutput(torch.from_numpy(np.array(out, dtype=np.float32, copy=True)))
