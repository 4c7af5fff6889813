"""Hubness correction: the offsets, saving with a model, search in a collection, eval, fitting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Collection
from crossmodal.data import load_dataset
from crossmodal.errors import ConfigError, ModelNotAvailable
from crossmodal.eval.evaluate import EmbeddedSplit, evaluate
from crossmodal.eval.metrics import retrieval_ranks
from crossmodal.models import load_model
from crossmodal.models.base import l2_normalize
from crossmodal.models.dual import DualEncoder
from crossmodal.models.hubness import BANK_FILE, HubnessCorrection, query_columns, stored_dim
from crossmodal.train.hubness import fit_hubness, select_hubness
from tests.index.helpers import make_photos, tiny_model_dir
from tests.train.test_heads import write_colour_dataset

RNG = np.random.default_rng(0)


def unit(n: int, dim: int) -> np.ndarray:
    return l2_normalize(RNG.standard_normal((n, dim)).astype(np.float32))


def brute_offsets(rows: np.ndarray, bank: np.ndarray, k: int, weight: float) -> np.ndarray:
    sims = rows @ bank.T
    return np.array([-weight * np.sort(s)[::-1][:k].mean() for s in sims], np.float32)


def test_offsets_are_minus_weight_times_mean_of_k_nearest_bank_queries():
    text_bank, image_bank = unit(40, 8), unit(30, 8)
    hub = HubnessCorrection(text_bank, image_bank, k=5, weight=0.6)
    images, texts = unit(7, 8), unit(9, 8)
    np.testing.assert_allclose(
        hub.offsets(images, "images"), brute_offsets(images, text_bank, 5, 0.6), atol=1e-6
    )
    np.testing.assert_allclose(
        hub.offsets(texts, "texts"), brute_offsets(texts, image_bank, 5, 0.6), atol=1e-6
    )
    rows = hub.augment(images, "images")
    assert rows.shape == (7, 16)  # vector, offset, zeros to a multiple of 16
    np.testing.assert_array_equal(rows[:, :8], images)
    np.testing.assert_array_equal(rows[:, 8], hub.offsets(images, "images"))
    assert not rows[:, 9:].any()
    with pytest.raises(ValueError, match="k=31"):
        HubnessCorrection(text_bank, image_bank, k=31, weight=0.5)


def test_a_crowded_item_loses_to_a_lonely_one_only_across_modalities():
    """Two gallery images equally close to the query: the one near many training captions
    (a hub) drops below the other for a text query."""
    dim = 4
    hub_image, lonely_image = np.eye(dim, dtype=np.float32)[:2]
    text_bank = l2_normalize(np.tile(hub_image, (10, 1)) + 0.01 * unit(10, dim))
    hub = HubnessCorrection(text_bank, unit(10, dim), k=3, weight=0.5)
    query = l2_normalize((hub_image + lonely_image)[None])[0]
    scores = np.stack([hub_image, lonely_image]) @ query
    assert scores[0] == pytest.approx(scores[1])
    rows = hub.augment(np.stack([hub_image, lonely_image]), "images")
    corrected = rows @ query_columns(query[None], cross_modal=True)[0]
    assert corrected[1] > corrected[0]
    unchanged = rows @ query_columns(query[None], cross_modal=False)[0]
    np.testing.assert_allclose(unchanged, scores, atol=1e-6)


@pytest.fixture(scope="module")
def hub_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny gallery model with a correction from random banks (k 3, weight 0.5)."""
    model = DualEncoder.load(tiny_model_dir(0))
    model.hubness = HubnessCorrection(unit(20, model.dim), unit(20, model.dim), k=3, weight=0.5)
    return model.save(tmp_path_factory.mktemp("hub") / "model")


def test_the_correction_is_saved_with_the_model_and_a_missing_bank_is_named(
    hub_model_dir: Path, tmp_path: Path
):
    config = json.loads((hub_model_dir / "config.json").read_text())
    assert config["hubness"] == {"file": BANK_FILE, "k": 3, "weight": 0.5}
    loaded = DualEncoder.load(hub_model_dir)
    assert loaded.hubness is not None and (loaded.hubness.k, loaded.hubness.weight) == (3, 0.5)
    assert loaded.hubness.text_bank.shape == (20, loaded.dim)
    plain = DualEncoder.load(tiny_model_dir(0))
    assert plain.hubness is None and plain.fingerprint == loaded.fingerprint

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("config.json", "model.safetensors"):
        (broken / f).write_bytes((hub_model_dir / f).read_bytes())
    with pytest.raises(ModelNotAvailable, match=f"hubness bank {BANK_FILE} that is missing"):
        DualEncoder.load(broken)


def test_collection_applies_it_to_t2i_and_i2t_only(hub_model_dir: Path, tmp_path: Path):
    model = load_model(str(hub_model_dir))
    assert model.hubness is not None
    make_photos(tmp_path / "photos", 8)
    captions = tmp_path / "captions.tsv"
    captions.write_text(
        "image\tcaption\np000.jpg\ta red card\np001.jpg\ta green card\np002.jpg\tblue\n"
    )
    col = Collection.open(tmp_path / "col", model=model, create=True)
    col.index(tmp_path / "photos", captions=captions, show_progress=False)
    ids = [int(i) for i in col._store("images").ids()]
    images = np.stack([col.catalog.image_vector(i) for i in ids])
    image_offsets = dict(zip(ids, model.hubness.offsets(images, "images"), strict=True))

    query = model.encode_texts(["a red card"])[0]
    # the embedding's ranking (captions as descriptions would lift their photos: index/hybrid)
    t2i = col.search(text="a red card", mode="t2i", k=8, descriptions=False)
    expected = sorted(((float(images[n] @ query + image_offsets[i]), i) for n, i in enumerate(ids)))
    assert [h.id for h in t2i] == [i for _, i in reversed(expected)]
    for hit in t2i:
        n = ids.index(hit.id)
        assert hit.score == pytest.approx(
            float(images[n] @ query + image_offsets[hit.id]), abs=1e-5
        )

    i2i = col.search_by_id(ids[0], mode="i2i", k=7)
    for hit in i2i:
        assert hit.score == pytest.approx(float(images[ids.index(hit.id)] @ images[0]), abs=1e-5)

    text_rows = col.search_by_id(ids[0], mode="i2t", k=3)
    raw = {h.text: h.score for h in col.search(text="a red card", mode="t2t", k=3)}
    assert len(text_rows) == 3 and len(raw) == 3
    texts = model.encode_texts([h.text for h in text_rows])
    offsets = model.hubness.offsets(texts, "texts")
    for hit, vec, off in zip(text_rows, texts, offsets, strict=True):
        assert hit.score == pytest.approx(float(vec @ images[0] + off), abs=1e-4)
    for text, score in raw.items():  # text->text: plain cosine
        assert score == pytest.approx(float(model.encode_texts([text])[0] @ query), abs=1e-4)

    stored = sorted(p.name for p in (tmp_path / "col").glob("images.*.faiss"))
    assert stored and all(f".h{model.hubness.digest}." in name for name in stored)


def test_a_collection_indexed_without_it_is_rebuilt_with_it(hub_model_dir: Path, tmp_path: Path):
    make_photos(tmp_path / "photos", 5)
    plain = load_model(str(tiny_model_dir(0)))
    col = Collection.open(tmp_path / "col", model=plain, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    before = col.search(text="a card", mode="t2i", k=5)
    col.close()
    hub = load_model(str(hub_model_dir))
    again = Collection.open(tmp_path / "col", model=hub)
    after = again.search(text="a card", mode="t2i", k=5)
    assert again._store("images").dim == stored_dim(hub.dim) == 48
    by_id = {h.id: h.score for h in before}
    ids = [h.id for h in after]
    vectors = np.stack([again.catalog.image_vector(i) for i in ids])
    offsets = hub.hubness.offsets(vectors, "images")
    for hit, off in zip(after, offsets, strict=True):
        assert hit.score == pytest.approx(by_id[hit.id] + float(off), abs=1e-5)


def test_retrieval_ranks_with_offsets_match_brute_force():
    images, texts = unit(6, 8), unit(12, 8)
    caption_image = np.repeat(np.arange(6), 2)
    img_off, txt_off = RNG.normal(size=6).astype(np.float32), RNG.normal(size=12).astype(np.float32)
    t2i, i2t = retrieval_ranks(
        images, texts, caption_image, image_offsets=img_off, text_offsets=txt_off
    )
    scores = texts @ images.T + img_off[None]
    for q in range(12):
        assert t2i[q] == 1 + int((scores[q] > scores[q, caption_image[q]]).sum())
    scores = images @ texts.T + txt_off[None]
    for q in range(6):
        best = scores[q, caption_image == q].max()
        assert i2t[q] == 1 + int((scores[q] > best).sum())


def test_selection_on_val_finds_the_setting_that_removes_a_hub():
    """Val captions all lean towards one image (a hub), as do the training captions in the
    bank: the raw scores send many captions to the hub; a correction fixes that."""
    rng = np.random.default_rng(0)

    def unit(n: int, dim: int) -> np.ndarray:
        return l2_normalize(rng.standard_normal((n, dim)).astype(np.float32))

    dim, n = 16, 12
    hub_dir = np.eye(dim, dtype=np.float32)[0]
    images = l2_normalize(unit(n, dim) + 3.0 * hub_dir * (np.arange(n) == 0)[:, None])
    captions = l2_normalize(np.repeat(images, 2, axis=0) + 1.0 * hub_dir + 0.5 * unit(2 * n, dim))
    val = EmbeddedSplit([], [], np.repeat(np.arange(n), 2), images, captions)
    text_bank = l2_normalize(unit(50, dim) + 1.0 * hub_dir)
    rows, (k, weight) = select_hubness(text_bank, unit(50, dim), val, (2, 8), (0.5, 1.0))
    assert len(rows) == 1 + 4 and rows[0]["k"] == 0
    chosen = next(r for r in rows if (r["k"], r["weight"]) == (k, weight))
    assert chosen["mean_recall"] == max(r["mean_recall"] for r in rows)
    assert chosen["t2i"]["R@1"] > rows[0]["t2i"]["R@1"]
    with pytest.raises(ConfigError, match="nothing saved"):  # a bank with no hub in it
        select_hubness(unit(50, dim), unit(50, dim), val, (2,), (50.0,))


def test_fit_selects_on_val_and_eval_reports_what_it_chose(tmp_path: Path):
    root = write_colour_dataset(tmp_path / "data")
    source = tiny_model_dir(0)
    kwargs = dict(
        dataset="captions-json",
        root=root,
        ks=(1, 2, 4),
        weights=(0.25, 0.5, 1.0),
        cache_dir=tmp_path / "cache",
        show_progress=False,
    )
    try:
        summary = fit_hubness(source, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    except ConfigError as exc:  # no setting beat the raw similarities: nothing saved
        assert "nothing saved" in str(exc) and not (tmp_path / "out").exists()
        return
    rows = summary["val"]
    assert (rows[0]["k"], len(rows)) == (0, 1 + 9)
    best = max(rows, key=lambda r: r["mean_recall"])
    assert (summary["k"], summary["weight"]) == (best["k"], best["weight"])
    assert best["mean_recall"] > rows[0]["mean_recall"]
    model = load_model(str(tmp_path / "out"), cache=False)
    result = evaluate(
        model, load_dataset("captions-json", root, split="val"), cache_dir=tmp_path / "cache"
    )
    assert result["t2i"] == best["t2i"] and result["i2t"] == best["i2t"]
    assert result["raw_similarities"]["t2i"] == rows[0]["t2i"]
    with pytest.raises(ConfigError, match="weights > 0"):
        fit_hubness(source, tmp_path / "bad", **{**kwargs, "weights": (0.0,)})  # type: ignore[arg-type]


def test_cli_fits_or_refuses_with_one_line(tmp_path: Path):
    from typer.testing import CliRunner

    from crossmodal.cli import app

    runner = CliRunner()
    missing = runner.invoke(
        app,
        [
            "hubness",
            "--model",
            str(tiny_model_dir(0)),
            "--out",
            str(tmp_path / "o"),
            "--root",
            str(tmp_path / "nowhere"),
            "--quiet",
        ],
    )
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert "nowhere" in missing.output
    not_a_model = runner.invoke(
        app, ["hubness", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]
    )
    assert not_a_model.exit_code == 2 and "holds no model" in not_a_model.output
    assert not (tmp_path / "o").exists()
