"""Chinese vs English text->image on the hand-translated fixtures, over the full Flickr8k
gallery of the fixture's split (1,000 images). Writes a section of docs/benchmarks.md.

    python benchmarks/chinese_queries.py [--model default] [--root ../shared/data/flickr8k]

Scores are what a collection indexed with the model returns: with the model's hubness
correction when it has one (also shown without). Chinese queries go through the model's
multilingual path, blended with their dictionary gloss at the weight in the model's config;
the val fixture's sweep over that weight (the table's first part) is how it was chosen; the
test fixture is only scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from crossmodal.data import load_dataset
from crossmodal.eval.metrics import best_relevant_ranks, metrics_from_ranks
from crossmodal.models import load_model
from crossmodal.models.features import default_cache_dir, embed_image_files

REPO = Path(__file__).resolve().parents[1]
FIXTURES = {
    "val": REPO / "tests" / "fixtures" / "chinese_queries_val.json",
    "test": REPO / "tests" / "fixtures" / "chinese_queries.json",
}
SWEEP = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def score(
    model: Any, root: str, split: str, gloss_weights: tuple[float, ...] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """{setting: {"hubness" | "raw": metrics}}; settings "en", "zh" (the model's config) and,
    with `gloss_weights`, "zh gloss w" for each weight."""
    ds = load_dataset("flickr8k", root, split=split)
    images = embed_image_files(
        model, ds.image_paths, cache_dir=default_cache_dir(), show_progress=False
    ).vectors
    offsets = (
        model.hubness.offsets(images, "images")
        if model.hubness is not None
        else np.zeros(len(images), np.float32)
    )
    names = [p.name for p in ds.image_paths]
    queries = json.loads(FIXTURES[split].read_text())["queries"]
    truth = np.array([names.index(q["image"]) for q in queries])
    rel = np.zeros((len(truth), len(images)), dtype=bool)
    rel[np.arange(len(truth)), truth] = True

    def both(vectors: np.ndarray) -> dict[str, dict[str, float]]:
        raw = vectors @ images.T
        return {
            "hubness": metrics_from_ranks(best_relevant_ranks(raw + offsets[None], rel)),
            "raw": metrics_from_ranks(best_relevant_ranks(raw, rel)),
        }

    out = {
        "en": both(model.encode_texts([q["en"] for q in queries])),
        "zh": both(model.encode_texts([q["zh"] for q in queries])),
    }
    if gloss_weights:
        saved = dict(model.config.get("multilingual_gloss", {}))
        try:
            for w in gloss_weights:
                model.config["multilingual_gloss"] = {"weight": w}
                out[f"zh, gloss {w:g}"] = both(model.encode_texts([q["zh"] for q in queries]))
        finally:
            model.config["multilingual_gloss"] = saved
    return out


def table(result: dict[str, dict[str, dict[str, float]]], has_hubness: bool) -> list[str]:
    lines = [
        "| queries | R@1 | R@5 | R@10 | MRR | MedR | R@5 without hubness correction |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting, by in result.items():
        m = by["hubness"]
        raw = f"{by['raw']['R@5']:.1f}" if has_hubness else "(no correction)"
        lines.append(
            f"| {setting} | {m['R@1']:.1f} | {m['R@5']:.1f} | {m['R@10']:.1f} | "
            f"{m['MRR']:.3f} | {m['MedR']:.0f} | {raw} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default")
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from docsection import update_section

    model = load_model(args.model)
    weight = float(getattr(model, "gloss_weight", 0.0))
    val = score(model, args.root, "val", SWEEP)
    test = score(model, args.root, "test")
    has = model.hubness is not None
    n_val = len(json.loads(FIXTURES["val"].read_text())["queries"])
    n_test = len(json.loads(FIXTURES["test"].read_text())["queries"])
    gap = test["en"]["hubness"]["R@5"] - test["zh"]["hubness"]["R@5"]
    lines = [
        "<!-- chinese:start -->",
        "## Chinese queries (hand-translated captions)",
        "",
        f"Flickr8k captions translated by hand into Chinese, each searched against the full "
        f"1,000-image gallery of its split with model `{args.model}`, scored as a collection "
        "indexed with the model answers (with its hubness correction; the last column without "
        f"it). Produced by `python benchmarks/chinese_queries.py --model {args.model}`.",
        "",
        f"**Choosing the gloss weight: val fixture** ({n_val} val captions, "
        "`tests/fixtures/chinese_queries_val.json`). A Chinese query's vector is the "
        "multilingual (USE) path's, blended with its dictionary gloss read by the English path "
        "(`crossmodal/models/gloss.py`) at weight w (0: USE alone, 1: gloss alone).",
        "",
        *table(val, has),
        "",
        f"**Test fixture** ({n_test} test captions, `tests/fixtures/chinese_queries.json`), "
        f"with the weight the model ships ({weight:g}):",
        "",
        *table(test, has),
        "",
        f"English minus Chinese R@5 on the test fixture: {gap:.1f} points.",
        "<!-- chinese:end -->",
    ]
    section = "\n".join(lines)
    print(section)
    update_section(Path(args.doc), "chinese", section)


if __name__ == "__main__":
    main()
