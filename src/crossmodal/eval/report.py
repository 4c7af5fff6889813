"""`build_report`: a Markdown + self-contained HTML report of one or more models on a split.

The numbers come from one place: each model's split is embedded through the eval cache
(`embed_split`), its per-query ranks come from `retrieval_ranks`, and the headline table is the
very dict `evaluate` returns (written to `metrics.json`). Every other table (recall by caption
length, by category, by gallery size, the prompt study, the top-K grids, the confused pairs,
seed 003's protocol) is computed from those same ranks and embeddings, scored as the model's
search scores them (`search_scoring`: the hubness correction, mirrored image queries), so a
report can never disagree with `crossmodal eval` or with what a collection returns. Only the
similarity heatmap and the t-SNE map show the raw embedding space.

How the parts fit: `report_runs` measures each model (`ModelRun`), `sections` and `paper` turn
the measurements into sections of the document model (`document`), and `render` writes that
one document twice (Markdown and HTML), so the two files always hold the same content. This
module runs those steps and writes metrics.json and analysis.json.

Photos: Flickr8k may be used for research but not redistributed. With `photos=True` the top-K
grids show thumbnails (at most 88 px) for local reading; with `photos=False` they show grey
placeholders, so the output can be committed or shared. In both cases photo file names link to
the images relatively, which opens them only where the dataset sits on disk.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset
from crossmodal.errors import CrossmodalError
from crossmodal.eval import analysis as an
from crossmodal.eval import paper, plots, sections
from crossmodal.eval.document import Block
from crossmodal.eval.options import ReportOptions, check_gallery_sizes
from crossmodal.eval.render import render_html, render_markdown
from crossmodal.eval.report_facts import facts as report_facts
from crossmodal.eval.report_runs import (
    FAIL_AFTER,
    THUMBNAIL_PX,
    ModelRun,
    SaveFigure,
    embed_and_score,
    grids,
    heatmap,
    make_thumbnailer,
    prompt_sample,
    prompt_study,
    rel_link,
    tsne_figure,
)
from crossmodal.models.base import Encoder

# ----------------------------------------------------------------------------- result


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    metrics: list[dict[str, Any]]
    analysis: dict[str, Any]
    seconds: float


# ----------------------------------------------------------------------------- helpers


def model_labels(names: Sequence[str]) -> list[str]:
    """Short display names: a model folder's name rather than its whole path, unless two
    models would then share a label."""

    def short(name: str) -> str:
        if "/" not in name and os.sep not in name:
            return name
        p = Path(name.rstrip("/"))
        return f"{p.parent.name}/best" if p.name == "best" and p.parent.name else p.name

    labels = [short(n) for n in names]
    return labels if len(set(labels)) == len(labels) else list(names)


def _slugs(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        base = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "model"
        slug, n = base, 2
        while slug in out:
            slug, n = f"{base}-{n}", n + 1
        out.append(slug)
    return out


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the report folder and prove it is writable before any slow work starts."""
    out = Path(out_dir).expanduser()
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CrossmodalError(
            f"cannot write the report to {out}: {reason}; choose another --out folder"
        ) from None
    return out


# ----------------------------------------------------------------------------- the report


def build_report(
    models: Sequence[Encoder],
    dataset: ImageTextDataset,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    options: ReportOptions | None = None,
    show_progress: bool = True,
) -> ReportResult:
    """Evaluate `models` on `dataset` and write report.md, report.html, metrics.json,
    analysis.json and figures/*.png into `out_dir`."""
    opt = (options or ReportOptions()).validate()
    start = time.perf_counter()
    if not models:
        raise CrossmodalError("give at least one --model")
    out = prepare_out_dir(Path(out_dir))
    check_gallery_sizes(len(dataset), opt.gallery_sizes, dataset.split)
    if cache_dir is None:
        # Without a persistent cache, a throw-away one still lets every step after `evaluate`
        # reuse its embeddings instead of running the towers again.
        with tempfile.TemporaryDirectory(prefix="crossmodal-report-") as tmp:
            return _build(models, dataset, out, Path(tmp), opt, show_progress, start, False)
    return _build(models, dataset, out, Path(cache_dir), opt, show_progress, start, True)


#: The stages of one model's part of a report, in order (progress bar and run-time table).
STAGES = (
    "embed + eval",
    "groups",
    "gallery sizes",
    "prompt study",
    "t-SNE",
    "heatmap",
    "top-K grids",
    "what went wrong",
)


class _Stages:
    """The progress bar and the wall time of each stage of each model."""

    def __init__(self, n_models: int, show_progress: bool) -> None:
        self.bar = tqdm(
            total=n_models * len(STAGES), desc="report", unit="step", disable=not show_progress
        )
        self.name, self.label, self.started = "", "", 0.0

    def start(self, label: str, name: str) -> None:
        self.bar.set_postfix_str(f"{label}: {name}")
        self.label, self.name, self.started = label, name, time.perf_counter()

    def done(self, run: ModelRun) -> None:
        run.seconds[self.name] = round(time.perf_counter() - self.started, 2)
        self.bar.update(1)


def _measure(
    model: Encoder,
    run: ModelRun,
    cache: Path,
    opt: ReportOptions,
    save: SaveFigure,
    stages: _Stages,
    show_progress: bool,
) -> None:
    """Every analysis and figure of one model, after its embed + eval stage."""
    split, n_img = run.split, len(run.split.image_paths)
    stages.start(run.label, "groups")
    run.data["by_length"] = an.recall_by_group(
        run.t2i, [an.length_bin(c) for c in split.captions], an.length_bin_labels(), opt.ks
    )
    run.data["by_category"] = an.recall_by_group(
        run.t2i, [an.caption_category(c) for c in split.captions], an.CATEGORY_ORDER, opt.ks
    )
    run.data["seed003"] = an.seed003_protocol(run.t2i, run.i2t)
    run.data["space"] = an.space_stats(split.image_emb, split.text_emb, split.caption_image)
    stages.done(run)

    stages.start(run.label, "gallery sizes")
    run.data["gallery"] = an.recall_vs_gallery_size(
        split.image_emb, split.text_emb, split.caption_image, opt.gallery_sizes,
        trials=opt.trials, seed=opt.seed, ks=opt.ks, scoring=run.scoring,
    )  # fmt: skip
    stages.done(run)

    stages.start(run.label, "prompt study")
    run.data["prompts"] = prompt_study(model, run, cache, opt, show_progress)
    stages.done(run)

    # The same images for every model (same seed, same split), so side-by-side maps and
    # heatmaps show the same photos and captions.
    rng = np.random.default_rng(opt.seed)
    sample = np.sort(rng.choice(n_img, size=min(opt.tsne_images, n_img), replace=False))
    stages.start(run.label, "t-SNE")
    run.figures["tsne"] = save(tsne_figure(run, sample, opt, cache), f"tsne-{run.slug}.png")
    stages.done(run)

    stages.start(run.label, "heatmap")
    heat = np.sort(
        np.random.default_rng(opt.seed + 1).choice(
            n_img, size=min(opt.heatmap_images, n_img), replace=False
        )
    )
    run.figures["heatmap"], run.data["heatmap"] = heatmap(run, heat, save)
    stages.done(run)

    stages.start(run.label, "top-K grids")
    run.data["examples"] = grids(run, opt, make_thumbnailer(opt.photos), save)
    stages.done(run)

    stages.start(run.label, "what went wrong")
    run.data["confused"], run.data["near_duplicates"] = an.confused_pairs(
        split.image_emb, split.text_emb, split.caption_image,
        image_offsets=run.scoring.image_offsets,
    )  # fmt: skip
    run.data["words"] = an.word_contrast(
        split.captions, run.t2i, fail_after=FAIL_AFTER, min_count=opt.min_word_count
    )
    stages.done(run)


def _shared_figures(
    runs: Sequence[ModelRun], opt: ReportOptions, facts: dict[str, Any], save: SaveFigure
) -> dict[str, Path]:
    """The figures that show every model at once, and the method's flow chart."""
    colours = {r.label: r.colour for r in runs}

    def groups(key: str, title: str, axis: str, name: str) -> Path:
        data = {r.label: r.data[key] for r in runs}
        return save(plots.group_recall_figure(data, colours, title, axis, opt.ks), name)

    prompts = {r.label: {v: s["R@1"] for v, s in r.data["prompts"].items()} for r in runs}
    return {
        "by_length": groups(
            "by_length", "Text→image recall by caption length", "caption length (words)",
            "recall-by-caption-length.png",
        ),
        "by_category": groups(
            "by_category", "Text→image recall by the category of the caption's first noun",
            "category (keyword map)", "recall-by-category.png",
        ),
        "gallery": save(
            plots.gallery_size_figure({r.label: r.data["gallery"] for r in runs}, colours, opt.ks),
            "recall-vs-gallery-size.png",
        ),
        "prompts": save(plots.prompt_figure(prompts, colours), "prompt-study.png"),
        "method": save(
            plots.flowchart_figure(*paper.flowchart_labels(facts, runs[0])), "method-flowchart.png"
        ),
    }  # fmt: skip


def _build(
    models: Sequence[Encoder],
    dataset: ImageTextDataset,
    out: Path,
    cache: Path,
    opt: ReportOptions,
    show_progress: bool,
    start: float,
    persistent_cache: bool,
) -> ReportResult:
    labels = model_labels([m.name for m in models])
    colours = plots.model_colors(labels)
    written: list[Path] = []

    def save(fig: Any, name: str, photos: bool = False) -> Path:
        path = plots.save_png(fig, out / "figures" / name, dpi=opt.dpi, palette=not photos)
        written.append(path)
        return Path("figures") / name

    stages = _Stages(len(models), show_progress)
    runs: list[ModelRun] = []
    for model, label, slug in zip(models, labels, _slugs(labels), strict=True):
        stages.start(label, "embed + eval")
        result, split, scoring, t2i, i2t = embed_and_score(model, dataset, cache, show_progress)
        run = ModelRun(label, slug, colours[label], result, split, scoring, t2i, i2t, model)
        runs.append(run)
        stages.done(run)
        check_gallery_sizes(len(split.image_paths), opt.gallery_sizes, dataset.split)
        _measure(model, run, cache, opt, save, stages, show_progress)
    stages.bar.close()

    facts = report_facts(runs, dataset)
    shared = _shared_figures(runs, opt, facts, save)
    metrics = [r.result for r in runs]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    seconds = time.perf_counter() - start
    blocks = _document(
        runs, dataset, out, opt, shared, facts, cache if persistent_cache else None, seconds
    )
    analysis = _analysis_json(runs, dataset, out, opt, facts, seconds)
    (out / "analysis.json").write_text(
        json.dumps(analysis, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    title = f"crossmodal report: {dataset.name} {dataset.split}"
    (out / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(render_html(blocks, title, out), encoding="utf-8")
    written += [out / n for n in ("metrics.json", "analysis.json", "report.md", "report.html")]
    return ReportResult(out, written, metrics, analysis, seconds)


# ----------------------------------------------------------------------------- the document


def _document(
    runs: Sequence[ModelRun],
    dataset: ImageTextDataset,
    out: Path,
    opt: ReportOptions,
    shared: dict[str, Path],
    facts: dict[str, Any],
    cache: Path | None,
    seconds: float,
) -> list[Block]:
    """The whole report in reading order: a paper's outline around the measurements."""
    return [
        *sections.header(runs, dataset, opt, seconds),
        paper.abstract_section(runs, facts),
        paper.method_section(runs, facts, shared["method"]),
        paper.data_section(runs, dataset, facts, cache, seconds),
        sections.metrics_section(runs),
        paper.seed003_section(runs),
        sections.gallery_section(runs, opt, shared["gallery"]),
        sections.length_section(runs, opt, shared["by_length"]),
        sections.category_section(runs, opt, shared["by_category"]),
        sections.prompt_section(runs, opt, shared["prompts"]),
        sections.space_section(runs, opt),
        sections.examples_section(runs, out, opt),
        sections.wrong_section(runs, out, opt),
        paper.discussion_section(runs),
        sections.files_section(),
        paper.appendix_section(runs, dataset, opt, facts),
    ]


# ----------------------------------------------------------------------------- analysis.json


def _examples_json(
    examples: dict[str, list[dict[str, Any]]], rel: Any
) -> dict[str, list[dict[str, Any]]]:
    """The top-K grids' rows with photo paths relative to the report folder."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, rows in examples.items():
        if key.startswith("t2i"):
            out[key] = [
                {
                    "query": r["query"],
                    "true_rank": r["true_rank"],
                    "true_image": rel(r["true_image"]),
                    "hits": [{"image": rel(path), "score": score} for path, score in r["hits"]],
                }
                for r in rows
            ]
        else:
            out[key] = [
                {
                    "image": rel(r["image"]),
                    "true_rank": r["true_rank"],
                    "hits": [
                        {"caption": cap, "score": score, "true": ok} for cap, score, ok in r["hits"]
                    ],
                }
                for r in rows
            ]
    return out


def _pairs_json(pairs: Sequence[an.ImagePair], paths: Sequence[Path], out: Path) -> list[Any]:
    return [
        {
            "a": rel_link(paths[p.a], out),
            "b": rel_link(paths[p.b], out),
            "cosine": p.cosine,
            "confusions": p.confusions,
        }
        for p in pairs
    ]


def _model_json(r: ModelRun, out: Path, opt: ReportOptions) -> dict[str, Any]:
    d, paths = r.data, r.split.image_paths
    n_prompt = len(prompt_sample(len(r.split.captions), opt.prompt_captions, opt.seed + 2))
    return {
        "model": r.result["model"],
        "label": r.label,
        "by_caption_length": asdict(d["by_length"]),
        "by_category": asdict(d["by_category"]),
        "gallery_size": asdict(d["gallery"]),
        "prompt_study": d["prompts"],
        "prompt_study_captions": n_prompt,
        "heatmap": d["heatmap"],
        "confused_pairs": _pairs_json(d["confused"], paths, out),
        "near_duplicates": _pairs_json(d["near_duplicates"], paths, out),
        "words": asdict(d["words"]),
        "examples": _examples_json(d["examples"], lambda p: rel_link(p, out)),
        "seed003_protocol": d["seed003"],
        "space": asdict(d["space"]),
        "failed_share": 100 * float((r.t2i > FAIL_AFTER).mean()),
        "stage_seconds": r.seconds,
    }


def _analysis_json(
    runs: Sequence[ModelRun],
    dataset: ImageTextDataset,
    out: Path,
    opt: ReportOptions,
    facts: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "photos_in_figures": opt.photos,
        "options": {k: v for k, v in asdict(opt).items() if k != "command"},
        "category_keywords": an.CATEGORY_KEYWORDS,
        "prompt_variants": list(an.PROMPT_VARIANTS),
        "models": [_model_json(r, out, opt) for r in runs],
        "facts": facts,
        "commands": paper.commands(runs, dataset, opt),
        "seconds": round(seconds, 2),
    }


__all__ = [
    "THUMBNAIL_PX",
    "ReportOptions",
    "ReportResult",
    "build_report",
    "check_gallery_sizes",
    "model_labels",
    "prepare_out_dir",
    "prompt_sample",
    "render_html",
    "render_markdown",
]
