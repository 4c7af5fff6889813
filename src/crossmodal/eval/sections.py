"""The measurement sections of `crossmodal report`, each a function from the models' runs to
a `Section` of the document model: the headline metrics, recall by gallery size, caption
length and category, the prompt study, the embedding space, the top-K examples and what went
wrong. The write-up around them (abstract, method, discussion, appendix) is in `paper.py`."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crossmodal.data import ImageTextDataset
from crossmodal.eval import analysis as an
from crossmodal.eval.document import Block, Bullets, Fig, FigRow, Heading, Para, Pre, Section, Table
from crossmodal.eval.evaluate import format_table
from crossmodal.eval.evaluate import markdown_table as metrics_markdown_table
from crossmodal.eval.report_runs import (
    FAIL_AFTER,
    THUMBNAIL_PX,
    ModelRun,
    photo_link,
    prompt_sample,
)

if TYPE_CHECKING:
    from crossmodal.eval.options import ReportOptions


def f2(x: float) -> str:
    return f"{x:.2f}"


def header(
    runs: Sequence[ModelRun], dataset: ImageTextDataset, opt: ReportOptions, seconds: float
) -> list[Block]:
    """Title, what was measured and how, the photo decision and a reading guide."""
    first = runs[0].result
    names = ", ".join(f"**{r.label}** (`{r.result['model']}`)" for r in runs)
    if opt.photos:
        photo_note = (
            f"**Photos.** The top-K grids of this copy show thumbnails (at most {THUMBNAIL_PX} "
            "px) of the dataset's photos, for reading on this machine. Flickr8k may be used for "
            "research but not redistributed: do not commit or share this folder. `crossmodal "
            "report --no-photos` builds a shareable copy with grey placeholders."
        )
    else:
        photo_note = (
            "**Photos.** Flickr8k's terms allow research use but not redistribution, so this "
            "copy contains no photo: the top-K grids show grey placeholders where the photos "
            "would be, and every figure is a plot. Photo file names link to the images "
            "relatively (e.g. `../../../shared/data/flickr8k/images/…` from `docs/` of a "
            "checkout), so they open wherever the dataset sits beside the repository. "
            "Run `crossmodal report` without `--no-photos` to see the thumbnails locally."
        )
    return [
        Heading(1, f"Retrieval report: {dataset.name} {dataset.split}"),
        Para(
            f"Models: {names}. "
            f"Split: {first['n_images']} images, {first['n_texts']} captions. "
            f"Built in {seconds:.0f} s on {_dt.date.today().isoformat()}"
            + (f" by `{opt.command}`." if opt.command else ".")
        ),
        Para(photo_note),
        Para(
            "Reading guide: R@K is the percentage of queries whose true match is among the top K "
            "(any of an image's 5 captions counts for image→text); MRR is the mean reciprocal "
            "rank of the best true match; MedR its median rank. All numbers below are computed "
            "from the same embeddings and ranks as `crossmodal eval` (see `metrics.json`)."
        ),
    ]


def _split_md_table(md: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln.strip().strip("|").split("|") for ln in md.strip().splitlines()]
    header = [c.strip() for c in lines[0]]
    rows = [[c.strip() for c in ln] for ln in lines[2:]]
    return header, rows


def metrics_section(runs: Sequence[ModelRun]) -> Section:
    blocks: list[Block] = [
        Table(*_split_md_table(metrics_markdown_table([r.result for r in runs]))),
        Para("Exactly what `crossmodal eval` prints for each model:"),
    ]
    blocks += [Pre(format_table(r.result)) for r in runs]
    return Section("metrics", "Metrics 指标", blocks)


def gallery_section(runs: Sequence[ModelRun], opt: ReportOptions, figure: Path) -> Section:
    rows = []
    for r in runs:
        g: an.GallerySizeCurve = r.data["gallery"]
        for d, name in (("t2i", "text→image"), ("i2t", "image→text")):
            for k in opt.ks:
                mean, std = getattr(g, f"{d}_mean")[f"R@{k}"], getattr(g, f"{d}_std")[f"R@{k}"]
                cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, std, strict=True)]
                rows.append([r.label, f"{name} R@{k}", *cells])
    header = ["model", "metric", *[f"{s} images" for s in opt.gallery_sizes]]
    intro = Para(
        f"Random galleries of {', '.join(map(str, opt.gallery_sizes))} images (all captions "
        f"of the chosen images are the queries), {opt.trials} draws per size with seed "
        f"{opt.seed}; a gallery of the whole split is scored once. Mean (± std) in %."
    )
    return Section(
        "gallery_size",
        "Recall vs gallery size 召回率与图库大小",
        [intro, Fig(figure, "Recall vs gallery size"), Table(header, rows)],
    )


def _group_table(runs: Sequence[ModelRun], key: str, what: str, ks: Sequence[int]) -> Table:
    groups = runs[0].data[key].groups
    rows = []
    for g in groups:
        row = [g, str(runs[0].data[key].counts[g])]
        for r in runs:
            rec = r.data[key].recall[g]
            row += [f2(rec[f"R@{k}"]) for k in ks]
        rows.append(row)
    header = [what, "captions"]
    for r in runs:
        header += [f"{r.label} R@{k}" if len(runs) > 1 else f"R@{k}" for k in ks]
    return Table(header, rows)


def length_section(runs: Sequence[ModelRun], opt: ReportOptions, figure: Path) -> Section:
    intro = Para(
        "Text→image recall of the captions grouped by their number of words (alphabetic "
        'tokens; the trailing " ." of Flickr8k captions is not a word).'
    )
    return Section(
        "caption_length",
        "Recall by caption length 按描述长度的召回率",
        [
            intro,
            Fig(figure, "Text→image recall by caption length"),
            _group_table(runs, "by_length", "words", opt.ks),
        ],
    )


def category_section(runs: Sequence[ModelRun], opt: ReportOptions, figure: Path) -> Section:
    intro = Para(
        "Each caption's category is that of its first word found in the keyword map below: a "
        'stand-in for the first noun, with no part-of-speech tagger (so "a group of people" '
        'is people, and "a ball thrown to a dog" is dogs). Captions with no keyword are '
        '"other".'
    )
    keywords = Bullets([f"**{cat}**: {' '.join(kw)}" for cat, kw in an.CATEGORY_KEYWORDS.items()])
    return Section(
        "caption_category",
        "Recall by caption category 按描述类别的召回率",
        [
            intro,
            Fig(figure, "Text→image recall by caption category"),
            _group_table(runs, "by_category", "category", opt.ks),
            keywords,
        ],
    )


def prompt_section(runs: Sequence[ModelRun], opt: ReportOptions, figure: Path) -> Section:
    first = runs[0].result
    n_prompt = len(prompt_sample(first["n_texts"], opt.prompt_captions, opt.seed + 2))
    if n_prompt < first["n_texts"]:
        scope = (
            f"on a seeded sample of {n_prompt} of the {first['n_texts']} captions (seed "
            f"{opt.seed + 2}; `--prompt-captions 0` uses all), searched against all "
            f"{first['n_images']} images. Each variant runs every query through the text tower "
            "again, so the sample keeps a first report on a CPU within minutes. The raw row is "
            "the eval's own ranks of these captions; its R@1 on all captions is in Metrics"
        )
    else:
        scope = (
            f"on all {n_prompt} captions against all {first['n_images']} images; the raw row "
            "is exactly the eval's text→image result"
        )
    intro = Para(
        "The same text→image queries, rewritten: the raw caption (as `crossmodal eval` "
        'scores it), "a photo of {caption}", lower-cased, and with punctuation stripped, '
        + scope
        + "."
    )
    rows = []
    for r in runs:
        raw = r.data["prompts"]["raw caption"]["R@1"]
        for v, s in r.data["prompts"].items():
            delta = "" if v == "raw caption" else f"{s['R@1'] - raw:+.2f}"
            rows.append([r.label, v, *[f2(s[f"R@{k}"]) for k in opt.ks], f"{s['MRR']:.3f}", delta])
    header = ["model", "query text", *[f"R@{k}" for k in opt.ks], "MRR", "ΔR@1"]
    return Section(
        "prompt_study",
        "Prompt study 提示词研究",
        [intro, Fig(figure, "Prompt study"), Table(header, rows)],
    )


def space_section(runs: Sequence[ModelRun], opt: ReportOptions) -> Section:
    first = runs[0].result
    n_tsne = min(opt.tsne_images, first["n_images"])
    tsne = Para(
        f"t-SNE (scikit-learn, cosine distance, perplexity ≤ 30, seed {opt.seed}) of {n_tsne} "
        f"random images and all their captions; lines join {opt.tsne_pairs} images to their "
        "first caption. A good space puts each caption near its image; two separate clouds "
        'mean the modalities are not aligned (common for contrastive models: the "modality '
        'gap").'
    )
    heat = Para(
        f"Cosine similarity of {min(opt.heatmap_images, first['n_images'])} random images "
        "(columns) and their first captions (rows); the ground truth is the diagonal and the "
        "dot marks each row's best image. "
        + " ".join(
            f"{r.label}: the diagonal is the row maximum in "
            f"{r.data['heatmap']['diagonal_is_row_max']} of {r.data['heatmap']['images']} rows."
            for r in runs
        )
    )
    return Section(
        "embedding_space",
        "Embedding space 嵌入空间",
        [
            tsne,
            FigRow([Fig(r.figures["tsne"], f"t-SNE — {r.label}") for r in runs]),
            heat,
            FigRow([Fig(r.figures["heatmap"], f"Similarity heatmap — {r.label}") for r in runs]),
        ],
    )


def _example_table(run: ModelRun, key: str, out: Path, many: bool) -> Table:
    prefix = [run.label] if many else []
    rows = []
    for ex in run.data["examples"][key]:
        if key.startswith("t2i"):
            top = ", ".join(f"{photo_link(p, out)} {s:.3f}" for p, s in ex["hits"][:3])
            true_image = photo_link(ex["true_image"], out)
            rows.append([*prefix, ex["query"], true_image, str(ex["true_rank"]), top])
        else:
            top = "; ".join(f"{'✓' if ok else '✗'} {c} ({s:.3f})" for c, s, ok in ex["hits"][:3])
            rows.append([*prefix, photo_link(ex["image"], out), str(ex["true_rank"]), top])
    if key.startswith("t2i"):
        header = ["query", "true image", "its rank", "top 3 (score)"]
    else:
        header = ["image", "rank of its best true caption", "top 3 captions (score)"]
    if not rows:
        rows = [["(no such query)"] + [""] * (len(header) - 1 + len(prefix))]
    return Table(([*(["model"] if many else []), *header]), rows)


def examples_section(runs: Sequence[ModelRun], out: Path, opt: ReportOptions) -> Section:
    blocks: list[Block] = [
        Para(
            f"Seeded random queries (seed {opt.seed}) whose true match ranks 1st, and failures "
            f"ranked past {FAIL_AFTER}, with the top {opt.top_k} results and cosine scores. "
            + (
                "Photos are shown as thumbnails."
                if opt.photos
                else "Photos are grey placeholders (see **Photos** above); the tables name them."
            )
        )
    ]
    for key, title in (
        ("t2i_hits", "Text→image, true image first"),
        ("t2i_misses", f"Text→image, true image past {FAIL_AFTER}"),
        ("i2t_hits", "Image→text, a true caption first"),
        ("i2t_misses", f"Image→text, no true caption in the top {FAIL_AFTER}"),
    ):
        sub: list[Block] = [FigRow([Fig(r.figures[key], f"{title} — {r.label}") for r in runs])]
        sub += [_example_table(r, key, out, len(runs) > 1) for r in runs]
        blocks.append(Section(key, title, sub, level=3))
    return Section("examples", "Top-K examples Top-K 示例", blocks)


def _pair_table(run: ModelRun, pairs: Sequence[an.ImagePair], out: Path) -> Table:
    paths = run.split.image_paths
    rows = [
        [
            photo_link(paths[p.a], out),
            photo_link(paths[p.b], out),
            f"{p.cosine:.3f}",
            str(p.confusions),
        ]
        for p in pairs
    ]
    header = ["image A", "image B", "image–image cosine", "confusions"]
    return Table(header, rows or [["—", "—", "—", "0"]])


def _word_table(w: an.WordContrast, stats: Sequence[an.WordStat]) -> Table:
    rows = [
        [
            s.word,
            f"{s.failed} ({100 * s.failed / max(1, w.n_failed):.1f} %)",
            f"{s.succeeded} ({100 * s.succeeded / max(1, w.n_succeeded):.1f} %)",
            f"{s.ratio:.2f}",
        ]
        for s in stats
    ]
    return Table(["word", "in failed", "in successful", "ratio"], rows or [["—", "", "", ""]])


def _wrong_blocks(run: ModelRun, out: Path, opt: ReportOptions) -> list[Block]:
    n = len(run.t2i)
    failed = int((run.t2i > FAIL_AFTER).sum())
    first = int((run.t2i == 1).sum())
    w: an.WordContrast = run.data["words"]
    near_duplicates = _pair_table(run, run.data["near_duplicates"], out)
    if not run.data["near_duplicates"]:
        near_duplicates.rows = [["—"] * 4]
    return [
        Para(
            f"{failed} of {n} text queries ({100 * failed / n:.2f} %) rank their true image "
            f"past {FAIL_AFTER}; {first} ({100 * first / n:.2f} %) rank it first."
        ),
        Para(
            "**Most confused image pairs**: for each text query whose top-1 image is wrong, "
            "the pair (true image, retrieved image); counted in both directions and sorted by "
            "count, then by image–image cosine. High cosine means near-duplicates in the "
            "gallery, which no caption can tell apart."
        ),
        _pair_table(run, run.data["confused"], out),
        Para(
            "**Nearest near-duplicates** in the gallery by image–image cosine, with how often "
            "their captions confuse them:"
        ),
        near_duplicates,
        Para(
            f"**Words over-represented in failed queries** (true image past {FAIL_AFTER}; "
            f"{w.n_failed} captions) against successful ones (true image first; {w.n_succeeded} "
            "captions). Each word counts once per caption; ratio = share of failed captions with "
            "the word / share of successful ones (add-one smoothed); words in at least "
            f"{opt.min_word_count} of these captions, common function words left out."
        ),
        _word_table(w, w.over_in_failed),
        Para("And the words most over-represented in successful queries:"),
        _word_table(w, w.over_in_succeeded),
    ]


def wrong_section(runs: Sequence[ModelRun], out: Path, opt: ReportOptions) -> Section:
    blocks: list[Block] = []
    for r in runs:
        if len(runs) > 1:
            blocks.append(Section(f"wrong_{r.slug}", r.label, _wrong_blocks(r, out, opt), level=3))
        else:
            blocks += _wrong_blocks(r, out, opt)
    return Section("what_went_wrong", "What went wrong 错误分析", blocks)


def files_section() -> Section:
    files = Bullets(
        [
            "`metrics.json`: a list with one entry per model, each exactly the JSON "
            "`crossmodal eval --json` writes (timings aside).",
            "`analysis.json`: every other number of this report.",
            "`figures/*.png`: the figures; `report.html` embeds them and needs nothing else.",
        ]
    )
    return Section("files", "Files 文件", [files])
