"""Chinese vs English text->image on the hand-translated fixture, over the full Flickr8k test
gallery (1,000 images). Writes a section of docs/benchmarks.md.

    python benchmarks/chinese_queries.py [--model default] [--root ../shared/data/flickr8k]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from crossmodal.data import load_dataset
from crossmodal.eval.metrics import best_relevant_ranks, metrics_from_ranks
from crossmodal.models import load_model
from crossmodal.models.features import default_cache_dir, embed_image_files

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "chinese_queries.json"


def score(
    model_name: str, root: str, fixture: Path = FIXTURE, split: str = "test"
) -> dict[str, dict[str, float]]:
    model = load_model(model_name)
    ds = load_dataset("flickr8k", root, split=split)
    images = embed_image_files(
        model, ds.image_paths, cache_dir=default_cache_dir(), show_progress=False
    )
    names = [p.name for p in ds.image_paths]
    queries = json.loads(fixture.read_text())["queries"]
    truth = np.array([names.index(q["image"]) for q in queries])
    out = {}
    for lang in ("en", "zh"):
        text = model.encode_texts([q[lang] for q in queries])
        scores = text @ images.vectors.T
        rel = np.zeros_like(scores, dtype=bool)
        rel[np.arange(len(truth)), truth] = True
        out[lang] = metrics_from_ranks(best_relevant_ranks(scores, rel))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default")
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    result = score(args.model, args.root)
    lines = [
        "<!-- chinese:start -->",
        "## Chinese queries (hand-translated test captions)",
        "",
        f"{len(json.loads(FIXTURE.read_text())['queries'])} Flickr8k test captions translated "
        "by hand (`tests/fixtures/chinese_queries.json`), each searched against the full "
        f"1,000-image test gallery with model `{args.model}`. Produced by "
        f"`python benchmarks/chinese_queries.py --model {args.model}`.",
        "",
        "| language | R@1 | R@5 | R@10 | MRR | MedR |",
        "|---|---|---|---|---|---|",
    ]
    for lang, m in result.items():
        lines.append(
            f"| {lang} | {m['R@1']:.1f} | {m['R@5']:.1f} | {m['R@10']:.1f} | "
            f"{m['MRR']:.3f} | {m['MedR']:.0f} |"
        )
    lines.append("<!-- chinese:end -->")
    section = "\n".join(lines)
    print(section)
    doc = Path(args.doc)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if "<!-- chinese:start -->" in text:
        head, rest = text.split("<!-- chinese:start -->", 1)
        tail = rest.split("<!-- chinese:end -->", 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
