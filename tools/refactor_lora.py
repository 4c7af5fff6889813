"""Shrink a saved model whose LoRA adapters were merged into full text-tower weights.

Early fine-tuning runs saved merged weights (every MiniLM linear layer in full, ~21 MB).
The change to each weight is low-rank by construction (rank r LoRA), so a truncated SVD of
(saved - pretrained) at rank r recovers it as factors B @ A that `DualEncoder.load` merges
back; what the SVD drops is the float16 rounding of the saved copy.

    python tools/refactor_lora.py RUN/best OUT --rank 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from crossmodal.models.dual import DualEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rank", type=int, required=True)
    args = parser.parse_args()
    config = json.loads((args.model / "config.json").read_text())
    tuned = DualEncoder.load(args.model)
    base = DualEncoder({k: v for k, v in config.items() if k not in ("saved_towers",)})
    text_prefixes = [p for p in config["saved_tower_params"] if p.startswith("text_tower.")]
    base_params = dict(base.named_parameters())
    factors: dict[str, torch.Tensor] = {}
    worst = 0.0
    for name, weight in tuned.named_parameters():
        if not name.endswith(".weight") or weight.ndim != 2:
            continue
        if not any(name.startswith(p) for p in text_prefixes):
            continue
        delta = (weight - base_params[name]).detach().double()
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = args.rank
        b = u[:, :r] * s[:r].sqrt()
        a = s[:r].sqrt()[:, None] * vh[:r]
        residual = float((delta - b @ a).norm() / delta.norm().clamp(min=1e-12))
        worst = max(worst, residual)
        module = name.removesuffix(".weight")
        factors[f"{module}.lora_A"] = a.float()
        factors[f"{module}.lora_B"] = b.float()
    keep = [p for p in config["saved_tower_params"] if not p.startswith("text_tower.")]
    # rebuild: pretrained text tower + factors, tuned image tower + heads
    config["saved_tower_params"] = keep
    model = DualEncoder(config)
    state = {k: v for k, v in tuned.state_dict().items() if not k.startswith("text_tower.")}
    model.load_state_dict(state, strict=False)
    model.merge_lora_factors(factors, 1.0)
    model.lora_factors = {k: v.half() for k, v in factors.items()}
    model.saved_towers = set(config.get("saved_towers", []))
    info = dict(config.get("info", {}))
    info["lora_refactored"] = (
        f"text-tower changes stored as rank-{args.rank} factors (SVD of the merged weights; "
        f"largest relative residual {worst:.4f})"
    )
    model.config["info"] = info
    model.save(args.out)
    print(f"saved {args.out}: {len(factors) // 2} factored weights, worst residual {worst:.4f}")


if __name__ == "__main__":
    main()
