"""The image tower on other runtimes: ONNX Runtime fp32 and static int8 against OpenVINO fp32
(the fp32 path's runtime), model only, with the fidelity each keeps (issue 13).

    .venv/bin/python benchmarks/image_runtimes.py                       # every variant
    .venv/bin/python benchmarks/image_runtimes.py --variants ort-fp32,ov-fp32 --fidelity 64

Needs the `bench` extra (`pip install -e '.[bench]'`: onnx, onnxruntime). The network is the
BatchNorm-folded `FastEfficientNet`, written as an ONNX graph straight from its weights (as
`crossmodal.models.openvino_net` writes the OpenVINO one: no tracing). int8 variants are ONNX
Runtime static quantisation (QDQ, per-channel weights) calibrated on Flickr8k **train** images;
fidelity is measured on `--split` images (val by default) against the reference module
(CROSSMODAL_FAST=0): the cosine of the pooled features and of the final embeddings (through
the model's image head). Speed is images per second of wall time and per CPU-second of this
process (on a shared machine the second is the steadier figure), one thread per batch, batches
run one after another and two side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: int8 variants: (activation type, weight type, reduce_range, which convolutions: all of them,
#: all but the depthwise ones, or only the 1x1 expansions whose output goes through ReLU6).
#: u8s8 is ORT's default; on AVX2 without VNNI its u8 x s8 products are summed in pairs into
#: int16 (vpmaddubsw), which saturates; reduce_range (7-bit weights) or u8u8 avoid that.
INT8_VARIANTS: dict[str, tuple[str, str, bool, str]] = {
    "ort-int8-u8s8": ("QUInt8", "QInt8", False, "all"),
    "ort-int8-u8s8-reduced": ("QUInt8", "QInt8", True, "all"),
    "ort-int8-u8u8": ("QUInt8", "QUInt8", False, "all"),
    "ort-int8-u8u8-no-depthwise": ("QUInt8", "QUInt8", False, "no-depthwise"),
    "ort-int8-u8u8-expand-only": ("QUInt8", "QUInt8", False, "expand"),
    "ort-int8-u8s8-reduced-expand-only": ("QUInt8", "QInt8", True, "expand"),
}
ALL_VARIANTS = ["ov-fp32", "ort-fp32", *INT8_VARIANTS]

Runner = Callable[[np.ndarray], np.ndarray]


def build_onnx(fast_net: Any, image_size: int) -> Any:
    """The ONNX graph (opset 17) of a float32 `FastEfficientNet`: pixels -> pooled features."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    weights: list[Any] = []

    def constant(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(array, name))
        return name

    clip_low = constant("relu6_low", np.array(0.0, np.float32))
    clip_high = constant("relu6_high", np.array(6.0, np.float32))

    def conv(x: str, unit: Any) -> str:
        layer = unit.conv
        k = len(nodes)
        weight = constant(f"w{k}", layer.weight.detach().float().contiguous().numpy())
        bias = constant(f"b{k}", layer.bias.detach().float().numpy())
        if unit.pre_pad is not None:
            left, right, top, bottom = unit.pre_pad
        else:
            top = bottom = int(layer.padding[0])
            left = right = int(layer.padding[1])
        y = f"conv{k}"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, weight, bias],
                [y],
                name=y,
                strides=list(layer.stride),
                pads=[top, left, bottom, right],
                group=int(layer.groups),
            )
        )
        if not unit.relu6:
            return y
        nodes.append(helper.make_node("Clip", [y, clip_low, clip_high], [f"{y}_relu6"]))
        return f"{y}_relu6"

    x = conv("pixels", fast_net.stem)
    for block in fast_net.blocks:
        y = conv(x, block.expand) if block.expand is not None else x
        y = conv(conv(y, block.depthwise), block.project)
        if block.skip:
            nodes.append(helper.make_node("Add", [y, x], [f"{y}_sum"]))
            y = f"{y}_sum"
        x = y
    x = conv(x, fast_net.head)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    size = image_size
    graph = helper.make_graph(
        nodes,
        "efficientnet-lite-features",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 1280])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize(fp32_path: Path, out: Path, variant: str, calibration: np.ndarray) -> None:
    """Static int8 (QDQ, per-channel weights), calibrated (min/max) on `calibration`."""
    import onnx
    from onnxruntime import quantization as q

    act, weight, reduce, scope = INT8_VARIANTS[variant]
    graph = onnx.load(str(fp32_path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    depthwise = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    into_relu6 = {n.input[0] for n in graph.node if n.op_type == "Clip"}
    shapes = {w.name: list(w.dims[2:]) for w in graph.initializer}
    expand = [  # 1x1, not the stem or the head (first and last), followed by ReLU6
        n.name
        for n in convs[1:-1]
        if n.name not in depthwise and shapes[n.input[1]] == [1, 1] and n.output[0] in into_relu6
    ]

    class Batches(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration[i : i + 8] for i in range(0, len(calibration), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"pixels": batch}

    q.quantize_static(
        str(fp32_path),
        str(out),
        Batches(),
        quant_format=q.QuantFormat.QDQ,
        per_channel=True,
        activation_type=getattr(q.QuantType, act),
        weight_type=getattr(q.QuantType, weight),
        reduce_range=reduce,
        nodes_to_exclude=depthwise if scope == "no-depthwise" else [],
        nodes_to_quantize=expand if scope == "expand" else [],  # [] quantises every node
    )


def ort_runner(path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one batch per thread, as the indexing pipeline runs
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {"pixels": pixels})[0]


def ov_runner(fast_net: Any, image_size: int) -> Runner:
    import torch

    from crossmodal.models.openvino_net import OpenVINONet

    net = OpenVINONet(fast_net, image_size, streams=2)
    return lambda pixels: net(torch.from_numpy(pixels)).numpy()


def load_pixels(tower: Any, root: Path, split: str, count: int) -> np.ndarray:
    from PIL import Image

    names = (root / f"{split}.txt").read_text().split()[:count]
    return np.stack([tower.preprocess(Image.open(root / "images" / n)).numpy() for n in names])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def speed(run: Runner, pixels: np.ndarray, batch: int, side_by_side: int) -> tuple[float, float]:
    """(images/s wall, images per CPU-second) over `pixels` in batches of `batch`."""
    batches = [pixels[i : i + batch] for i in range(0, len(pixels), batch)]
    run(batches[0])  # warm-up: first-call allocations and kernel selection
    wall, cpu = time.perf_counter(), time.process_time()
    if side_by_side == 1:
        for chunk in batches:
            run(chunk)
    else:
        with ThreadPoolExecutor(side_by_side) as pool:
            list(pool.map(run, batches))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(pixels) / wall, len(pixels) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/flickr8k")
    parser.add_argument("--split", default="val", help="fidelity images (never train)")
    parser.add_argument("--fidelity", type=int, default=256, help="images for the cosines")
    parser.add_argument("--calibration", type=int, default=96, help="train images")
    parser.add_argument("--images", type=int, default=32, help="images per speed figure")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS))
    parser.add_argument("--work", type=Path, default=None, help="folder for the .onnx files")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (args.root / "train.txt").is_file():
        sys.exit(f"no Flickr8k at {args.root}: pass --root")
    import tempfile

    import onnx
    import torch

    from crossmodal.models import load_model
    from crossmodal.models.fast import FastEfficientNet
    from crossmodal.runtime import describe_machine

    print(f"measuring on {describe_machine()}; load average {os.getloadavg()}", flush=True)
    model = load_model(args.model)
    tower = model.image_tower
    os.environ["CROSSMODAL_FAST"] = "0"
    test = load_pixels(tower, args.root, args.split, args.fidelity)
    with torch.inference_mode():
        chunks = [tower(torch.from_numpy(test[i : i + 16])) for i in range(0, len(test), 16)]
    reference = torch.cat(chunks).numpy()

    def project(features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.project_images(torch.from_numpy(features)).numpy()

    fast_net = FastEfficientNet(tower.net, torch.float32, fused=False)
    work = args.work or Path(tempfile.mkdtemp(prefix="crossmodal-runtimes-"))
    fp32_path = work / "fp32.onnx"
    onnx.save(build_onnx(fast_net, tower.image_size), str(fp32_path))
    calibration: np.ndarray | None = None
    batches = [int(b) for b in args.batches.split(",")]
    for variant in args.variants.split(","):
        if variant == "ov-fp32":
            run = ov_runner(fast_net, tower.image_size)
        elif variant == "ort-fp32":
            run = ort_runner(fp32_path)
        else:
            if calibration is None:
                calibration = load_pixels(tower, args.root, "train", args.calibration)
            quantize(fp32_path, work / f"{variant}.onnx", variant, calibration)
            run = ort_runner(work / f"{variant}.onnx")
        out = np.concatenate([run(test[i : i + 16]) for i in range(0, len(test), 16)])
        pooled, embedded = cosines(out, reference), cosines(project(out), project(reference))
        print(
            f"{variant}: pooled cosine min {pooled.min():.4f} mean {pooled.mean():.4f}; "
            f"embedding cosine min {embedded.min():.4f} mean {embedded.mean():.4f} "
            f"({len(test)} {args.split} images)",
            flush=True,
        )
        for side_by_side in (1, 2):
            figures = [speed(run, test[: args.images], b, side_by_side) for b in batches]
            cells = "  ".join(
                f"batch {b}: {w:.1f}/s ({c:.1f}/CPU-s)"
                for b, (w, c) in zip(batches, figures, strict=True)
            )
            print(f"  {side_by_side} batch(es) side by side, 1 thread each: {cells}", flush=True)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
