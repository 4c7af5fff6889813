#!/usr/bin/env bash
# Merge the parts sent by tools/pack_for_device.py into /root/pack and turn the float16
# weight copies back into the float32 files the packages expect. Safe to run once per part.
set -euo pipefail
P=/root/pack
mkdir -p "$P/site" "$P/data"
for part in .gpupack/part*; do
  [ -d "$part" ] || continue
  [ -d "$part/site" ] && cp -r "$part/site/." "$P/site/"
  [ -d "$part/flickr8k" ] && mkdir -p "$P/data/flickr8k" && cp -r "$part/flickr8k/." "$P/data/flickr8k/"
done
PYTHONPATH="$P/site" python3 - <<'PY'
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
for f in Path("/root/pack/site").rglob("*.fp16"):
    target = f.with_suffix(".safetensors" if "minilm" in str(f) else ".pth")
    if target.suffix == ".safetensors":
        save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(f).items()}, str(target))
    else:
        sd = torch.load(f, map_location="cpu", weights_only=True)
        torch.save({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, target)
    f.unlink()
    print("restored", target)
PY
echo "unpacked: $(ls $P/site | tr '\n' ' '); images: $(ls $P/data/flickr8k/images 2>/dev/null | wc -l)"
