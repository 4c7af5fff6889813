"""Figures of `crossmodal report`, each built by a function that returns a matplotlib Figure.

Figures are made with `matplotlib.figure.Figure` directly, never pyplot: no global figure
registry to leak memory across a long report, no GUI backend to pick (PNG output goes through
Agg), and tests can inspect titles, labels and legends before anything is saved.

Every figure has a title, labelled axes and a legend, and a model keeps one colour across all
figures (`model_colors`). Photo grids take a `thumbnail` callable: it returns pixels, or None
to draw a grey placeholder where a photo may not be redistributed.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from crossmodal.eval.analysis import GallerySizeCurve, GroupRecall

# Agg is the only backend a report needs; selecting it keeps headless machines quiet.
matplotlib.use("Agg", force=False)

#: Modality colours of the t-SNE plot (the same for every model, so plots compare).
IMAGE_COLOUR = "#1f77b4"
TEXT_COLOUR = "#ff7f0e"
TRUE_COLOUR = "#2ca02c"
WRONG_COLOUR = "#9e9e9e"
PLACEHOLDER_GREY = 0.82

Thumbnail = Callable[[Path], np.ndarray | None]


def model_colors(labels: Sequence[str]) -> dict[str, str]:
    """One colour per model, in the order given, reused by every figure of a report."""
    tab10 = matplotlib.colormaps["tab10"]
    palette = [tab10(i) for i in range(10)]
    return {label: matplotlib.colors.to_hex(palette[i % 10]) for i, label in enumerate(labels)}


def save_png(fig: Figure, path: Path, dpi: int = 90, palette: bool = True) -> Path:
    """Write a PNG. Plots have few colours, so a 256-colour palette keeps committed figures
    about a third of their size with no visible change; photo grids keep full colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(fig, dpi=dpi)
    if palette:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            buf = io.BytesIO()
            small.save(buf, format="PNG", optimize=True)
            data = buf.getvalue()
    path.write_bytes(data)
    return path


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _short(text: str, width: int) -> str:
    """Shorten prose at a word boundary."""
    return textwrap.shorten(text, width=width, placeholder="…")


def _clip(name: str, width: int) -> str:
    """Shorten a file name (no spaces, so `_short` would drop it whole)."""
    return name if len(name) <= width else name[: width - 1] + "…"


# ----------------------------------------------------------------------------- embeddings


def tsne_figure(
    image_xy: np.ndarray,
    text_xy: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    model_label: str,
    model_colour: str,
) -> Figure:
    """Images and captions in one t-SNE map; lines join a few true (image, caption) pairs.

    `pairs` lists (row of `image_xy`, row of `text_xy`) of true pairs to join.
    """
    fig = Figure(figsize=(6.2, 5.4))
    ax = fig.add_subplot()
    ax.scatter(
        text_xy[:, 0], text_xy[:, 1], s=9, c=TEXT_COLOUR, marker="^", alpha=0.55,
        label=f"captions ({len(text_xy)})", zorder=2,
    )  # fmt: skip
    ax.scatter(
        image_xy[:, 0], image_xy[:, 1], s=14, c=IMAGE_COLOUR, marker="o", alpha=0.75,
        label=f"images ({len(image_xy)})", zorder=3,
    )  # fmt: skip
    # The joined pairs are drawn last and outlined, so they stand out of the crowd of points.
    for i, j in pairs:
        ax.plot(
            [image_xy[i, 0], text_xy[j, 0]], [image_xy[i, 1], text_xy[j, 1]],
            color="black", lw=1.3, zorder=4,
        )  # fmt: skip
    if pairs:
        ii = [i for i, _ in pairs]
        jj = [j for _, j in pairs]
        ax.scatter(image_xy[ii, 0], image_xy[ii, 1], s=34, c=IMAGE_COLOUR, ec="black", zorder=5)
        ax.scatter(
            text_xy[jj, 0], text_xy[jj, 1], s=34, c=TEXT_COLOUR, marker="^", ec="black", zorder=5
        )
    ax.plot([], [], color="black", lw=1.3, label=f"true pair ({len(pairs)} shown, outlined)")
    ax.set_title(f"t-SNE of image and caption embeddings — {model_label}", color=model_colour)
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    return fig


def heatmap_figure(
    sim: np.ndarray, image_names: Sequence[str], captions: Sequence[str], model_label: str
) -> Figure:
    """Caption (rows) x image (columns) cosine similarity; ground truth on the diagonal.

    Each row's highest score is dotted, so an off-diagonal dot is a text->image miss.
    """
    n_rows, n_cols = sim.shape
    fig = Figure(figsize=(2.5 + 0.36 * n_cols, 1.3 + 0.3 * n_rows))
    ax = fig.add_subplot()
    im = ax.imshow(sim, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, label="cosine similarity", fraction=0.04, pad=0.02)
    for d in range(min(n_rows, n_cols)):
        ax.add_patch(Rectangle((d - 0.5, d - 0.5), 1, 1, fill=False, ec="white", lw=1.6))
    best = sim.argmax(axis=1)
    ax.scatter(best, np.arange(n_rows), s=10, c="red", marker="o", zorder=3)
    ax.set_xticks(range(n_cols), [_clip(n, 12) for n in image_names], rotation=90, fontsize=6)
    ax.set_yticks(range(n_rows), [_short(c, 42) for c in captions], fontsize=6)
    ax.set_xlabel("image (file name)")
    ax.set_ylabel("first caption of each image")
    ax.set_title(f"Caption–image similarity, {n_rows} pairs — {model_label}")
    fig.legend(
        handles=[
            Patch(fill=False, ec="black", lw=1.2, label="ground-truth pair (diagonal)"),
            Line2D([], [], ls="", marker="o", color="red", markersize=4, label="row maximum"),
        ],
        loc="lower center",
        ncol=2,
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# ----------------------------------------------------------------------------- photo grids


@dataclass
class GridHit:
    path: Path
    score: float
    rank: int
    is_true: bool


@dataclass
class T2IRow:
    caption: str
    true_rank: int
    hits: list[GridHit]
    true_hit: GridHit | None  # shown in an extra panel when it is not among the hits


@dataclass
class I2TRow:
    image: Path
    true_rank: int
    hits: list[tuple[str, float, int, bool]]  # caption, score, rank, is a true caption
    truth: str = ""  # its best-ranked true caption, shown when none of the hits is true


def _photo(ax: Axes, path: Path, thumbnail: Thumbnail) -> None:
    pixels = thumbnail(path)
    if pixels is None:
        ax.imshow(np.full((8, 8), PLACEHOLDER_GREY), cmap="gray", vmin=0, vmax=1)
        ax.text(
            0.5,
            0.5,
            f"photo not\nredistributed\n{_clip(path.stem, 12)}",
            ha="center",
            va="center",
            fontsize=6,
            color="#555555",
            transform=ax.transAxes,
        )
    else:
        ax.imshow(pixels)
    ax.set_xticks([])
    ax.set_yticks([])


def _frame(ax: Axes, colour: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def t2i_grid_figure(
    rows: Sequence[T2IRow], title: str, model_label: str, thumbnail: Thumbnail
) -> Figure:
    """One row per text query: its top-K images with scores, the true image framed green;
    when the true image is not among them, an extra panel shows it with its rank."""
    k = max((len(r.hits) for r in rows), default=1)
    cols = k + 1
    fig = Figure(figsize=(1.35 * cols + 0.2, 1.75 * max(1, len(rows)) + 0.7))
    axes = fig.subplots(max(1, len(rows)), cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            hit = row.hits[c] if c < len(row.hits) else (row.true_hit if c == k else None)
            if hit is None:
                ax.axis("off")
                continue
            _photo(ax, hit.path, thumbnail)
            if c == k:
                ax.set_xlabel(f"true image\nrank {hit.rank}  {hit.score:.3f}", fontsize=6.5)
                _frame(ax, TRUE_COLOUR, 2.5)
                ax.set_facecolor("#eeeeee")
            else:
                ax.set_xlabel(f"#{hit.rank}  {hit.score:.3f}", fontsize=6.5)
                _frame(
                    ax, TRUE_COLOUR if hit.is_true else WRONG_COLOUR, 2.5 if hit.is_true else 0.8
                )
        axes[r][0].set_ylabel(
            "\n".join(textwrap.wrap(_short(row.caption, 90), 22)),
            fontsize=6,
            rotation=0,
            ha="right",
            va="center",
            labelpad=4,
        )
    if not rows:
        axes[0][0].text(0.5, 0.5, "no such queries", ha="center", va="center")
        axes[0][0].set_xlabel("rank, score")
        axes[0][0].set_ylabel("query")
    fig.suptitle(f"{title} — {model_label}", fontsize=9)
    fig.supxlabel("retrieved images: rank and cosine score", fontsize=8, x=0.3)
    fig.supylabel("text query", fontsize=8)
    fig.legend(
        handles=[
            Patch(fill=False, ec=TRUE_COLOUR, lw=2.5, label="true image"),
            Patch(fill=False, ec=WRONG_COLOUR, lw=1, label="other image"),
        ],
        loc="lower right",
        fontsize=7,
        ncol=2,
    )
    fig.tight_layout(rect=(0.04, 0.04, 1, 0.97))
    return fig


def i2t_grid_figure(
    rows: Sequence[I2TRow], title: str, model_label: str, thumbnail: Thumbnail
) -> Figure:
    """One row per image query: the photo, then its top-K captions with scores; true ones
    green with a check mark."""
    n = max(1, len(rows))
    fig = Figure(figsize=(8.4, 1.45 * n + 0.7))
    grid = fig.add_gridspec(n, 2, width_ratios=(1, 5.2))
    for r, row in enumerate(rows):
        ax_img = fig.add_subplot(grid[r, 0])
        _photo(ax_img, row.image, thumbnail)
        ax_img.set_ylabel(_clip(row.image.stem, 16), fontsize=6)
        ax_img.set_xlabel(f"best true caption: #{row.true_rank}", fontsize=6)
        ax_txt = fig.add_subplot(grid[r, 1])
        ax_txt.axis("off")
        lines = len(row.hits) + (1 if row.truth and not any(h[3] for h in row.hits) else 0)
        for i, (cap, score, rank, ok) in enumerate(row.hits):
            mark = "✓" if ok else "✗"
            ax_txt.text(
                0.0,
                1 - (i + 0.5) / max(1, lines),
                f"{mark} #{rank} {score:.3f}  {_short(cap, 95)}",
                fontsize=6.5,
                va="center",
                color=TRUE_COLOUR if ok else "#333333",
                transform=ax_txt.transAxes,
            )
        if lines > len(row.hits):
            ax_txt.text(
                0.0,
                1 - (lines - 0.5) / lines,
                f"best true caption (#{row.true_rank}): {_short(row.truth, 85)}",
                fontsize=6.5,
                va="center",
                style="italic",
                color=TRUE_COLOUR,
                transform=ax_txt.transAxes,
            )
    if not rows:
        ax = fig.add_subplot(grid[0, :])
        ax.text(0.5, 0.5, "no such queries", ha="center", va="center")
        ax.set_xlabel("rank, score")
        ax.set_ylabel("query")
    fig.suptitle(f"{title} — {model_label}", fontsize=9)
    fig.supxlabel("retrieved captions: rank, cosine score, text", fontsize=8, x=0.3)
    fig.supylabel("image query", fontsize=8)
    fig.legend(
        handles=[
            Patch(color=TRUE_COLOUR, label="✓ a true caption of the image"),
            Patch(color="#333333", label="✗ a caption of another image"),
        ],
        loc="lower right",
        fontsize=7,
        ncol=2,
    )
    fig.tight_layout(rect=(0.03, 0.04, 1, 0.97))
    return fig


# ----------------------------------------------------------------------------- curves


def _grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    values: Mapping[str, Sequence[float]],
    colors: Mapping[str, str],
) -> None:
    n_models = max(1, len(values))
    width = 0.8 / n_models
    x = np.arange(len(groups))
    for m, (label, vals) in enumerate(values.items()):
        ax.bar(x + (m - (n_models - 1) / 2) * width, vals, width, color=colors[label], label=label)
    ax.set_xticks(x, list(groups))


def group_recall_figure(
    results: Mapping[str, GroupRecall],
    colors: Mapping[str, str],
    title: str,
    xlabel: str,
    ks: Sequence[int] = (1, 5, 10),
) -> Figure:
    """Text->image R@K per group of captions, one panel per K, models side by side.

    The group axis is the union over models (they share the captions, so the same groups),
    labelled with the number of captions in each group.
    """
    first = next(iter(results.values()))
    groups = first.groups
    fig = Figure(figsize=(4.0 * len(ks), 3.6))
    axes = fig.subplots(1, len(ks), squeeze=False)[0]
    for ax, k in zip(axes, ks, strict=True):
        vals = {
            label: [gr.recall.get(g, {}).get(f"R@{k}", np.nan) for g in groups]
            for label, gr in results.items()
        }
        ticks = [f"{g.replace(' ', chr(10))}\n(n={first.counts[g]})" for g in groups]
        _grouped_bars(ax, ticks, vals, colors)
        ax.set_ylim(0, 100)
        ax.set_title(f"R@{k}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(f"text→image R@{k} (%)", fontsize=8)
        ax.tick_params(axis="x", labelsize=6.5)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gallery_size_figure(
    curves: Mapping[str, GallerySizeCurve],
    colors: Mapping[str, str],
    ks: Sequence[int] = (1, 5, 10),
) -> Figure:
    """R@K against the number of images searched, mean ± std over random galleries."""
    fig = Figure(figsize=(9.5, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    styles = dict(zip(ks, ("-", "--", ":", "-."), strict=False))
    markers = dict(zip(ks, ("o", "s", "^", "D"), strict=False))
    trials = 1
    for ax, d, name in zip(axes, ("t2i", "i2t"), ("text→image", "image→text"), strict=True):
        for label, curve in curves.items():
            trials = curve.trials
            mean = getattr(curve, f"{d}_mean")
            std = getattr(curve, f"{d}_std")
            for k in ks:
                ax.errorbar(
                    curve.sizes,
                    mean[f"R@{k}"],
                    yerr=std[f"R@{k}"],
                    color=colors[label],
                    ls=styles.get(k, "-"),
                    marker=markers.get(k, "o"),
                    ms=4,
                    capsize=2,
                    label=f"{label} R@{k}",
                )
        ax.set_xscale("log")
        first = next(iter(curves.values()))
        ax.set_xticks(first.sizes, [str(s) for s in first.sizes])
        ax.minorticks_off()
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("gallery size (images, log scale)", fontsize=8)
        ax.set_ylabel("recall (%)", fontsize=8)
    axes[1].legend(fontsize=7, loc="upper right", ncol=1 if len(curves) < 2 else 2)
    fig.suptitle(
        f"Recall vs gallery size (mean ± std over {trials} random galleries per size)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def prompt_figure(
    results: Mapping[str, Mapping[str, float]], colors: Mapping[str, str], k: int = 1
) -> Figure:
    """Text->image R@K for each rewriting of the captions, models side by side."""
    variants = list(next(iter(results.values())))
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.add_subplot()
    _grouped_bars(ax, variants, {m: [r[v] for v in variants] for m, r in results.items()}, colors)
    for cont in ax.containers:
        if isinstance(cont, BarContainer):
            ax.bar_label(cont, fmt="%.2f", fontsize=6.5, padding=1)
    top = max(max(r.values()) for r in results.values())
    ax.set_ylim(0, max(5.0, top * 1.25))
    ax.set_xlabel("query text")
    ax.set_ylabel(f"text→image R@{k} (%)")
    ax.set_title(f"Prompt study: text→image R@{k} by query wording")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- method flow chart


def _box(ax: Axes, x: float, y: float, text: str, colour: str) -> Text:
    return ax.text(
        x, y, text, ha="center", va="center", fontsize=8,
        bbox={"boxstyle": "round,pad=0.45", "facecolor": colour, "edgecolor": "#444"},
    )  # fmt: skip


def _arrow(ax: Axes, source: Text, target: Text) -> None:
    # patchA/patchB clip the arrow at the boxes' edges, whatever size the text made them
    ax.annotate(
        "", xy=target.get_position(), xytext=source.get_position(),
        arrowprops={
            "arrowstyle": "-|>", "color": "#444", "lw": 1.2, "shrinkA": 2, "shrinkB": 2,
            "patchA": source.get_bbox_patch(), "patchB": target.get_bbox_patch(),
        },
    )  # fmt: skip


def _wrapped(title: str, text: str, width: int = 28) -> str:
    return "\n".join([title, *textwrap.wrap(text, width)])


def flowchart_figure(image_encoder: str, text_encoder: str, dim: int, scoring: str) -> Figure:
    """The method as a flow chart: image / text -> encoder -> features -> similarity ->
    ranking, with the model's own towers, dimension and scoring written in the boxes. English
    only: a machine without a CJK font would draw Chinese as empty boxes (the report's text
    around the figure is bilingual)."""
    fig = Figure(figsize=(11.0, 3.2))
    ax = fig.add_axes((0, 0, 1, 0.92))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    middle = 0.5
    similarity = _box(
        ax, 0.70, middle, _wrapped("similarity", f"cosine = dot product {scoring}", 24), "#e8e8e8"
    )
    ranking = _box(ax, 0.91, middle, "ranking\ntop-K results;\nR@K, MRR, ranks", "#d9f0d3")
    for y, what, encoder, colour in (
        (0.78, "image", image_encoder, "#dbe9f6"),
        (0.22, "text", text_encoder, "#fde3cc"),
    ):
        source = _box(ax, 0.05, y, what, colour)
        encoded = _box(ax, 0.26, y, _wrapped("encoder", encoder), colour)
        features = _box(ax, 0.49, y, f"features\n{dim}-d, L2-normalised", colour)
        _arrow(ax, source, encoded)
        _arrow(ax, encoded, features)
        _arrow(ax, features, similarity)
    _arrow(ax, similarity, ranking)
    fig.suptitle("Method: dual-encoder retrieval", fontsize=10)
    return fig


__all__ = [
    "GridHit",
    "I2TRow",
    "T2IRow",
    "Thumbnail",
    "flowchart_figure",
    "gallery_size_figure",
    "group_recall_figure",
    "heatmap_figure",
    "i2t_grid_figure",
    "model_colors",
    "png_bytes",
    "prompt_figure",
    "save_png",
    "t2i_grid_figure",
    "tsne_figure",
]
