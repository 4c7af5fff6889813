"""FlatIPStore: the exact FAISS store behind the VectorStore interface."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from crossmodal.errors import CollectionError
from crossmodal.index import FlatIPStore, VectorStore
from crossmodal.index.store import SEQUENTIAL_QUERIES


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_few_queries_loop_and_batches_use_blas(monkeypatch: pytest.MonkeyPatch):
    """FAISS chooses its path by a global threshold on the index size: the store sets it per
    call (one query: the SIMD loop, 3x faster than BLAS at 100k; a batch: one BLAS product),
    and both paths give the same neighbours."""
    vecs = unit(3000, 32, seed=1)
    store = FlatIPStore(32)
    store.add(np.arange(3000), vecs)
    seen: list[int] = []
    search = store.index.search

    def spy(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        seen.append(faiss.cvar.distance_compute_blas_threshold)
        return search(q, k)

    monkeypatch.setattr(store.index, "search", spy)
    queries = unit(SEQUENTIAL_QUERIES, 32, seed=2)
    one = [store.search(q[None], 5) for q in queries]
    batch_scores, batch_ids = store.search(queries, 5)
    assert seen[0] > 3000 and seen[-1] < 1  # loop for one query, BLAS for the batch
    for (scores, ids), row_scores, row_ids in zip(one, batch_scores, batch_ids, strict=True):
        assert (ids[0] == row_ids).all()
        np.testing.assert_allclose(scores[0], row_scores, atol=1e-5)


def test_add_search_remove_exact():
    vecs = unit(50, 8)
    ids = np.arange(100, 150)
    store: VectorStore = FlatIPStore(8)
    store.add(ids, vecs)
    assert len(store) == 50
    scores, found = store.search(vecs[:3], k=5)
    assert scores.shape == found.shape == (3, 5)
    assert list(found[:, 0]) == [100, 101, 102]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    expected = np.argsort(-(vecs @ vecs[7]))[:5] + 100
    assert list(store.search(vecs[7], 5)[1][0]) == list(expected)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert store.remove([100, 101, 999]) == 2
    assert len(store) == 48
    assert 100 not in store.search(vecs[0], 48)[1][0]


def test_k_larger_than_store_and_empty_store():
    store = FlatIPStore(4)
    scores, ids = store.search(unit(2, 4), 10)
    assert scores.shape == ids.shape == (2, 0)
    store.add([1, 2], unit(2, 4))
    assert store.search(unit(1, 4), 10)[1].shape == (1, 2)


def test_dimension_checked():
    store = FlatIPStore(4)
    with pytest.raises(ValueError):
        store.add([1], unit(1, 5))
    with pytest.raises(ValueError):
        store.add([1, 2], unit(1, 4))


def test_save_load_round_trip(tmp_path: Path):
    store = FlatIPStore(8)
    store.add(np.arange(20), unit(20, 8))
    store.save(tmp_path / "x.faiss")
    back = FlatIPStore.load(tmp_path / "x.faiss")
    assert len(back) == 20 and back.dim == 8
    assert sorted(back.ids()) == list(range(20))
    q = unit(3, 8, seed=1)
    np.testing.assert_array_equal(store.search(q, 5)[1], back.search(q, 5)[1])
    assert [p.name for p in tmp_path.iterdir()] == ["x.faiss"]  # no temporary left behind


def test_damaged_file_is_a_collection_error(tmp_path: Path):
    (tmp_path / "bad.faiss").write_bytes(b"not an index")
    with pytest.raises(CollectionError):
        FlatIPStore.load(tmp_path / "bad.faiss")


def test_fp16_store_scans_everything_with_near_exact_scores(tmp_path: Path):
    vecs = unit(500, 32, seed=3)
    exact, half = FlatIPStore(32), FlatIPStore.of_kind("flat-fp16", 32)
    for store in (exact, half):
        store.add(np.arange(500), vecs)
    assert (exact.kind, half.kind) == ("flat", "flat-fp16")
    q = unit(5, 32, seed=4)
    s1, i1 = exact.search(q, 10)
    s2, i2 = half.search(q, 10)
    np.testing.assert_allclose(s1, s2, atol=2e-3)
    assert (i1[:, 0] == i2[:, 0]).all()
    assert half.remove([int(i2[0, 0])]) == 1 and len(half) == 499
    half.save(tmp_path / "h.faiss")
    assert FlatIPStore.load(tmp_path / "h.faiss").kind == "flat-fp16"
    with pytest.raises(CollectionError):
        FlatIPStore.of_kind("hnsw", 32)


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _whole_scan(store: FlatIPStore, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by numpy over every row: the reference the store must agree with."""
    inner = faiss.downcast_index(store.index.index)
    rows = faiss.rev_swig_ptr(inner.get_xb(), len(store) * store.dim).reshape(-1, store.dim)
    ids = faiss.vector_to_array(store.index.id_map)
    scores = rows.astype(np.float64) @ query.astype(np.float64)
    best = np.argsort(-scores, kind="stable")[:k]
    return scores[best], ids[best]


@pytest.mark.parametrize("k", [1, 10, 70])
def test_two_stage_search_of_single_queries_is_exact(monkeypatch: pytest.MonkeyPatch, k: int):
    import crossmodal.index.store as store_module

    monkeypatch.setattr(store_module, "TWO_STAGE_ROWS", 10)
    monkeypatch.setattr(store_module, "_CORES", 2)
    rng = np.random.default_rng(3)
    store = FlatIPStore(24)
    ids = rng.permutation(10_000)[:160]
    store.add(ids[:101], _unit_rows(rng, 101, 24))
    queries = _unit_rows(rng, 4, 24)
    for step in ("fresh", "after remove", "after add", "after both"):
        if step == "after remove":
            store.remove(ids[:7])  # positions no longer follow the ids' insertion
        elif step == "after add":
            store.add(ids[101:140], _unit_rows(rng, 39, 24))
        elif step == "after both":
            store.remove(ids[[10, 60, 120, 139]])
            store.add(ids[140:], _unit_rows(rng, 20, 24))
        for query in queries:
            scores, found = store.search(query[None], k)
            want_scores, want_ids = _whole_scan(store, query, k)
            np.testing.assert_array_equal(found[0], want_ids, err_msg=step)
            np.testing.assert_allclose(scores[0], want_scores, atol=1e-5, err_msg=step)
    assert store._shadow is not None
    assert sum(h.ntotal for h in store._shadow) == len(store) == 149


def test_two_stage_search_stays_exact_among_near_ties(monkeypatch: pytest.MonkeyPatch):
    """Rows closer together than float16 can tell: the candidate list must grow until the
    exact scores decide, and the answer is still the full scan's."""
    import crossmodal.index.store as store_module

    monkeypatch.setattr(store_module, "TWO_STAGE_ROWS", 10)
    monkeypatch.setattr(store_module, "_CORES", 2)
    rng = np.random.default_rng(5)
    base = _unit_rows(rng, 1, 32)[0]
    rows = base + 2e-3 * rng.standard_normal((300, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    store = FlatIPStore(32)
    store.add(np.arange(300), rows)
    calls: list[int] = []
    real = store_module._scan_half
    monkeypatch.setattr(store_module, "_scan_half", lambda *a: calls.append(a[2]) or real(*a))
    scores, found = store.search(base[None], 5)
    want_scores, want_ids = _whole_scan(store, base, 5)
    np.testing.assert_array_equal(found[0], want_ids)
    np.testing.assert_allclose(scores[0], want_scores, atol=1e-6)
    assert max(calls) > 5 + 32  # it had to look further than the first candidates


def test_two_stage_search_from_many_threads_at_once(monkeypatch: pytest.MonkeyPatch):
    from concurrent.futures import ThreadPoolExecutor

    import crossmodal.index.store as store_module

    monkeypatch.setattr(store_module, "TWO_STAGE_ROWS", 10)
    monkeypatch.setattr(store_module, "_CORES", 2)
    rng = np.random.default_rng(9)
    store = FlatIPStore(16)
    store.add(np.arange(500), _unit_rows(rng, 500, 16))
    queries = _unit_rows(rng, 32, 16)
    with ThreadPoolExecutor(8) as pool:  # the float16 copy is built once, under a lock
        results = list(pool.map(lambda q: store.search(q[None], 5)[1][0], queries))
    for query, found in zip(queries, results, strict=True):
        np.testing.assert_array_equal(found, _whole_scan(store, query, 5)[1])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("direct", [4096, 0])
def test_search_subset_is_the_exact_top_k_of_the_allowed_rows(
    monkeypatch: pytest.MonkeyPatch, precision: str, direct: int
):
    """Both paths (rows gathered and scored; an IDSelectorBatch over the index) give the
    exact top k among the allowed ids, and never more than there are."""
    import crossmodal.index.store as store_mod

    monkeypatch.setattr(store_mod, "DIRECT_ROWS", direct)
    vecs, queries = unit(3000, 24, 1), unit(5, 24, 2)
    ids = np.arange(3000) * 2 + 11
    store = FlatIPStore(24, precision=precision)
    store.add(ids, vecs)
    allowed = ids[np.random.default_rng(3).random(3000) < 0.2]
    for q in (queries[:1], queries):  # one query (the loop) and a batch (BLAS)
        scores, found = store.search_subset(q, 10, allowed)
        keep = np.isin(ids, allowed)
        exact = q @ vecs[keep].T
        order = np.argsort(-exact, axis=1)[:, :10]
        np.testing.assert_array_equal(found, ids[keep][order])
        np.testing.assert_allclose(scores, np.take_along_axis(exact, order, 1), atol=2e-3)
    few = store.search_subset(queries, 10, allowed[:3])
    assert few[1].shape == (5, 3) and set(few[1][0]) == set(allowed[:3])


def test_the_generic_subset_search_of_the_interface():
    """The fallback of `VectorStore.search_subset` (asking for more until enough pass)."""
    vecs, queries = unit(500, 16, 4), unit(3, 16, 5)
    store = FlatIPStore(16)
    store.add(np.arange(500), vecs)
    allowed = np.arange(0, 500, 7)
    _, found = VectorStore.search_subset(store, queries, 5, allowed)
    exact = queries @ vecs[allowed].T
    np.testing.assert_array_equal(found, allowed[np.argsort(-exact, axis=1)[:, :5]])
