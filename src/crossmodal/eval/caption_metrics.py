"""BLEU-1..4 and CIDEr of generated captions, by the COCO caption toolkit (pycocoevalcap).

The toolkit's scorers are pure Python; its PTB tokenizer runs a Java program, so captions
are tokenised here instead, the same way the captioner's training targets are (lowercase,
punctuation dropped: `caption_words`). Scores are on the 0-1 scale of the toolkit (BLEU as a
fraction, CIDEr-D-style CIDEr around 0.5 for good Flickr8k models), corpus-level BLEU with the
"closest" reference length, as the COCO evaluation server reports them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.captioner import caption_words


def _tokenised(text: str) -> str:
    return " ".join(caption_words(text))


def caption_scores(
    references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str]
) -> dict[str, float]:
    """{"BLEU-1".."BLEU-4", "CIDEr"} over the images in `hypotheses` (each needs references)."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelNotAvailable(
            "caption metrics need the COCO caption toolkit: pip install pycocoevalcap"
        ) from exc
    if not hypotheses:
        raise ValueError("no captions to score")
    missing = [k for k in hypotheses if not references.get(k)]
    if missing:
        raise ValueError(f"{len(missing)} captions have no references (first: {missing[0]})")
    gts = {k: [_tokenised(r) for r in references[k]] for k in hypotheses}
    res = {k: [_tokenised(h)] for k, h in hypotheses.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores["CIDEr"] = float(cider)
    return scores


def cider_per_image(
    references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str]
) -> dict[str, float]:
    """Each image's own CIDEr (document frequencies from the whole set, as in the corpus score):
    what ranks example captions from good to bad."""
    from pycocoevalcap.cider.cider import Cider

    keys = list(hypotheses)
    gts = {k: [_tokenised(r) for r in references[k]] for k in keys}
    res = {k: [_tokenised(hypotheses[k])] for k in keys}
    _, per = Cider().compute_score(gts, res)
    return {k: float(v) for k, v in zip(keys, per, strict=True)}


@dataclass
class CaptionEvaluation:
    split: str
    images: int
    beam: int
    scores: dict[str, float]
    examples: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_captioner(
    data: str | Path,
    split: str = "test",
    beam: int = 3,
    captioner_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    examples: int = 10,
) -> CaptionEvaluation:
    """Caption every image of a Flickr8k split and score against all its references; the
    examples are the best and the worst half by the image's own CIDEr (ties by name)."""
    from crossmodal.models.captioner import check_image_model, load_captioner
    from crossmodal.models.registry import load_model
    from crossmodal.train.captioner import split_features

    started = time.perf_counter()
    captioner = load_captioner(captioner_dir)
    image_model = str(captioner.info.get("image_model", "default"))
    check_image_model(captioner, load_model(image_model))
    feats = split_features(data, split, image_model, Path(cache_dir) if cache_dir else None)
    hyps = dict(
        zip(feats.names, captioner.caption_features(feats.features, beam=beam), strict=True)
    )
    refs = dict(zip(feats.names, feats.captions, strict=True))
    scores = caption_scores(refs, hyps)
    per = cider_per_image(refs, hyps)
    ranked = sorted(feats.names, key=lambda n: (-per[n], n))
    good, bad = examples - examples // 2, examples // 2
    chosen = ranked[:good] + (ranked[-bad:] if bad else [])
    rows = [
        {"image": n, "caption": hyps[n], "cider": round(per[n], 3), "references": refs[n]}
        for n in chosen
    ]
    return CaptionEvaluation(
        split=split,
        images=len(feats.names),
        beam=beam,
        scores={k: round(v, 4) for k, v in scores.items()},
        examples=rows,
        seconds=round(time.perf_counter() - started, 1),
    )
