"""The write-up sections of `crossmodal report` that seed 004 asks for, around the
measurements of `sections.py`: an abstract generated from the figures, the method with a flow
chart, data and implementation details, seed 003's protocol as a table, a discussion whose
every point carries a number the report computed, and an appendix (environment, commands).

Every number here is read from metrics.json (`ModelRun.result`), from the report's own
measurements (`ModelRun.data`, written to analysis.json) or from `report_facts.facts` (also
in analysis.json): none is typed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossmodal.data import ImageTextDataset
from crossmodal.eval import analysis as an
from crossmodal.eval.document import Block, Bullets, Fig, Para, Pre, Section, Table
from crossmodal.eval.report_runs import FAIL_AFTER, ModelRun

if TYPE_CHECKING:
    from crossmodal.eval.options import ReportOptions

#: Image pairs at least this similar are called near-duplicates in the discussion.
NEAR_DUPLICATE_COSINE = 0.5


def f2(x: float) -> str:
    return f"{x:.2f}"


def _encoder_phrase(model: dict[str, Any]) -> str:
    if model.get("image_tower"):
        return (
            f"a dual encoder whose {model['image_tower']} image tower and {model['text_tower']} "
            f"text tower map both modalities into one {model['dim']}-dimensional space"
        )
    return f"the encoder {model.get('description', model.get('model'))}"


# ----------------------------------------------------------------------------- abstract


def abstract_text(run: ModelRun, others: Sequence[ModelRun], model: dict[str, Any]) -> str:
    """100–150 words for one model; each number from metrics.json or the report's analyses."""
    m = run.result
    t, i, s3 = m["t2i"], m["i2t"], run.data["seed003"]
    parts = [
        f"We evaluate the model {run.label}, {_encoder_phrase(model)}, on image–text retrieval "
        f"over the {m['dataset']} {m['split']} split ({m['n_images']} images, {m['n_texts']} "
        "captions), ranking by cosine similarity.",
        f"Text→image retrieval reaches R@1 {f2(t['R@1'])} %, R@5 {f2(t['R@5'])} % and R@10 "
        f"{f2(t['R@10'])} % (median rank {t['MedR']:.0f}); image→text retrieval reaches R@1 "
        f"{f2(i['R@1'])} %, R@5 {f2(i['R@5'])} % and R@10 {f2(i['R@10'])} % (median rank "
        f"{i['MedR']:.0f}).",
        f"Under seed 003's protocol, R@20 is {f2(s3['t2i']['R@20'])} % (text→image) and "
        f"{f2(s3['i2t']['R@20'])} % (image→text), with mean ranks {f2(s3['t2i']['MeanR'])} and "
        f"{f2(s3['i2t']['MeanR'])}.",
    ]
    g: an.GallerySizeCurve = run.data["gallery"]
    if len(g.sizes) > 1:
        parts.append(
            f"Text→image R@1 falls from {f2(g.t2i_mean['R@1'][0])} % among {g.sizes[0]} "
            f"images to "
            f"{f2(g.t2i_mean['R@1'][-1])} % among {g.sizes[-1]}."
        )
    lengths: an.GroupRecall = run.data["by_length"]
    if len(lengths.groups) > 1:
        short = lengths.groups[0]
        best = max(lengths.groups[1:], key=lambda g: lengths.recall[g]["R@1"])
        parts.append(
            f"Captions of {short} words reach R@1 {f2(lengths.recall[short]['R@1'])} % against "
            f"{f2(lengths.recall[best]['R@1'])} % for {best} words."
        )
    failed = 100 * float((run.t2i > FAIL_AFTER).mean())
    parts.append(
        f"{f2(failed)} % of text queries rank their image past {FAIL_AFTER}; the discussion "
        "analyses these failures and proposes extensions."
    )
    parts += [
        f"Beside it, {o.label} reaches R@1 {f2(o.result['t2i']['R@1'])} % (text→image) and "
        f"{f2(o.result['i2t']['R@1'])} % (image→text)."
        for o in others
    ]
    return " ".join(parts)


def abstract_section(runs: Sequence[ModelRun], facts: dict[str, Any]) -> Section:
    model = facts["models"].get(runs[0].label, {"model": runs[0].label})
    return Section("abstract", "Abstract 摘要", [Para(abstract_text(runs[0], runs[1:], model))])


# ----------------------------------------------------------------------------- method


def method_section(runs: Sequence[ModelRun], facts: dict[str, Any], figure: Path) -> Section:
    run = runs[0]
    model = facts["models"].get(run.label, {})
    m = run.result
    scoring = []
    if model.get("hubness"):
        h = model["hubness"]
        scoring.append(
            f"Cross-modal scores carry the model's hubness correction (k {h.get('k')}, weight "
            f"{h.get('weight')}): each gallery item is charged for how crowded its "
            "neighbourhood is among training queries, as a collection's search does."
        )
    if model.get("query_image_flip"):
        scoring.append(
            "An image used as a query is embedded as the normalised mean of its vector and "
            "its mirror image's."
        )
    if model.get("image_tower"):
        towers = (
            f"A dual encoder embeds both modalities: the {model['image_tower']} image tower and "
            f"the {model['text_tower']} text tower each feed a projection head into one "
            f"{model['dim']}-d space, and every vector is L2-normalised"
        )
    else:
        towers = f"The encoder {model.get('description', run.label)} embeds both modalities"
    intro = Para(
        f"{towers}, so the dot product of two vectors is their cosine similarity. A text "
        f"query ranks all {m['n_images']} images by that score (text→image); an image query "
        f"ranks all {m['n_texts']} captions (image→text). " + " ".join(scoring)
    )
    protocol = Para(
        "Text→image has one query per caption with its own image as the only true match; "
        "image→text one query per image with all of its captions true. Each query's rank is "
        "that of its best-ranked true match, ties counted against the model; R@K, MRR, the "
        "median and the mean rank are computed from these ranks (`crossmodal.eval.metrics`)."
    )
    caption = "Method flow chart: image/text → encoder → features → similarity → ranking"
    return Section("method", "Method 方法", [intro, Fig(figure, caption), protocol])


def flowchart_labels(facts: dict[str, Any], run: ModelRun) -> tuple[str, str, int, str]:
    """What the flow chart writes in its boxes for the first model."""
    model = facts["models"].get(run.label, {})
    dim = int(model.get("dim") or run.split.image_emb.shape[1])
    image = model.get("image_tower") or model.get("description") or run.label
    text = model.get("text_tower") or model.get("description") or run.label
    h = model.get("hubness")
    scoring = f"+ hubness correction (k {h.get('k')}, weight {h.get('weight')})" if h else ""
    return f"{image} + projection head", f"{text} + projection head", dim, scoring


# ----------------------------------------------------------------------------- seed 003


def seed003_section(runs: Sequence[ModelRun]) -> Section:
    header = ["model"]
    for d in ("T→I", "I→T"):
        header += [f"{d} R@1", "R@5", "R@20", "mean rank"]
    rows = []
    for r in runs:
        s3 = r.data["seed003"]
        row = [r.label]
        for d in ("t2i", "i2t"):
            row += [*(f2(s3[d][f"R@{k}"]) for k in an.SEED003_KS), f2(s3[d]["MeanR"])]
        rows.append(row)
    n = runs[0].result["n_images"]
    scope = "the 1k test images" if n == 1000 else f"the {n} images of this split"
    intro = Para(
        f"Seed 003 reports R@1, R@5, R@20 and the mean rank over {scope}. The same per-query "
        "ranks as Metrics, laid out that way so the two seeds' tables read side by side: R@1 "
        "and R@5 are those of Metrics, R@20 and the mean rank (1 is best) new cut-offs of the "
        "same ranks (`crossmodal.eval.analysis.seed003_protocol`)."
    )
    return Section("seed003", "Seed 003's protocol 种子 003 评测协议", [intro, Table(header, rows)])


# ----------------------------------------------------------------------------- data, implementation


def _splits_table(facts: dict[str, Any], evaluated: str) -> Table:
    rows = [
        [
            name + (" (this report)" if name == evaluated else ""),
            str(s["images"]),
            str(s["captions"]),
        ]
        for name, s in facts["splits"].items()
    ]
    return Table(["split", "images", "captions"], rows)


def _preprocessing(run: ModelRun, model: dict[str, Any]) -> Para:
    space: an.SpaceStats = run.data["space"]
    size = model.get("image_size")
    image = (
        f"Images: RGB, shorter side resized to {size} px (bicubic), centre-cropped to "
        f"{size}×{size}, scaled to [-1, 1]"
        if size
        else "Images: as the model's own processor prepares them"
    )
    return Para(
        f"{image}; unreadable images are skipped and listed in metrics.json. Captions: as "
        "written, tokenised by each text tower (the prompt study measures lower-casing and "
        f"punctuation). Normalisation: every vector is L2-normalised; measured here, the mean "
        f"norm is {space.image_norm_mean:.4f} (images) and {space.text_norm_mean:.4f} "
        f"(captions), the largest deviation from 1 is {space.norm_max_deviation:.1e}."
    )


def _caching(cache_dir: Path | None, run: ModelRun) -> Para:
    where = "a throw-away folder (`--no-cache`)"
    if cache_dir is not None:
        home = str(Path.home())
        shown = str(cache_dir)
        where = f"`{'~' + shown[len(home) :] if shown.startswith(home) else shown}`"
    return Para(
        "Embeddings go through the feature cache: one SQLite file per model fingerprint, keyed "
        f"by image file or caption text, in {where}. `crossmodal eval`, this report and later "
        "reports of the same model share it, so the towers run once per image and caption; "
        f"this run's embed + eval stage of {run.label} took "
        f"{run.seconds.get('embed + eval', 0):.1f} s."
    )


def _hyper_parameter_rows(model: dict[str, Any]) -> list[list[str]]:
    rows = [
        ["shared space", f"{model.get('dim')}-d"],
        ["image tower", str(model.get("image_tower"))],
        ["text tower", str(model.get("text_tower"))],
        ["image head", json.dumps(model.get("image_head"))],
        ["text head", json.dumps(model.get("text_head"))],
        ["hubness correction", json.dumps(model.get("hubness") or None)],
        ["image queries mirrored", str(model.get("query_image_flip"))],
        ["Chinese path", str(model.get("multilingual"))],
    ]
    rows += [[f"training: {k}", str(v)] for k, v in model.get("training", {}).items()]
    if "recipe" in model:
        rows += [
            [f"recipe `{model['recipe_file']}`: {k}", json.dumps(v, default=str)]
            for k, v in model["recipe"].items()
        ]
    return rows


def _hardware_rows(facts: dict[str, Any]) -> list[list[str]]:
    hw = facts["hardware"]
    cores = f"{hw['logical_cores']} logical cores, {hw['torch_threads']} torch threads"
    rows = [
        ["CPU", f"{hw['cpu']} ({cores})"],
        ["GPU", hw["gpu"] or "none"],
        ["device used", hw["device_used"]],
    ]
    rows += [[f"inference path: {k}", v] for k, v in hw["inference_path"].items()]
    return rows


def _run_time_table(runs: Sequence[ModelRun], seconds: float) -> Table:
    stages = list(runs[0].seconds)
    rows = [[stage, *(f"{r.seconds.get(stage, 0):.1f}" for r in runs)] for stage in stages]
    rows.append(
        [
            "whole report (all models, shared figures, files)",
            f"{seconds:.1f}",
            *[""] * (len(runs) - 1),
        ]
    )
    return Table(["stage", *(f"{r.label} (s)" for r in runs)], rows)


def data_section(
    runs: Sequence[ModelRun],
    dataset: ImageTextDataset,
    facts: dict[str, Any],
    cache_dir: Path | None,
    seconds: float,
) -> Section:
    run = runs[0]
    hyper: list[Block] = []
    for r in runs:
        model = facts["models"].get(r.label)
        if model and model.get("image_tower"):
            note = Para(f"**{r.label}**: from its config.json (`info` is the training record).")
            hyper += [note, Table(["setting", "value"], _hyper_parameter_rows(model))]
        elif model:
            hyper.append(Para(f"**{r.label}**: {model.get('description')} (no crossmodal config)."))
    blocks: list[Block] = [
        Para(
            f"Dataset `{dataset.name}`; the report scores the `{dataset.split}` split. This "
            "project's models are trained on train with every setting chosen on val."
        ),
        _splits_table(facts, dataset.split),
        Section(
            "preprocessing",
            "Preprocessing and normalisation 预处理与归一化",
            [_preprocessing(run, facts["models"].get(run.label, {}))],
            level=3,
        ),
        Section("caching", "Caching 缓存", [_caching(cache_dir, run)], level=3),
        Section("hyper_parameters", "Hyper-parameters 超参数", hyper, level=3),
        Section(
            "hardware",
            "Hardware and run time 硬件与运行时间",
            [Table(["what", "value"], _hardware_rows(facts)), _run_time_table(runs, seconds)],
            level=3,
        ),
    ]
    return Section("data_implementation", "Data and implementation 数据与实现", blocks)


# ----------------------------------------------------------------------------- discussion


def _error_analysis(run: ModelRun) -> list[str]:
    space: an.SpaceStats = run.data["space"]
    confused: list[an.ImagePair] = run.data["confused"]
    close = [p for p in confused if p.cosine >= NEAR_DUPLICATE_COSINE]
    items = [
        f"**Look-alike photos.** Of the {len(confused)} most confused image pairs (What went "
        f"wrong), {len(close)} have an image–image cosine of at least {NEAR_DUPLICATE_COSINE}, "
        f"while two random images of the gallery average {space.image_image_cosine:.3f}: "
        "most top-1 errors retrieve a scene of the same kind, which a short caption cannot "
        "tell apart."
    ]
    lengths: an.GroupRecall = run.data["by_length"]
    if len(lengths.groups) > 1:
        lo, hi = lengths.groups[0], lengths.groups[-1]
        items.append(
            f"**Under-specified queries.** Captions of {lo} words reach text→image R@1 "
            f"{f2(lengths.recall[lo]['R@1'])} % and those of {hi} words "
            f"{f2(lengths.recall[hi]['R@1'])} % (figure: recall by caption length)."
        )
    cats: an.GroupRecall = run.data["by_category"]
    big = [g for g in cats.groups if cats.counts[g] >= 50]
    among = "Among categories with at least 50 captions"
    if len(big) < 2:
        big, among = cats.groups, "Among the categories"
    if len(big) > 1:
        worst = min(big, key=lambda g: cats.recall[g]["R@1"])
        best = max(big, key=lambda g: cats.recall[g]["R@1"])
        items.append(
            f"**Content.** {among}, “{worst}” scores lowest "
            f"(R@1 {f2(cats.recall[worst]['R@1'])} %, "
            f"{cats.counts[worst]} captions) and “{best}” highest "
            f"({f2(cats.recall[best]['R@1'])} %, {cats.counts[best]} captions)."
        )
    items.append(
        f"**Modality gap.** A caption's cosine with its own image averages "
        f"{space.matched_cosine:.3f} against {space.unmatched_cosine:.3f} with the other "
        f"images, and the two modalities' centroids lie {space.centroid_distance:.3f} apart "
        "(figure: t-SNE)."
    )
    words: an.WordContrast = run.data["words"]
    if words.over_in_failed:
        w = words.over_in_failed[0]
        items.append(
            f"**Words.** The word most over-represented in failed queries is “{w.word}” "
            f"(ratio {w.ratio:.2f}; table in What went wrong)."
        )
    return items


def _extensions(run: ModelRun) -> list[str]:
    m, s3 = run.result, run.data["seed003"]
    items = [
        f"**Re-rank the top 20.** {f2(s3['t2i']['R@20'])} % of text queries have their image "
        f"in the top 20 but only {f2(m['t2i']['R@1'])} % at rank 1: a re-ranker over 20 "
        f"candidates (a cross-encoder, or the captioner of issue 17) has up to "
        f"{f2(s3['t2i']['R@20'] - m['t2i']['R@1'])} points of R@1 to gain."
    ]
    raw = m.get("raw_similarities")
    if raw:
        items.append(
            f"**Score corrections pay.** The model's search scoring moves R@1 from "
            f"{f2(raw['t2i']['R@1'])} / {f2(raw['i2t']['R@1'])} (plain cosine) to "
            f"{f2(m['t2i']['R@1'])} / {f2(m['i2t']['R@1'])} (text→image / image→text); the "
            "same query-bank statistics could weight a learned re-ranker."
        )
    lengths: an.GroupRecall = run.data["by_length"]
    if len(lengths.groups) > 1:
        lo = lengths.groups[0]
        gap = max(v["R@1"] for v in lengths.recall.values()) - lengths.recall[lo]["R@1"]
        items.append(
            f"**Describe the photos.** Short captions trail the best length group by "
            f"{f2(gap)} points of R@1; matching queries against descriptions (user text, tags, "
            "generated captions) as well as pixels targets exactly these queries."
        )
    dups: list[an.ImagePair] = run.data["near_duplicates"]
    if dups:
        items.append(
            f"**Group near-duplicates.** The closest pair of gallery photos has cosine "
            f"{dups[0].cosine:.3f} and is confused {dups[0].confusions} times: showing such "
            "photos as one group would turn these errors into hits."
        )
    g: an.GallerySizeCurve = run.data["gallery"]
    if len(g.sizes) > 1:
        drop = g.t2i_mean["R@1"][0] - g.t2i_mean["R@1"][-1]
        items.append(
            f"**Larger collections.** R@1 drops {f2(drop)} points from {g.sizes[0]} to "
            f"{g.sizes[-1]} images (figure: recall vs gallery size); personal collections are "
            "larger still, so recall should be measured at their size, and a stronger encoder "
            "or fine-tuning on the user's own descriptions is where it can be won back."
        )
    prompts = run.data["prompts"]
    variant = max((v for v in prompts if v != "raw caption"), key=lambda v: prompts[v]["R@1"])
    delta = prompts[variant]["R@1"] - prompts["raw caption"]["R@1"]
    items.append(
        f"**Query wording.** The best rewriting of the prompt study ({variant}) changes R@1 by "
        f"{delta:+.2f} points: rewriting queries that way "
        f"{'is worth adding to search' if delta > 0 else 'would not help search'}."
    )
    return items


def discussion_section(runs: Sequence[ModelRun]) -> Section:
    blocks: list[Block] = []
    for r in runs:
        part: list[Block] = [
            Para("Error analysis (each point from a table or figure above):"),
            Bullets(_error_analysis(r)),
            Para("Extension directions, each backed by a number this report computed:"),
            Bullets(_extensions(r)),
        ]
        if len(runs) > 1:
            blocks.append(Section(f"discussion_{r.slug}", r.label, part, level=3))
        else:
            blocks += part
    return Section("discussion", "Discussion 讨论", blocks)


# ----------------------------------------------------------------------------- appendix


def commands(runs: Sequence[ModelRun], dataset: ImageTextDataset, opt: ReportOptions) -> list[str]:
    """The command that made the report, and the eval command whose JSON is metrics.json."""
    root = os.path.relpath(dataset.root) if not Path(dataset.root).is_absolute() else dataset.root
    made = opt.command or "build_report(...) called from Python (no command line)"
    evals = [
        f"crossmodal eval --model {r.result['model']} --dataset {dataset.name} --root {root} "
        f"--split {dataset.split} --json eval.json"
        for r in runs
    ]
    return [made, *evals]


def appendix_section(
    runs: Sequence[ModelRun], dataset: ImageTextDataset, opt: ReportOptions, facts: dict[str, Any]
) -> Section:
    env = Table(["package", "version"], [[k, v] for k, v in facts["environment"].items()])
    options = Table(
        ["option", "value"],
        [[k, json.dumps(v)] for k, v in asdict(opt).items() if k != "command"],
    )
    blocks: list[Block] = [
        Section("environment", "Environment 运行环境", [env], level=3),
        Section(
            "commands",
            "Commands 命令",
            [
                Para(
                    "The report, then the eval that prints the same metrics (its JSON is one "
                    "entry of metrics.json):"
                ),
                Pre("\n".join(commands(runs, dataset, opt))),
                Para("Every option of this run (analysis.json repeats them):"),
                options,
            ],
            level=3,
        ),
    ]
    return Section("appendix", "Appendix 附录", blocks)
