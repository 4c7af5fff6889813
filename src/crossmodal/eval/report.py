"""`build_report`: a Markdown + self-contained HTML report of one or more models on a split.

The numbers come from one place: each model's split is embedded through the eval cache
(`embed_split`), its per-query ranks come from `retrieval_ranks`, and the headline table is the
very dict `evaluate` returns (written to `metrics.json`). Every other table (recall by caption
length, by category, by gallery size, the prompt study, the top-K grids, the confused pairs) is
computed from those same ranks and embeddings, scored as the model's search scores them
(`search_scoring`: the hubness correction, mirrored image queries), so a report can never
disagree with `crossmodal eval` or with what a collection returns. Only the similarity heatmap
and the t-SNE map show the raw embedding space.

The document is built once as a list of blocks and rendered twice (Markdown and HTML), so the
two files always hold the same content.

Photos: Flickr8k may be used for research but not redistributed. With `photos=True` the top-K
grids show thumbnails (at most 88 px) for local reading; with `photos=False` they show grey
placeholders, so the output can be committed or shared. In both cases photo file names link to
the images relatively, which opens them only where the dataset sits on disk.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from crossmodal.data import ImageTextDataset, load_image
from crossmodal.errors import CrossmodalError, ImageLoadError
from crossmodal.eval import analysis as an
from crossmodal.eval import plots
from crossmodal.eval.evaluate import (
    EmbeddedSplit,
    SearchScoring,
    embed_split,
    evaluate,
    format_table,
    search_scoring,
    split_ranks,
)
from crossmodal.eval.evaluate import markdown_table as metrics_markdown_table
from crossmodal.eval.metrics import (
    metrics_from_ranks,
    scores_with_offsets,
)
from crossmodal.eval.options import ReportOptions, check_gallery_sizes
from crossmodal.models.base import Encoder
from crossmodal.models.features import embed_texts

#: Longest side of a photo thumbnail in the grids: below the 96 px the project allows at most.
THUMBNAIL_PX = 88
FAIL_AFTER = 10  # a text query "fails" when its true image is not in the top 10


# ----------------------------------------------------------------------------- options


@dataclass
class ReportResult:
    out_dir: Path
    files: list[Path]
    metrics: list[dict[str, Any]]
    analysis: dict[str, Any]
    seconds: float


# ----------------------------------------------------------------------------- document model


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # inline markup: `code`, **bold**, [text](link)


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Pre:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Fig:
    path: Path  # relative to the report folder
    caption: str


@dataclass
class FigRow:
    """Figures shown side by side (one per model)."""

    figs: list[Fig]


Block = Heading | Para | Bullets | Pre | Table | Fig | FigRow

_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def _inline_html(text: str) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, bold, label, href = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        else:
            out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Pre):
            parts.append("```\n" + b.text.rstrip("\n") + "\n```")
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |"]
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
            parts.append("\n".join(lines))
        elif isinstance(b, Fig):
            parts.append(f"![{b.caption}]({b.path.as_posix()})\n\n*{b.caption}*")
        elif isinstance(b, FigRow):
            # Markdown has no side-by-side layout; a one-row table puts figures next to each
            # other on GitHub and in most viewers.
            if len(b.figs) == 1:
                parts.append(render_markdown([b.figs[0]]))
            else:
                parts.append(
                    "| "
                    + " | ".join(f.caption for f in b.figs)
                    + " |\n"
                    + "|"
                    + "---|" * len(b.figs)
                    + "\n"
                    + "| "
                    + " | ".join(f"![{f.caption}]({f.path.as_posix()})" for f in b.figs)
                    + " |"
                )
    return "\n\n".join(parts) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:.7em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:.5em 0;flex:1 1 0;min-width:320px}figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}
"""


def render_html(blocks: Sequence[Block], title: str, out_dir: Path) -> str:
    """One HTML file with every figure inlined as a base64 PNG (no files beside it needed)."""

    def img(f: Fig) -> str:
        data = base64.b64encode((out_dir / f.path).read_bytes()).decode("ascii")
        alt = html.escape(f.caption, quote=True)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{_inline_html(f.caption)}</figcaption></figure>"
        )

    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Pre):
            body.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in b.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Fig):
            body.append(f'<div class="row">{img(b)}</div>')
        elif isinstance(b, FigRow):
            body.append('<div class="row">' + "".join(img(f) for f in b.figs) + "</div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


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


def _rel_link(path: Path, out_dir: Path) -> str:
    """A link to a photo relative to the report, so the report never carries the photo."""
    # abspath, not resolve: a dataset reached through a symlink keeps the path the user gave
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    except ValueError:  # another drive on Windows
        rel = Path(os.path.abspath(path)).as_uri()
    return Path(rel).as_posix()


def _photo_link(path: Path, out_dir: Path) -> str:
    return f"[{Path(path).name}]({_rel_link(path, out_dir)})"


def _make_thumbnailer(photos: bool) -> plots.Thumbnail:
    @lru_cache(maxsize=512)
    def thumb(path: Path) -> np.ndarray | None:
        if not photos:
            return None
        try:
            image = load_image(path)
        except ImageLoadError:
            return None
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        return np.asarray(image)

    return thumb


def _f2(x: float) -> str:
    return f"{x:.2f}"


# ----------------------------------------------------------------------------- per model work


@dataclass
class _ModelRun:
    label: str
    slug: str
    colour: str
    result: dict[str, Any]
    split: EmbeddedSplit
    #: how the model's search scores this split; every ranking in the report goes through it
    scoring: SearchScoring
    t2i: np.ndarray
    i2t: np.ndarray
    figures: dict[str, Path] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def _embed_and_score(
    model: Encoder, dataset: ImageTextDataset, cache_dir: Path | None, show_progress: bool
) -> tuple[dict[str, Any], EmbeddedSplit, SearchScoring, np.ndarray, np.ndarray]:
    # `evaluate` gives metrics.json exactly as `crossmodal eval` writes it and fills the
    # cache; the second embed_split is then all cache hits (a second or two).
    result = evaluate(model, dataset, cache_dir=cache_dir, show_progress=show_progress)
    split = embed_split(model, dataset, cache_dir=cache_dir, show_progress=False)
    scoring = search_scoring(model, split)
    t2i, i2t = split_ranks(model, split, scoring=scoring)
    ks = tuple(int(k[2:]) for k in result["t2i"] if k.startswith("R@"))
    if metrics_from_ranks(t2i, ks) != result["t2i"] or metrics_from_ranks(i2t, ks) != result["i2t"]:
        # The second pass reads the first one's cache, so this only fires if the cache was
        # changed underneath us: refuse to publish a report that disagrees with metrics.json.
        raise CrossmodalError(
            f"{model.name}: embeddings changed between two passes; run with a cache"
        )
    return result, split, scoring, t2i, i2t


def prompt_sample(n_captions: int, limit: int, seed: int) -> np.ndarray:
    """Caption indices of the prompt study: all of them, or a seeded sample of `limit`."""
    if limit <= 0 or limit >= n_captions:
        return np.arange(n_captions)
    return np.sort(np.random.default_rng(seed).choice(n_captions, size=limit, replace=False))


def _prompt_study(
    model: Encoder,
    run: _ModelRun,
    cache_dir: Path | None,
    opt: ReportOptions,
    show_progress: bool,
) -> dict[str, dict[str, float]]:
    # Each variant is a fresh pass of every query through the text tower: the costliest step
    # of a first report, hence the optional sample (the cache makes later runs free).
    split = run.split
    idx = prompt_sample(len(split.captions), opt.prompt_captions, opt.seed + 2)
    out: dict[str, dict[str, float]] = {}
    for name, rewrite in an.PROMPT_VARIANTS.items():
        if name == "raw caption":
            ranks = run.t2i[idx]  # the very ranks of metrics.json
        else:
            texts = [rewrite(split.captions[i]) for i in idx]
            emb = embed_texts(model, texts, cache_dir=cache_dir, show_progress=show_progress)
            ranks = an.text_to_image_ranks(
                split.image_emb,
                emb,
                split.caption_image[idx],
                image_offsets=run.scoring.image_offsets,
            )
        m = metrics_from_ranks(ranks, opt.ks)
        out[name] = {f"R@{k}": m[f"R@{k}"] for k in opt.ks} | {"MRR": m["MRR"]}
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
            return _build(models, dataset, out, Path(tmp), opt, show_progress, start)
    return _build(models, dataset, out, Path(cache_dir), opt, show_progress, start)


def _build(
    models: Sequence[Encoder],
    dataset: ImageTextDataset,
    out: Path,
    cache: Path,
    opt: ReportOptions,
    show_progress: bool,
    start: float,
) -> ReportResult:
    labels = model_labels([m.name for m in models])
    colours = plots.model_colors(labels)
    thumb = _make_thumbnailer(opt.photos)
    written: list[Path] = []

    def save(fig: Any, name: str, photos: bool = False) -> Path:
        path = plots.save_png(fig, out / "figures" / name, dpi=opt.dpi, palette=not photos)
        written.append(path)
        return Path("figures") / name

    stages = (
        "embed + eval",
        "groups",
        "gallery sizes",
        "prompt study",
        "t-SNE",
        "heatmap",
        "top-K grids",
        "what went wrong",
    )
    bar = tqdm(
        total=len(models) * len(stages), desc="report", unit="step", disable=not show_progress
    )

    def stage(label: str, name: str) -> None:
        bar.set_postfix_str(f"{label}: {name}")

    runs: list[_ModelRun] = []
    for model, label, slug in zip(models, labels, _slugs(labels), strict=True):
        stage(label, "embed + eval")
        result, split, scoring, t2i, i2t = _embed_and_score(model, dataset, cache, show_progress)
        run = _ModelRun(label, slug, colours[label], result, split, scoring, t2i, i2t)
        runs.append(run)
        bar.update(1)
        check_gallery_sizes(len(split.image_paths), opt.gallery_sizes, dataset.split)
        n_img = len(split.image_paths)

        stage(label, "groups")
        run.data["by_length"] = an.recall_by_group(
            t2i, [an.length_bin(c) for c in split.captions], an.length_bin_labels(), opt.ks
        )
        run.data["by_category"] = an.recall_by_group(
            t2i, [an.caption_category(c) for c in split.captions], an.CATEGORY_ORDER, opt.ks
        )
        bar.update(1)

        stage(label, "gallery sizes")
        run.data["gallery"] = an.recall_vs_gallery_size(
            split.image_emb,
            split.text_emb,
            split.caption_image,
            opt.gallery_sizes,
            trials=opt.trials,
            seed=opt.seed,
            ks=opt.ks,
            scoring=scoring,
        )
        bar.update(1)

        stage(label, "prompt study")
        run.data["prompts"] = _prompt_study(model, run, cache, opt, show_progress)
        bar.update(1)

        # The same images for every model (same seed, same split), so side-by-side maps and
        # heatmaps show the same photos and captions.
        rng = np.random.default_rng(opt.seed)
        sample = np.sort(rng.choice(n_img, size=min(opt.tsne_images, n_img), replace=False))
        stage(label, "t-SNE")
        run.figures["tsne"] = save(_tsne(run, sample, opt, cache), f"tsne-{slug}.png")
        bar.update(1)

        stage(label, "heatmap")
        heat = np.sort(
            np.random.default_rng(opt.seed + 1).choice(
                n_img, size=min(opt.heatmap_images, n_img), replace=False
            )
        )
        run.figures["heatmap"], run.data["heatmap"] = _heatmap(run, heat, save)
        bar.update(1)

        stage(label, "top-K grids")
        run.data["examples"] = _grids(run, opt, thumb, save)
        bar.update(1)

        stage(label, "what went wrong")
        run.data["confused"], run.data["near_duplicates"] = an.confused_pairs(
            split.image_emb, split.text_emb, split.caption_image,
            image_offsets=scoring.image_offsets,
        )  # fmt: skip
        run.data["words"] = an.word_contrast(
            split.captions, t2i, fail_after=FAIL_AFTER, min_count=opt.min_word_count
        )
        bar.update(1)
    bar.close()

    shared = {
        "by_length": save(
            plots.group_recall_figure(
                {r.label: r.data["by_length"] for r in runs},
                colours,
                "Text→image recall by caption length",
                "caption length (words)",
                opt.ks,
            ),
            "recall-by-caption-length.png",
        ),
        "by_category": save(
            plots.group_recall_figure(
                {r.label: r.data["by_category"] for r in runs},
                colours,
                "Text→image recall by the category of the caption's first noun",
                "category (keyword map)",
                opt.ks,
            ),
            "recall-by-category.png",
        ),
        "gallery": save(
            plots.gallery_size_figure({r.label: r.data["gallery"] for r in runs}, colours, opt.ks),
            "recall-vs-gallery-size.png",
        ),
        "prompts": save(
            plots.prompt_figure(
                {r.label: {v: s["R@1"] for v, s in r.data["prompts"].items()} for r in runs},
                colours,
            ),
            "prompt-study.png",
        ),
    }

    metrics = [r.result for r in runs]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    written.append(out / "metrics.json")
    analysis = _analysis_json(runs, dataset, out, opt)
    (out / "analysis.json").write_text(json.dumps(analysis, indent=2, ensure_ascii=False) + "\n")
    written.append(out / "analysis.json")

    seconds = time.perf_counter() - start
    blocks = _document(runs, dataset, out, opt, shared, seconds)
    title = f"crossmodal report: {dataset.name} {dataset.split}"
    (out / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(render_html(blocks, title, out), encoding="utf-8")
    written += [out / "report.md", out / "report.html"]
    return ReportResult(out, written, metrics, analysis, seconds)


# ----------------------------------------------------------------------------- figures


def _tsne(run: _ModelRun, sample: np.ndarray, opt: ReportOptions, cache: Path | None) -> Any:
    split = run.split
    caps = np.flatnonzero(np.isin(split.caption_image, sample))
    row_of = {int(i): r for r, i in enumerate(sample.tolist())}
    text_image = np.array([row_of[int(split.caption_image[c])] for c in caps], np.int64)
    points = np.concatenate([split.image_emb[sample], split.text_emb[caps]])
    xy = an.tsne_2d(points, seed=opt.seed, cache_dir=cache)
    image_xy, text_xy = xy[: len(sample)], xy[len(sample) :]
    pairs: list[tuple[int, int]] = []
    for r in range(min(opt.tsne_pairs, len(sample))):
        first = np.flatnonzero(text_image == r)
        if first.size:
            pairs.append((r, int(first[0])))
    return plots.tsne_figure(image_xy, text_xy, pairs, run.label, run.colour)


def _heatmap(run: _ModelRun, images: np.ndarray, save: Any) -> tuple[Path, dict[str, Any]]:
    split = run.split
    first_caption = {}
    for c, i in enumerate(split.caption_image.tolist()):
        first_caption.setdefault(i, c)
    caps = [first_caption[int(i)] for i in images]
    sim = split.text_emb[caps] @ split.image_emb[images].T
    fig = plots.heatmap_figure(
        sim,
        [split.image_paths[i].stem for i in images],
        [split.captions[c] for c in caps],
        run.label,
    )
    path = save(fig, f"heatmap-{run.slug}.png")
    diag_hits = int((sim.argmax(axis=1) == np.arange(len(caps))).sum())
    return path, {"images": len(images), "diagonal_is_row_max": diag_hits}


def _grids(
    run: _ModelRun, opt: ReportOptions, thumb: plots.Thumbnail, save: Any
) -> dict[str, list[dict[str, Any]]]:
    split, scoring = run.split, run.scoring
    k = opt.top_k
    per_image: list[list[int]] = [[] for _ in split.image_paths]
    for c, i in enumerate(split.caption_image.tolist()):
        per_image[i].append(c)
    t_hit, t_miss = an.pick_examples(run.t2i, opt.examples, opt.seed, FAIL_AFTER)
    i_hit, i_miss = an.pick_examples(run.i2t, opt.examples, opt.seed, FAIL_AFTER)
    examples: dict[str, list[dict[str, Any]]] = {}

    def t2i_rows(queries: list[int]) -> list[plots.T2IRow]:
        top = an.top_k(split.text_emb, split.image_emb, queries, k, scoring.image_offsets)
        rows = []
        for q, items, scores in zip(top.queries, top.items, top.scores, strict=True):
            true = int(split.caption_image[q])
            hits = [
                plots.GridHit(split.image_paths[i], float(s), r + 1, int(i) == true)
                for r, (i, s) in enumerate(zip(items.tolist(), scores.tolist(), strict=True))
            ]
            true_hit = None
            if not any(h.is_true for h in hits):
                score = float(split.text_emb[q] @ split.image_emb[true])
                if scoring.image_offsets is not None:
                    score += float(scoring.image_offsets[true])
                true_hit = plots.GridHit(split.image_paths[true], score, int(run.t2i[q]), True)
            rows.append(plots.T2IRow(split.captions[q], int(run.t2i[q]), hits, true_hit))
        return rows

    def i2t_rows(queries: list[int]) -> list[plots.I2TRow]:
        top = an.top_k(scoring.image_queries, split.text_emb, queries, k, scoring.text_offsets)
        rows = []
        for q, items, scores in zip(top.queries, top.items, top.scores, strict=True):
            hits = [
                (split.captions[c], float(s), r + 1, int(split.caption_image[c]) == q)
                for r, (c, s) in enumerate(zip(items.tolist(), scores.tolist(), strict=True))
            ]
            # the true caption that ranks best (the one whose rank is the query's rank)
            mine = per_image[q]
            best = None
            if mine:
                own = scores_with_offsets(
                    scoring.image_queries[q : q + 1],
                    split.text_emb[mine],
                    None if scoring.text_offsets is None else scoring.text_offsets[mine],
                )[0]
                best = mine[int(np.argmax(own))]
            truth = split.captions[best] if best is not None else ""
            rows.append(plots.I2TRow(split.image_paths[q], int(run.i2t[q]), hits, truth))
        return rows

    t2i_specs = (
        ("t2i_hits", "Text→image: true image ranked 1st", t_hit),
        ("t2i_misses", f"Text→image: true image ranked past {FAIL_AFTER}", t_miss),
    )
    for key, title, queries in t2i_specs:
        t_rows = t2i_rows(queries)
        fig = plots.t2i_grid_figure(t_rows, title, run.label, thumb)
        run.figures[key] = save(fig, f"{key.replace('_', '-')}-{run.slug}.png", opt.photos)
        examples[key] = [
            {
                "query": r.caption,
                "true_rank": r.true_rank,
                "true_image": (r.true_hit or next(h for h in r.hits if h.is_true)).path,
                "hits": [(h.path, h.score) for h in r.hits],
            }
            for r in t_rows
        ]
    i2t_specs = (
        ("i2t_hits", "Image→text: a true caption ranked 1st", i_hit),
        ("i2t_misses", f"Image→text: no true caption in the top {FAIL_AFTER}", i_miss),
    )
    for key, title, queries in i2t_specs:
        i_rows = i2t_rows(queries)
        fig = plots.i2t_grid_figure(i_rows, title, run.label, thumb)
        run.figures[key] = save(fig, f"{key.replace('_', '-')}-{run.slug}.png", opt.photos)
        examples[key] = [
            {
                "image": r.image,
                "true_rank": r.true_rank,
                "hits": [(cap, score, ok) for cap, score, _, ok in r.hits],
            }
            for r in i_rows
        ]
    return examples


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


def _analysis_json(
    runs: Sequence[_ModelRun], dataset: ImageTextDataset, out: Path, opt: ReportOptions
) -> dict[str, Any]:
    def rel(p: Path) -> str:
        return _rel_link(p, out)

    models = []
    for r in runs:
        d = r.data
        paths = r.split.image_paths
        models.append(
            {
                "model": r.result["model"],
                "label": r.label,
                "by_caption_length": asdict(d["by_length"]),
                "by_category": asdict(d["by_category"]),
                "gallery_size": asdict(d["gallery"]),
                "prompt_study": d["prompts"],
                "prompt_study_captions": len(
                    prompt_sample(len(r.split.captions), opt.prompt_captions, opt.seed + 2)
                ),
                "heatmap": d["heatmap"],
                "confused_pairs": [
                    {
                        "a": rel(paths[p.a]),
                        "b": rel(paths[p.b]),
                        "cosine": p.cosine,
                        "confusions": p.confusions,
                    }
                    for p in d["confused"]
                ],
                "near_duplicates": [
                    {
                        "a": rel(paths[p.a]),
                        "b": rel(paths[p.b]),
                        "cosine": p.cosine,
                        "confusions": p.confusions,
                    }
                    for p in d["near_duplicates"]
                ],
                "words": asdict(d["words"]),
                "examples": _examples_json(d["examples"], rel),
            }
        )
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "photos_in_figures": opt.photos,
        "options": {k: v for k, v in asdict(opt).items() if k != "command"},
        "category_keywords": an.CATEGORY_KEYWORDS,
        "prompt_variants": list(an.PROMPT_VARIANTS),
        "models": models,
    }


# ----------------------------------------------------------------------------- the document


def _document(
    runs: Sequence[_ModelRun],
    dataset: ImageTextDataset,
    out: Path,
    opt: ReportOptions,
    shared: dict[str, Path],
    seconds: float,
) -> list[Block]:
    first = runs[0].result
    ks = opt.ks
    many = len(runs) > 1
    b: list[Block] = [Heading(1, f"Retrieval report: {dataset.name} {dataset.split}")]
    names = ", ".join(f"**{r.label}** (`{r.result['model']}`)" for r in runs)
    b.append(
        Para(
            f"Models: {names}. "
            f"Split: {first['n_images']} images, {first['n_texts']} captions. "
            f"Built in {seconds:.0f} s on {_dt.date.today().isoformat()}"
            + (f" by `{opt.command}`." if opt.command else ".")
        )
    )
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
    b.append(Para(photo_note))
    b.append(
        Para(
            "Reading guide: R@K is the percentage of queries whose true match is among the top K "
            "(any of an image's 5 captions counts for image→text); MRR is the mean reciprocal "
            "rank of the best true match; MedR its median rank. All numbers below are computed "
            "from the same embeddings and ranks as `crossmodal eval` (see `metrics.json`)."
        )
    )

    # ---- headline metrics
    b.append(Heading(2, "Metrics"))
    b.append(Table(*_split_md_table(metrics_markdown_table([r.result for r in runs]))))
    b.append(Para("Exactly what `crossmodal eval` prints for each model:"))
    for r in runs:
        b.append(Pre(format_table(r.result)))

    # ---- gallery size
    b.append(Heading(2, "Recall vs gallery size"))
    b.append(
        Para(
            f"Random galleries of {', '.join(map(str, opt.gallery_sizes))} images (all captions "
            f"of the chosen images are the queries), {opt.trials} draws per size with seed "
            f"{opt.seed}; a gallery of the whole split is scored once. Mean (± std) in %."
        )
    )
    b.append(Fig(shared["gallery"], "Recall vs gallery size"))
    rows = []
    for r in runs:
        g: an.GallerySizeCurve = r.data["gallery"]
        for d, name in (("t2i", "text→image"), ("i2t", "image→text")):
            for k in ks:
                mean, std = getattr(g, f"{d}_mean")[f"R@{k}"], getattr(g, f"{d}_std")[f"R@{k}"]
                rows.append(
                    [
                        r.label,
                        f"{name} R@{k}",
                        *[f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, std, strict=True)],
                    ]
                )
    header = ["model", "metric", *[f"{s} images" for s in opt.gallery_sizes]]
    b.append(Table(header, rows))

    # ---- caption length and category
    b.append(Heading(2, "Recall by caption length"))
    b.append(
        Para(
            "Text→image recall of the captions grouped by their number of words (alphabetic "
            'tokens; the trailing " ." of Flickr8k captions is not a word).'
        )
    )
    b.append(Fig(shared["by_length"], "Text→image recall by caption length"))
    b.append(_group_table(runs, "by_length", "words", ks))
    b.append(Heading(2, "Recall by caption category"))
    b.append(
        Para(
            "Each caption's category is that of its first word found in the keyword map below: a "
            'stand-in for the first noun, with no part-of-speech tagger (so "a group of people" '
            'is people, and "a ball thrown to a dog" is dogs). Captions with no keyword are '
            '"other".'
        )
    )
    b.append(Fig(shared["by_category"], "Text→image recall by caption category"))
    b.append(_group_table(runs, "by_category", "category", ks))
    b.append(Bullets([f"**{cat}**: {' '.join(kw)}" for cat, kw in an.CATEGORY_KEYWORDS.items()]))

    # ---- prompt study
    b.append(Heading(2, "Prompt study"))
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
    b.append(
        Para(
            "The same text→image queries, rewritten: the raw caption (as `crossmodal eval` "
            'scores it), "a photo of {caption}", lower-cased, and with punctuation stripped, '
            + scope
            + "."
        )
    )
    b.append(Fig(shared["prompts"], "Prompt study"))
    rows = []
    for r in runs:
        raw = r.data["prompts"]["raw caption"]["R@1"]
        for v, s in r.data["prompts"].items():
            delta = "" if v == "raw caption" else f"{s['R@1'] - raw:+.2f}"
            rows.append([r.label, v, *[_f2(s[f"R@{k}"]) for k in ks], f"{s['MRR']:.3f}", delta])
    b.append(Table(["model", "query text", *[f"R@{k}" for k in ks], "MRR", "ΔR@1"], rows))

    # ---- embedding space
    b.append(Heading(2, "Embedding space"))
    n_tsne = min(opt.tsne_images, first["n_images"])
    b.append(
        Para(
            f"t-SNE (scikit-learn, cosine distance, perplexity ≤ 30, seed {opt.seed}) of {n_tsne} "
            f"random images and all their captions; lines join {opt.tsne_pairs} images to their "
            "first caption. A good space puts each caption near its image; two separate clouds "
            "mean the modalities are not aligned (common for contrastive models: the "
            '"modality gap").'
        )
    )
    b.append(FigRow([Fig(r.figures["tsne"], f"t-SNE — {r.label}") for r in runs]))
    b.append(
        Para(
            f"Cosine similarity of {min(opt.heatmap_images, first['n_images'])} random images "
            "(columns) and their first captions (rows); the ground truth is the diagonal and the "
            "dot marks each row's best image. "
            + " ".join(
                f"{r.label}: the diagonal is the row maximum in "
                f"{r.data['heatmap']['diagonal_is_row_max']} of {r.data['heatmap']['images']} rows."
                for r in runs
            )
        )
    )
    b.append(FigRow([Fig(r.figures["heatmap"], f"Similarity heatmap — {r.label}") for r in runs]))

    # ---- top-K examples
    b.append(Heading(2, "Top-K examples"))
    b.append(
        Para(
            f"Seeded random queries (seed {opt.seed}) whose true match ranks 1st, and failures "
            f"ranked past {FAIL_AFTER}, with the top {opt.top_k} results and cosine scores. "
            + (
                "Photos are shown as thumbnails."
                if opt.photos
                else "Photos are grey placeholders (see **Photos** above); the tables name them."
            )
        )
    )
    for key, title in (
        ("t2i_hits", "Text→image, true image first"),
        ("t2i_misses", f"Text→image, true image past {FAIL_AFTER}"),
        ("i2t_hits", "Image→text, a true caption first"),
        ("i2t_misses", f"Image→text, no true caption in the top {FAIL_AFTER}"),
    ):
        b.append(Heading(3, title))
        b.append(FigRow([Fig(r.figures[key], f"{title} — {r.label}") for r in runs]))
        for r in runs:
            b.append(_example_table(r, key, out, many))

    # ---- what went wrong
    b.append(Heading(2, "What went wrong"))
    for r in runs:
        if many:
            b.append(Heading(3, r.label))
        b += _wrong_section(r, out, opt)

    b.append(Heading(2, "Files"))
    b.append(
        Bullets(
            [
                "`metrics.json`: a list with one entry per model, each exactly the JSON "
                "`crossmodal eval --json` writes (timings aside).",
                "`analysis.json`: every other number of this report.",
                "`figures/*.png`: the figures; `report.html` embeds them and needs nothing else.",
            ]
        )
    )
    return b


def _split_md_table(md: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln.strip().strip("|").split("|") for ln in md.strip().splitlines()]
    header = [c.strip() for c in lines[0]]
    rows = [[c.strip() for c in ln] for ln in lines[2:]]
    return header, rows


def _group_table(runs: Sequence[_ModelRun], key: str, what: str, ks: Sequence[int]) -> Table:
    groups = runs[0].data[key].groups
    rows = []
    for g in groups:
        row = [g, str(runs[0].data[key].counts[g])]
        for r in runs:
            rec = r.data[key].recall[g]
            row += [_f2(rec[f"R@{k}"]) for k in ks]
        rows.append(row)
    header = [what, "captions"]
    for r in runs:
        header += [f"{r.label} R@{k}" if len(runs) > 1 else f"R@{k}" for k in ks]
    return Table(header, rows)


def _example_table(run: _ModelRun, key: str, out: Path, many: bool) -> Table:
    prefix = [run.label] if many else []
    rows = []
    for ex in run.data["examples"][key]:
        if key.startswith("t2i"):
            top = ", ".join(f"{_photo_link(p, out)} {s:.3f}" for p, s in ex["hits"][:3])
            rows.append(
                [
                    *prefix,
                    ex["query"],
                    _photo_link(ex["true_image"], out),
                    str(ex["true_rank"]),
                    top,
                ]
            )
        else:
            top = "; ".join(f"{'✓' if ok else '✗'} {c} ({s:.3f})" for c, s, ok in ex["hits"][:3])
            rows.append([*prefix, _photo_link(ex["image"], out), str(ex["true_rank"]), top])
    if key.startswith("t2i"):
        header = ["query", "true image", "its rank", "top 3 (score)"]
    else:
        header = ["image", "rank of its best true caption", "top 3 captions (score)"]
    if not rows:
        rows = [["(no such query)"] + [""] * (len(header) - 1 + len(prefix))]
    return Table(([*(["model"] if many else []), *header]), rows)


def _wrong_section(run: _ModelRun, out: Path, opt: ReportOptions) -> list[Block]:
    split = run.split
    n = len(run.t2i)
    failed = int((run.t2i > FAIL_AFTER).sum())
    first = int((run.t2i == 1).sum())
    blocks: list[Block] = [
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
    ]

    def pair_rows(pairs: Sequence[an.ImagePair]) -> list[list[str]]:
        return [
            [
                _photo_link(split.image_paths[p.a], out),
                _photo_link(split.image_paths[p.b], out),
                f"{p.cosine:.3f}",
                str(p.confusions),
            ]
            for p in pairs
        ]

    header = ["image A", "image B", "image–image cosine", "confusions"]
    blocks.append(Table(header, pair_rows(run.data["confused"]) or [["—", "—", "—", "0"]]))
    blocks.append(
        Para(
            "**Nearest near-duplicates** in the gallery by image–image cosine, with how often "
            "their captions confuse them:"
        )
    )
    blocks.append(Table(header, pair_rows(run.data["near_duplicates"]) or [["—"] * 4]))
    w: an.WordContrast = run.data["words"]
    blocks.append(
        Para(
            f"**Words over-represented in failed queries** (true image past {FAIL_AFTER}; "
            f"{w.n_failed} captions) against successful ones (true image first; {w.n_succeeded} "
            "captions). Each word counts once per caption; ratio = share of failed captions with "
            "the word / share of successful ones (add-one smoothed); words in at least "
            f"{opt.min_word_count} of these captions, common function words left out."
        )
    )

    def word_rows(stats: Sequence[an.WordStat]) -> list[list[str]]:
        return [
            [
                s.word,
                f"{s.failed} ({100 * s.failed / max(1, w.n_failed):.1f} %)",
                f"{s.succeeded} ({100 * s.succeeded / max(1, w.n_succeeded):.1f} %)",
                f"{s.ratio:.2f}",
            ]
            for s in stats
        ]

    wh = ["word", "in failed", "in successful", "ratio"]
    blocks.append(Table(wh, word_rows(w.over_in_failed) or [["—", "", "", ""]]))
    blocks.append(Para("And the words most over-represented in successful queries:"))
    blocks.append(Table(wh, word_rows(w.over_in_succeeded) or [["—", "", "", ""]]))
    return blocks


__all__ = [
    "THUMBNAIL_PX",
    "ReportOptions",
    "ReportResult",
    "build_report",
    "check_gallery_sizes",
    "model_labels",
    "prepare_out_dir",
    "render_html",
    "render_markdown",
]
