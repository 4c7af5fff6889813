"""Every report figure has a title, labelled axes and a legend, checked on the Figure objects
before anything is saved; models keep one colour throughout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from crossmodal.eval import plots
from crossmodal.eval.analysis import GroupRecall, recall_vs_gallery_size, tsne_2d


def titles(fig: Figure) -> list[str]:
    out = [ax.get_title() for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None and fig._suptitle.get_text():
        out.append(fig._suptitle.get_text())
    return out


def assert_labelled(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert titles(fig), "no title"
    xlabels = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    if fig._supxlabel is not None:
        xlabels.append(fig._supxlabel.get_text())
    if fig._supylabel is not None:
        ylabels.append(fig._supylabel.get_text())
    assert xlabels and ylabels, "axes not labelled"
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends and all(leg.get_texts() for leg in legends), "no legend"


def unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from tests.conftest import make_image

    return make_image(tmp_path / "p.jpg", (10, 120, 200))


def fake_thumb(path: Path) -> np.ndarray:
    return np.zeros((8, 8, 3), np.uint8)


def test_model_colours_are_stable_and_distinct():
    c = plots.model_colors(["a", "b", "c"])
    assert len(set(c.values())) == 3
    assert plots.model_colors(["a", "b"])["a"] == c["a"]


def test_tsne_figure(tmp_path: Path):
    rng = np.random.default_rng(0)
    img, txt = unit(rng, 5), unit(rng, 10)
    xy = tsne_2d(np.concatenate([img, txt]), seed=0, cache_dir=tmp_path)
    # cached: the second call reads the file instead of running t-SNE again
    assert len(list((tmp_path / "tsne").glob("*.npy"))) == 1
    assert np.array_equal(tsne_2d(np.concatenate([img, txt]), seed=0, cache_dir=tmp_path), xy)
    fig = plots.tsne_figure(xy[:5], xy[5:], [(0, 0), (1, 2)], "m", "#123456")
    assert_labelled(fig)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("images" in t for t in labels) and any("captions" in t for t in labels)


def test_heatmap_figure():
    rng = np.random.default_rng(1)
    sim = unit(rng, 4) @ unit(rng, 4).T
    fig = plots.heatmap_figure(sim, [f"img{i}.jpg" for i in range(4)], ["a cap"] * 4, "m")
    assert_labelled(fig)


@pytest.mark.parametrize("with_photos", [True, False])
def test_t2i_grid(photo: Path, with_photos: bool):
    thumb = fake_thumb if with_photos else (lambda p: None)
    hits = [plots.GridHit(photo, 0.5 - i / 10, i + 1, i == 1) for i in range(3)]
    missing = [plots.GridHit(photo, 0.4, 1, False)]
    rows = [
        plots.T2IRow("a dog on grass", 2, hits, None),
        plots.T2IRow("a cat", 17, missing, plots.GridHit(photo, 0.1, 17, True)),
    ]
    fig = plots.t2i_grid_figure(rows, "hits", "m", thumb)
    assert_labelled(fig)
    if not with_photos:
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert "photo not\nredistributed\np" in texts


def test_i2t_grid(photo: Path):
    rows = [
        plots.I2TRow(photo, 1, [("a dog", 0.6, 1, True), ("a cat", 0.5, 2, False)], "a dog"),
        plots.I2TRow(photo, 14, [("a car", 0.6, 1, False)], "a red bus"),
    ]
    fig = plots.i2t_grid_figure(rows, "i2t", "m", lambda p: None)
    assert_labelled(fig)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("best true caption (#14): a red bus") for t in texts)


def test_empty_grids_still_labelled():
    assert_labelled(plots.t2i_grid_figure([], "none", "m", fake_thumb))
    assert_labelled(plots.i2t_grid_figure([], "none", "m", fake_thumb))


def test_curves_side_by_side_for_two_models():
    colours = plots.model_colors(["a", "b"])
    groups = {
        m: GroupRecall(
            ["people", "dogs"],
            {"people": 3, "dogs": 2},
            {g: {"R@1": 10.0, "R@5": 50.0, "R@10": 90.0} for g in ("people", "dogs")},
        )
        for m in ("a", "b")
    }
    fig = plots.group_recall_figure(groups, colours, "by category", "category")
    assert_labelled(fig)
    bars = fig.axes[0].patches
    assert {b.get_facecolor() for b in bars[:2]} != {b.get_facecolor() for b in bars[2:]}

    rng = np.random.default_rng(2)
    img, txt = unit(rng, 10), unit(rng, 20)
    curve = recall_vs_gallery_size(img, txt, np.repeat(np.arange(10), 2), [5, 10], trials=2)
    assert_labelled(plots.gallery_size_figure({"a": curve, "b": curve}, colours))

    prompts = {m: {"raw caption": 20.0, "a photo of {caption}": 19.0} for m in ("a", "b")}
    assert_labelled(plots.prompt_figure(prompts, colours))


def test_png_output(tmp_path: Path):
    rng = np.random.default_rng(3)
    fig = plots.heatmap_figure(unit(rng, 3) @ unit(rng, 3).T, ["a", "b", "c"], ["x"] * 3, "m")
    path = plots.save_png(fig, tmp_path / "sub" / "h.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plots.png_bytes(fig)[:4] == b"\x89PNG"
