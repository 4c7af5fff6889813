"""`crossmodal report` end to end on a tiny fixture: generated images, a captions.json dataset
and a tiny dual encoder. The report must agree with `crossmodal eval` number for number, its
HTML must show its figures in a real browser, and bad input must give one line and exit 2."""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmodal.cli import app
from crossmodal.eval import analysis as an
from crossmodal.eval.metrics import retrieval_ranks
from crossmodal.models.dual import DualEncoder
from tests.conftest import TINY_MODEL_CONFIG, make_image

runner = CliRunner()

TINY = TINY_MODEL_CONFIG

# Eight images, two captions each, spread over the report's caption categories and lengths.
RECORDS: list[tuple[tuple[int, int, int], list[str]]] = [
    ((220, 30, 30), ["A man in a red shirt .", "A person wearing red stands by a wall"]),
    ((30, 200, 40), ["A dog runs on the green grass .", "Two dogs play in a field"]),
    ((30, 40, 210), ["A boat on the blue sea .", "The ocean is blue and calm today"]),
    ((230, 220, 20), ["A yellow car parked on the street .", "A taxi"]),
    ((140, 70, 20), ["A horse stands in a brown stable .", "A cat sleeps"]),
    ((240, 240, 240), ["Mountains under white snow .", "A snowy hill on a bright day"]),
    ((200, 40, 200), ["A child plays with a purple ball in the yard", "Kids at a party"]),
    ((20, 20, 20), ["A plate of food on a dark table at night", "Something black"]),
]
GALLERY = "4,8"
FAST = [
    "--gallery-sizes",
    GALLERY,
    "--trials",
    "3",
    "--tsne-images",
    "6",
    "--heatmap-images",
    "5",
    "--examples",
    "2",
    "--top-k",
    "3",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return DualEncoder(TINY).save(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    records = []
    for i, (rgb, captions) in enumerate(RECORDS):
        make_image(root / "images" / f"{i}.jpg", rgb)
        records.append({"image": f"{i}.jpg", "captions": captions})
    (root / "captions.json").write_text(json.dumps(records))
    return root


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def data_args(root: Path) -> list[str]:
    return ["--dataset", "captions-json", "--root", str(root), "--split", "all"]


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, dataset_root: Path
) -> dict[str, Any]:
    """One report (no photos) and one `crossmodal eval` of the same model, split and cache."""
    work = tmp_path_factory.mktemp("report")
    cache = work / "cache"
    out = work / "out"
    rep = invoke(
        "report", "--model", str(tiny_model), *data_args(dataset_root), "--out", str(out),
        *FAST, "--no-photos", "-q", "--cache-dir", str(cache),
    )  # fmt: skip
    assert rep.exit_code == 0, rep.output
    ev = invoke(
        "eval", "--model", str(tiny_model), *data_args(dataset_root),
        "--json", str(work / "eval.json"), "-q", "--cache-dir", str(cache),
    )  # fmt: skip
    assert ev.exit_code == 0, ev.output
    return {
        "out": out,
        "cache": cache,
        "eval_stdout": ev.output,
        "eval": json.loads((work / "eval.json").read_text()),
        "metrics": json.loads((out / "metrics.json").read_text()),
        "analysis": json.loads((out / "analysis.json").read_text()),
        "md": (out / "report.md").read_text(encoding="utf-8"),
        "html": (out / "report.html").read_text(encoding="utf-8"),
    }


def without_seconds(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "seconds"}


# ----------------------------------------------------------------------------- output files


def test_report_writes_every_file(built: dict[str, Any]):
    out: Path = built["out"]
    for name in ("report.md", "report.html", "metrics.json", "analysis.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {
        "tsne-tiny.png",
        "heatmap-tiny.png",
        "t2i-hits-tiny.png",
        "t2i-misses-tiny.png",
        "i2t-hits-tiny.png",
        "i2t-misses-tiny.png",
        "recall-by-caption-length.png",
        "recall-by-category.png",
        "recall-vs-gallery-size.png",
        "prompt-study.png",
        "method-flowchart.png",
    } <= names
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
        assert f"figures/{p.name}" in built["md"]


def test_metrics_json_is_exactly_the_eval_json(built: dict[str, Any]):
    assert len(built["metrics"]) == 1
    assert without_seconds(built["metrics"][0]) == without_seconds(built["eval"])


def test_every_number_eval_prints_is_in_the_report(built: dict[str, Any]):
    md: str = built["md"]
    table = [ln for ln in built["eval_stdout"].splitlines() if not ln.startswith("(")]
    # The table `crossmodal eval` prints appears verbatim...
    assert "\n".join(table) in md
    # ...and its numbers are those of the headline Markdown table.
    ev = built["eval"]
    row = next(ln for ln in md.splitlines() if ln.startswith(f"| {ev['model']} |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    expected = []
    for d in ("t2i", "i2t"):
        m = ev[d]
        expected += [f"{m['R@1']:.2f}", f"{m['R@5']:.2f}", f"{m['R@10']:.2f}"]
        expected += [f"{m['MRR']:.3f}", f"{m['MedR']:.0f}"]
    assert cells == expected


def test_derived_numbers_agree_with_eval(built: dict[str, Any]):
    ev, a = built["eval"], built["analysis"]["models"][0]
    n_texts = ev["n_texts"]
    # recall by group: caption-weighted mean over groups is the overall recall
    for key in ("by_caption_length", "by_category"):
        groups = a[key]
        assert sum(groups["counts"].values()) == n_texts
        for k in (1, 5, 10):
            mean = sum(
                groups["recall"][g][f"R@{k}"] * groups["counts"][g] for g in groups["groups"]
            )
            assert mean / n_texts == pytest.approx(ev["t2i"][f"R@{k}"])
    # the gallery of the whole split is the eval itself
    curve = a["gallery_size"]
    assert curve["sizes"] == [4, 8]
    for d in ("t2i", "i2t"):
        for k in (1, 5, 10):
            assert curve[f"{d}_mean"][f"R@{k}"][-1] == ev[d][f"R@{k}"]
    # the prompt study's raw captions are exactly the eval's queries
    raw = a["prompt_study"]["raw caption"]
    assert raw["R@1"] == ev["t2i"]["R@1"] and raw["MRR"] == ev["t2i"]["MRR"]
    assert set(a["prompt_study"]) == {
        "raw caption",
        "a photo of {caption}",
        "lower-cased",
        "punctuation stripped",
    }
    assert f"| tiny | raw caption | {ev['t2i']['R@1']:.2f} |" in built["md"]


def test_report_states_the_photo_decision(built: dict[str, Any]):
    assert built["analysis"]["photos_in_figures"] is False
    assert "not redistribution" in built["md"] and "grey placeholders" in built["md"]
    # photos are linked relatively, never embedded or referenced by absolute path
    links = re.findall(r"\]\(([^)]+\.jpg)\)", built["md"])
    assert links and all(not Path(p).is_absolute() for p in links)
    assert (built["out"] / links[0]).resolve().is_file()


# ----------------------------------------------------------------------------- seed 004's sections

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "report-flickr8k"

#: The sections seed 004 asks for (level, title), bilingual titles; every report has them.
SEED004_SECTIONS = [
    (2, "Abstract 摘要"),
    (2, "Method 方法"),
    (2, "Data and implementation 数据与实现"),
    (3, "Preprocessing and normalisation 预处理与归一化"),
    (3, "Caching 缓存"),
    (3, "Hyper-parameters 超参数"),
    (3, "Hardware and run time 硬件与运行时间"),
    (2, "Metrics 指标"),
    (2, "Seed 003's protocol 种子 003 评测协议"),
    (2, "What went wrong 错误分析"),
    (2, "Discussion 讨论"),
    (2, "Appendix 附录"),
    (3, "Environment 运行环境"),
    (3, "Commands 命令"),
]


def load_report(folder: Path) -> dict[str, Any]:
    return {
        "out": folder,
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "analysis": json.loads((folder / "analysis.json").read_text()),
        "md": (folder / "report.md").read_text(encoding="utf-8"),
        "html": (folder / "report.html").read_text(encoding="utf-8"),
    }


@pytest.fixture(params=["tiny", "committed"])
def report(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The tiny fixture's report and the committed Flickr8k example: both must hold every
    section, and the committed one is what readers see."""
    if request.param == "tiny":
        return request.getfixturevalue("built")
    return load_report(COMMITTED)


def test_every_section_is_in_markdown_and_html(report: dict[str, Any]):
    md, html = report["md"], report["html"]
    for level, title in SEED004_SECTIONS:
        assert f"\n{'#' * level} {title}\n" in md, title
        assert f"<h{level}>{html_lib.escape(title)}</h{level}>" in html, title
    # the method's flow chart is a figure of the report, inlined in the HTML
    assert "](figures/method-flowchart.png)" in md
    assert (report["out"] / "figures" / "method-flowchart.png").is_file()
    # the appendix names the environment and the exact command
    for package in ("python", "torch", "transformers", "faiss-cpu", "openvino"):
        assert f"| {package} |" in md, package
    assert "crossmodal report --model" in md and "crossmodal eval --model" in md


def section_text(md: str, title: str) -> str:
    body = md.split(f"\n## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0].strip()


def json_numbers(value: Any) -> set[str]:
    """Every number of a JSON document, as the report may print it."""
    if isinstance(value, dict):
        return set().union(*(json_numbers(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(json_numbers(v) for v in value)) if value else set()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return set()
    return {f"{value:.2f}", f"{value:.3f}", f"{value:.0f}"}


NUM = r"(\d+(?:\.\d+)?)"  # a number, without the full stop that may end its sentence


def test_abstract_numbers_are_metrics_json(report: dict[str, Any]):
    abstract = section_text(report["md"], "Abstract 摘要")
    assert 100 <= len(abstract.split()) <= 150, len(abstract.split())
    m = report["metrics"][0]
    seed003 = report["analysis"]["models"][0]["seed003_protocol"]
    found = re.search(r"split \((\d+) images, (\d+) captions\)", abstract)
    assert found and found.groups() == (str(m["n_images"]), str(m["n_texts"]))
    for d, name in (("t2i", "Text→image"), ("i2t", "image→text")):
        found = re.search(
            name + rf" retrieval reaches R@1 {NUM} %, R@5 {NUM} % and R@10 {NUM} % "
            r"\(median rank (\d+)\)",
            abstract,
        )
        assert found, name
        expected = [f"{m[d][k]:.2f}" for k in ("R@1", "R@5", "R@10")] + [f"{m[d]['MedR']:.0f}"]
        assert list(found.groups()) == expected
    found = re.search(
        rf"R@20 is {NUM} % \(text→image\) and {NUM} % \(image→text\), with mean ranks "
        rf"{NUM} and {NUM}",
        abstract,
    )
    assert found
    assert list(found.groups()) == [
        f"{seed003['t2i']['R@20']:.2f}",
        f"{seed003['i2t']['R@20']:.2f}",
        f"{m['t2i']['MeanR']:.2f}",  # mean rank: metrics.json's own MeanR
        f"{m['i2t']['MeanR']:.2f}",
    ]
    # and no other number is typed: each decimal is a value of metrics.json or analysis.json
    known = json_numbers(report["metrics"]) | json_numbers(report["analysis"])
    for number in re.findall(r"\d+\.\d+", abstract):
        assert number in known, number


def test_seed003_table_is_the_eval_ranks(report: dict[str, Any]):
    """R@1 and R@5 are metrics.json's, the mean rank its MeanR; the table prints them."""
    for m, a in zip(report["metrics"], report["analysis"]["models"], strict=True):
        s3 = a["seed003_protocol"]
        for d in ("t2i", "i2t"):
            assert s3[d]["R@1"] == m[d]["R@1"] and s3[d]["R@5"] == m[d]["R@5"]
            assert s3[d]["MeanR"] == pytest.approx(m[d]["MeanR"])
            assert m[d]["R@5"] <= s3[d]["R@20"] <= 100
        table = section_text(report["md"], "Seed 003's protocol 种子 003 评测协议")
        cells = [f"{s3[d][k]:.2f}" for d in ("t2i", "i2t") for k in ("R@1", "R@5", "R@20", "MeanR")]
        assert f"| {a['label']} | " + " | ".join(cells) + " |" in table


def test_seed003_protocol_on_a_hand_made_similarity_matrix():
    """25 one-hot images, so each caption's row of the text matrix IS its similarity row."""
    n = 25
    images = np.eye(n, dtype=np.float32)
    texts = np.eye(n, dtype=np.float32)  # caption c describes image c and scores it 1.0
    texts[0] = 0.0
    texts[0, 0], texts[0, 3:23] = 0.5, 0.9  # 20 images above its own: rank 21
    texts[1] = 0.0
    texts[1, 1], texts[1, 3:13] = 0.5, 0.9  # 10 above: rank 11
    texts[2, 1] = 0.7  # caption 2 also scores image 1, above caption 1: image 1's rank is 2
    t2i, i2t = retrieval_ranks(images, texts, np.arange(n))
    assert t2i[:3].tolist() == [21, 11, 1] and i2t[:3].tolist() == [1, 2, 1]
    got = an.seed003_protocol(t2i, i2t)
    assert got["t2i"] == pytest.approx({"R@1": 92.0, "R@5": 92.0, "R@20": 96.0, "MeanR": 2.2})
    assert got["i2t"] == pytest.approx({"R@1": 96.0, "R@5": 100.0, "R@20": 100.0, "MeanR": 1.04})


def test_discussion_points_carry_numbers(built: dict[str, Any]):
    discussion = section_text(built["md"], "Discussion 讨论")
    points = [ln for ln in discussion.splitlines() if ln.startswith("- ")]
    assert len(points) >= 6
    assert all(re.search(r"\d", p) for p in points), points


def test_run_time_is_measured(built: dict[str, Any]):
    stages = built["analysis"]["models"][0]["stage_seconds"]
    assert set(stages) >= {"embed + eval", "prompt study", "top-K grids"}
    assert all(v >= 0 for v in stages.values())
    assert built["analysis"]["seconds"] >= sum(stages.values()) - 0.5


# ----------------------------------------------------------------------------- HTML


def test_html_is_self_contained(built: dict[str, Any]):
    html: str = built["html"]
    srcs = re.findall(r'<img src="([^"]+)"', html)
    pngs = list((built["out"] / "figures").glob("*.png"))
    assert len(srcs) == len(pngs)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "<table>" in html and "<h2>Metrics 指标</h2>" in html


def test_html_shows_its_figures_in_chromium(built: dict[str, Any], tmp_path: Path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (Debian package `chromium`); HTML not rendered")
    sync_api = pytest.importorskip("playwright.sync_api")
    shot = tmp_path / "report.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((built["out"] / "report.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=True)
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert len(widths) >= 10 and all(w > 0 for w in widths), widths


def test_a_model_with_the_hubness_correction_is_analysed_as_it_searches(
    dataset_root: Path, tmp_path: Path
):
    """A model whose search adds hubness offsets and mirrors image queries: every analysis
    ranks as eval (and a collection) does, so the whole-split gallery point and the prompt
    study's raw captions are the eval's numbers, and each top-K example's order agrees with
    its stated rank."""
    import numpy as np
    import torch

    from crossmodal.models.base import l2_normalize
    from crossmodal.models.hubness import HubnessCorrection

    torch.manual_seed(0)  # the same tiny model whichever tests ran before
    model = DualEncoder(TINY)
    rng = np.random.default_rng(0)
    banks = [l2_normalize(rng.standard_normal((12, model.dim)).astype(np.float32)) for _ in "ab"]
    # a weight far above the shipped 0.6 so the offsets reorder this tiny gallery
    model.hubness = HubnessCorrection(banks[0], banks[1], k=2, weight=3.0)
    model.config["query_image_flip"] = True
    saved = model.save(tmp_path / "hub")
    out, cache = tmp_path / "out", tmp_path / "cache"
    rep = invoke(
        "report", "--model", str(saved), *data_args(dataset_root), "--out", str(out),
        *FAST, "--examples", "4", "--no-photos", "-q", "--cache-dir", str(cache),
    )  # fmt: skip
    assert rep.exit_code == 0, rep.output
    ev = json.loads((out / "metrics.json").read_text())[0]
    assert ev["t2i"] != ev["raw_similarities"]["t2i"]  # the correction changes this gallery
    a = json.loads((out / "analysis.json").read_text())["models"][0]
    for d in ("t2i", "i2t"):
        for k in (1, 5, 10):
            assert a["gallery_size"][f"{d}_mean"][f"R@{k}"][-1] == ev[d][f"R@{k}"]
    assert a["prompt_study"]["raw caption"]["R@1"] == ev["t2i"]["R@1"]
    examples = a["examples"]
    assert examples["t2i_hits"]
    for row in examples["t2i_hits"] + examples["t2i_misses"]:
        images = [h["image"] for h in row["hits"]]
        scores = [h["score"] for h in row["hits"]]
        assert scores == sorted(scores, reverse=True)
        rank = row["true_rank"]
        assert (images.index(row["true_image"]) + 1 if row["true_image"] in images else 99) == (
            rank if rank <= len(images) else 99
        )
    for row in examples["i2t_hits"]:
        assert row["true_rank"] == 1 and row["hits"][0]["true"]
    for row in examples["i2t_misses"]:  # ranked past 10: none of the top 3 is true
        assert row["true_rank"] > 10 and not any(h["true"] for h in row["hits"])


# ----------------------------------------------------------------------------- second run


def test_second_report_with_photos_and_two_models(
    built: dict[str, Any], tiny_model: Path, dataset_root: Path, tmp_path: Path
):
    """Same cache: nothing is embedded again; two models give side-by-side tables."""
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    out = tmp_path / "two"
    result = invoke(
        "report", "--model", str(tiny_model), "--model", str(other), *data_args(dataset_root),
        "--out", str(out), *FAST, "-q", "--cache-dir", str(built["cache"]),
        "--prompt-captions", "6",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["models"][0]["prompt_study_captions"] == 6
    assert built["analysis"]["models"][0]["prompt_study_captions"] == 16  # all, by default
    assert [m["model"] for m in metrics] == [str(tiny_model), str(other)]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| tiny R@1 | tiny R@5 |" in md and "| other R@1 |" in md
    assert (out / "figures" / "tsne-other.png").is_file()
    assert analysis["photos_in_figures"] is True
    assert "do not commit or share this folder" in md


# ----------------------------------------------------------------------------- bad input


def one_error_line(result: Any, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_unknown_model(dataset_root: Path, tmp_path: Path):
    result = invoke(
        "report", "--model", "no-such-model", *data_args(dataset_root),
        "--out", str(tmp_path / "o"), *FAST, "-q",
    )  # fmt: skip
    one_error_line(result, "unknown model 'no-such-model'")


def test_gallery_larger_than_the_split(dataset_root: Path, tmp_path: Path, tiny_model: Path):
    result = invoke(
        "report", "--model", str(tiny_model), *data_args(dataset_root),
        "--out", str(tmp_path / "o"), "--gallery-sizes", "4,100", "-q",
    )  # fmt: skip
    one_error_line(result, "has 8 images, fewer than the gallery size 100")


def test_default_gallery_sizes_on_a_tiny_split(
    dataset_root: Path, tmp_path: Path, tiny_model: Path
):
    result = invoke(
        "report", "--model", str(tiny_model), *data_args(dataset_root),
        "--out", str(tmp_path / "o"), "-q",
    )  # fmt: skip
    one_error_line(result, "choose --gallery-sizes up to 8")


def test_unwritable_output_folder(dataset_root: Path, tmp_path: Path, tiny_model: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke(
        "report", "--model", str(tiny_model), *data_args(dataset_root),
        "--out", str(blocker / "report"), *FAST, "-q",
    )  # fmt: skip
    one_error_line(result, "cannot write the report to")


def test_bad_gallery_sizes_text(dataset_root: Path, tmp_path: Path):
    result = invoke(
        "report", *data_args(dataset_root), "--out", str(tmp_path / "o"),
        "--gallery-sizes", "10,lots",
    )  # fmt: skip
    one_error_line(result, "--gallery-sizes takes comma-separated numbers")
