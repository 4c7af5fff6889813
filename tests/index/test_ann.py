"""Approximate stores (HNSW, OPQ + IVF-PQ): recall against exact, tombstones, rebuilds, files,
`--store auto`, and a rebuild killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import crossmodal.index.ann as ann
from crossmodal import Collection
from crossmodal.cli import app
from crossmodal.errors import CollectionError
from crossmodal.index.ann import (
    ApproximateStore,
    choose_kind,
    exact_top_k,
    load_any_store,
    new_store,
    parse_memory,
    recall_at,
    with_combinations,
)
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir

DIM = 32
#: the least recall@10 against an exact scan each store must reach on the synthetic set
THRESHOLDS = {"flat": 1.0, "flat-fp16": 0.99, "hnsw": 0.95, "hnsw-fp16": 0.95, "ivfpq": 0.9}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(autouse=True)
def _quick_opq(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPQ's full training takes ~20 s of k-means on two busy cores; two rounds are enough to
    test the mechanics (the benchmark measures the shipped settings)."""
    monkeypatch.setattr(ann, "OPQ_ITERATIONS", 2)
    monkeypatch.setattr(ann, "OPQ_FIRST_PQ_ITERATIONS", 4)


def clustered(n: int, seed: int, centres: int = 64) -> np.ndarray:
    """Unit vectors around random centres: neighbourhoods like real embeddings have (uniform
    noise on the sphere has none, and no index can do better than a scan on it)."""
    rng = np.random.default_rng(seed)
    middle = np.random.default_rng(99).standard_normal((centres, DIM)).astype(np.float32)
    x = middle[rng.integers(0, centres, n)] + 0.7 * rng.standard_normal((n, DIM))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(20k rows, 100 queries not among them, exact top-10 positions)."""
    rows, queries = clustered(20_000, 1), clustered(100, 2)
    return rows, queries, exact_top_k(rows, queries, 10)[1]


def build(kind: str, rows: np.ndarray, ids: np.ndarray) -> ann.VectorStore:
    store = new_store(kind, rows.shape[1], pq_bytes=8)
    if isinstance(store, ApproximateStore):
        store.build(ids, rows)
    else:
        store.add(ids, rows)
    return store


@pytest.mark.parametrize("kind", list(THRESHOLDS))
def test_every_store_finds_the_exact_top_10(kind: str, synthetic, tmp_path: Path):
    rows, queries, truth = synthetic
    ids = np.arange(len(rows)) * 3 + 7  # catalogue ids are not positions
    store = build(kind, rows, ids)
    assert len(store) == len(rows) and store.kind == kind
    scores, found = store.search(queries, 10)
    assert recall_at(found, ids[truth], 10) >= THRESHOLDS[kind]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # the scores are inner products with the rows found (re-ranked exactly for ivfpq)
    by_id = dict(zip(ids.tolist(), range(len(ids)), strict=True))
    exact = np.einsum("qd,qkd->qk", queries, rows[np.vectorize(by_id.get)(found)])
    np.testing.assert_allclose(scores, exact, atol=2e-3)
    if isinstance(store, ApproximateStore):
        assert store.info.recall_at_10 is not None and store.info.recall_at_10 >= 0.9
        file = tmp_path / "s.ann"
        store.save(file)
        back = load_any_store(file)
        assert back.kind == kind and len(back) == len(store)
        np.testing.assert_array_equal(back.search(queries, 10)[1], found)
        assert [p.name for p in tmp_path.iterdir()] == ["s.ann"]


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_tombstones_hide_removed_rows_and_rebuild_drops_them(kind: str, synthetic):
    rows, queries, _ = synthetic
    rows = rows[:12_000]
    ids = np.arange(len(rows))
    store = build(kind, rows, ids)
    assert isinstance(store, ApproximateStore)
    gone = ids[ids % 4 == 0]
    assert store.remove(np.concatenate([gone, [10**9]])) == len(gone)
    assert store.remove(gone[:5]) == 0  # already removed
    assert len(store) == len(rows) - len(gone) and store.tombstones == len(gone)
    assert store.needs_rebuild  # a quarter of the rows are tombstones
    found = store.search(queries, 10)[1]
    assert not np.isin(found, gone).any()
    kept = ids % 4 != 0
    truth = ids[kept][exact_top_k(rows[kept], queries, 10)[1]]
    assert recall_at(found, truth, 10) >= THRESHOLDS[kind] - 0.05
    # added rows (new ids) are searchable at once
    store.add([10**6], queries[:1])
    assert store.search(queries[:1], 1)[1][0, 0] == 10**6
    rebuilt = build(kind, rows[kept], ids[kept])
    assert isinstance(rebuilt, ApproximateStore) and rebuilt.tombstones == 0
    assert sorted(rebuilt.ids()) == sorted(ids[kept])


def test_ivfpq_below_training_size_scans_exactly_then_asks_for_a_rebuild(synthetic):
    rows, queries, _ = synthetic
    store = ApproximateStore(DIM, "ivfpq", pq_bytes=8)
    store.add(np.arange(500), rows[:500])  # too few rows to train: no FAISS index yet
    assert store.index is None and not store.needs_rebuild
    truth = exact_top_k(rows[:500], queries, 10)[1]
    assert recall_at(store.search(queries, 10)[1], truth, 10) >= 0.99  # float16 scores
    store.add(np.arange(500, ann.MIN_TRAIN), rows[500 : ann.MIN_TRAIN])
    assert store.needs_rebuild


def test_choose_kind_by_size_and_memory():
    assert choose_kind(1_000, 528) == "flat"
    big = choose_kind(5_000_000, 528)
    assert big in ("hnsw", "hnsw-fp16", "ivfpq")
    # a budget too small for the graph: IVF-PQ, 64 bytes a row
    assert choose_kind(5_000_000, 528, max_memory=parse_memory("1G")) == "ivfpq"
    assert choose_kind(1_000, 528, max_memory=parse_memory("2M")) == "flat-fp16"
    assert parse_memory("1.5G") == int(1.5 * 2**30) and parse_memory("512MB") == 512 * 2**20
    with pytest.raises(CollectionError, match="4G"):
        parse_memory("lots")


# ---- in a collection ----------------------------------------------------------------------
def _fake_rows(col: Collection, n: int, seed: int) -> None:
    """n catalogue rows with clustered vectors (embedding 20k photos would take minutes)."""
    root = col.catalog.add_root(str(col.path / "virtual"))
    vectors = clustered(n, seed)
    with col.catalog.transaction():
        for i, vec in enumerate(vectors):
            col.catalog.insert_image(root, f"v{seed}/{i}.jpg", f"h{seed}-{i}", 1, 1, 8, 8, vec)
        col.catalog.bump_generation("images")


def _agree(col: Collection) -> None:
    """The store holds exactly the catalogue's rows, once each."""
    store = col._store("images")
    catalogue = [r[0] for r in col.catalog._con.execute("SELECT id FROM images")]
    ids = store.ids() if hasattr(store, "ids") else None
    assert ids is not None and len(ids) == len(set(ids.tolist())) == len(catalogue)
    assert set(ids.tolist()) == set(catalogue)


def test_collection_add_remove_optimize_keep_catalogue_and_index_in_agreement(tmp_path: Path):
    photos = tmp_path / "photos"
    files = make_photos(photos, 6)
    col = Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True, store="hnsw")
    col.index(photos, show_progress=False)
    _fake_rows(col, 3000, seed=5)
    assert col._store("images").kind == "hnsw" and len(col) == 3006
    _agree(col)
    hit = col.search(image=files[1], k=1)[0]
    assert hit.path == str(files[1])
    assert col.remove([files[1]]) == 1  # a tombstone in the graph
    assert all(h.path != str(files[1]) for h in col.search(image=files[1], k=20))
    _agree(col)
    files[1].unlink()
    make_photos(tmp_path / "more", 2)
    col.index(tmp_path / "more", show_progress=False)  # added incrementally
    _agree(col)
    infos = col.optimize(show_progress=False)
    assert infos["images"]["kind"] == "hnsw" and infos["images"]["tombstones"] == 0
    assert infos["images"]["recall_at_10"] >= 0.9 and infos["images"]["rows"] == 3007
    col.close()
    again = Collection.open(tmp_path / "col")  # loads the rebuilt file
    _agree(again)
    stats = again.stats()["stores"]["images"]
    assert stats["kind"] == "hnsw" and stats["memory_bytes"] > 3007 * 4 * DIM
    assert again.search(image=files[2], k=1)[0].path == str(files[2])
    again.close()


def test_cli_store_option_optimize_and_stats(tmp_path: Path):
    runner = CliRunner()
    photos = tmp_path / "photos"
    make_photos(photos, 4)
    col = str(tmp_path / "col")
    model = str(tiny_model_dir(0))
    args = ["index", str(photos), "--collection", col, "--model", model, "-q"]
    result = runner.invoke(app, [*args, "--store", "ivfpq", "--max-index-memory", "2G"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["index", "--optimize", "--collection", col, "-q"])
    assert result.exit_code == 0, result.output
    assert "images index: ivfpq, 4 rows" in result.stdout
    result = runner.invoke(app, ["stats", "--collection", col])
    assert "store: ivfpq" in result.stdout and "images index: ivfpq" in result.stdout
    bad = runner.invoke(app, [*args, "--collection", str(tmp_path / "c2"), "--store", "annoy"])
    assert bad.exit_code == 2 and "unknown store 'annoy'" in bad.output
    bad = runner.invoke(app, ["index", "--collection", col])
    assert bad.exit_code == 2 and "--optimize" in bad.output


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.timeout(180)
def test_kill_minus_nine_during_rebuild_loses_nothing(tmp_path: Path):
    photos = tmp_path / "photos"
    make_photos(photos, 3)
    col_dir = tmp_path / "col"
    col = Collection.open(col_dir, model=str(tiny_model_dir(0)), create=True, store="hnsw")
    col.index(photos, show_progress=False)
    _fake_rows(col, 12_000, seed=7)
    col.optimize(show_progress=False)  # a saved index: what a killed rebuild must not spoil
    before = sorted(col._store("images").ids().tolist())
    col.close()
    script = (
        "import sys; from crossmodal import Collection; "
        "print('started', flush=True); Collection.open(sys.argv[1]).optimize(False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    for delay in (1.0, 2.5):  # model load, then the graph build (~3 s on two busy cores)
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(col_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    assert kills >= 1, "every rebuild finished before it could be killed"
    again = Collection.open(col_dir)
    _agree(again)
    assert sorted(again._store("images").ids().tolist()) == before
    assert again.search(image=make_photos(tmp_path / "q", 1)[0], k=3)
    again.optimize(show_progress=False)  # the next writer clears what the kills left
    assert not list(col_dir.glob("*.tmp"))
    _agree(again)
    again.close()


def test_hubness_correction_and_query_arithmetic_on_an_approximate_store(synthetic):
    """Rows carry their hubness offset as one more coordinate and a cross-modal query a 1
    there: the graph searches those widened vectors like any others. A combined query is one
    vector, so arithmetic needs nothing of the store."""
    from crossmodal.models.hubness import HubnessCorrection, query_columns

    rows, queries, _ = synthetic
    rows = rows[:8000]
    bank = clustered(500, 3)
    correction = HubnessCorrection(text_bank=bank, image_bank=bank, k=10, weight=0.6)
    wide = correction.augment(rows, "images")
    store = new_store("hnsw", wide.shape[1])
    assert isinstance(store, ApproximateStore)
    # tuned as a collection tunes its image index: on captions and sums of two, widened
    tune = with_combinations(clustered(200, 4), np.random.default_rng(0))
    store.build(np.arange(len(rows)), wide, query_columns(tune, cross_modal=True))
    combined = queries[:50] + queries[50:] - 0.3 * queries[::-1][:50]  # "a" + "b" - "c"
    combined /= np.linalg.norm(combined, axis=1, keepdims=True)
    for q, least in ((queries, 0.95), (combined, 0.9)):
        asked = query_columns(q, cross_modal=True)
        truth = exact_top_k(wide, asked, 10)[1]
        found = store.search(asked, 10)[1]
        assert recall_at(found, truth, 10) >= least
        plain = exact_top_k(rows, q, 10)[1]
        assert recall_at(truth, plain, 10) < 0.95  # the correction changes what is found


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-fp16", "ivfpq"])
def test_filtered_search_returns_only_allowed_rows_and_their_top_10(kind: str, synthetic):
    """A filter's rows: scored exactly when few (1 %), searched through a selector with a
    widened effort otherwise; recall against the exact top 10 of the allowed rows."""
    rows, queries, _ = synthetic
    rows = rows[:12_000]
    ids = np.arange(len(rows)) * 3 + 7
    store = build(kind, rows, ids)
    assert isinstance(store, ApproximateStore)
    store.remove(ids[::50])  # tombstones are never returned either
    rng = np.random.default_rng(5)
    for share in (0.5, 0.1, 0.01):
        allowed = np.sort(rng.choice(ids, int(share * len(ids)), replace=False))
        alive = allowed[~np.isin(allowed, ids[::50])]
        scores, found = store.search_subset(queries, 10, allowed)
        assert found.shape == (len(queries), 10) and np.isin(found, alive).all()
        assert np.all(np.diff(scores, axis=1) <= 1e-6)
        keep = np.isin(ids, alive)
        truth = ids[keep][exact_top_k(rows[keep], queries, 10)[1]]
        assert recall_at(found, truth, 10) >= THRESHOLDS[kind] - 0.05, share
        if share == 0.01:  # the direct path: exact (from float16 rows for ivfpq)
            assert recall_at(found, truth, 10) >= 0.99
    empty = store.search_subset(queries, 10, np.array([10**9]))
    assert empty[1].shape == (len(queries), 0)
