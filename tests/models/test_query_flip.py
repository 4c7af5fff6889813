"""Image queries averaged with their mirror image (test-time augmentation of queries only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from crossmodal import Collection
from crossmodal.data import load_dataset
from crossmodal.eval.evaluate import embed_split, evaluate
from crossmodal.eval.metrics import metrics_from_ranks, retrieval_ranks
from crossmodal.models import load_model
from crossmodal.models.base import l2_normalize
from crossmodal.models.dual import DualEncoder
from tests.index.helpers import make_photos, tiny_model_dir
from tests.train.test_heads import write_colour_dataset


@pytest.fixture(scope="module")
def flip_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = DualEncoder.load(tiny_model_dir(0))
    model.config["query_image_flip"] = True
    return model.save(tmp_path_factory.mktemp("flip") / "model")


def test_query_vector_is_the_mean_of_image_and_mirror(flip_model_dir: Path):
    model = load_model(str(flip_model_dir), cache=False)
    plain = load_model(str(tiny_model_dir(0)), cache=False)
    assert model.query_image_flip and not plain.query_image_flip
    assert model.fingerprint != plain.fingerprint  # query vectors differ
    photo = Image.effect_mandelbrot((64, 48), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    pair = model.encode_images([photo, ImageOps.mirror(photo)])
    np.testing.assert_allclose(
        model.encode_query_images([photo])[0], l2_normalize(pair.sum(0)[None])[0], atol=1e-6
    )
    np.testing.assert_allclose(plain.encode_query_images([photo]), plain.encode_images([photo]))


def test_collection_uses_it_for_image_queries_only(flip_model_dir: Path, tmp_path: Path):
    model = load_model(str(flip_model_dir), cache=False)
    files = make_photos(tmp_path / "photos", 5)
    col = Collection.open(tmp_path / "col", model=model, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    hits = col.search(image=files[0], mode="i2i", k=5)
    with Image.open(files[0]) as im:
        query = model.encode_query_images([im.convert("RGB")])[0]
    for hit in hits:
        stored = col.catalog.image_vector(hit.id)
        assert hit.score == pytest.approx(float(stored @ query), abs=1e-4)
    stored_first = col.catalog.image_vector(hits[0].id)
    with Image.open(files[0]) as im:  # the index keeps each image's own vector
        np.testing.assert_allclose(
            stored_first, model.encode_images([im.convert("RGB")])[0], atol=1e-4
        )


def test_eval_scores_image_to_text_with_mirrored_queries(flip_model_dir: Path, tmp_path: Path):
    model = load_model(str(flip_model_dir), cache=False)
    root = write_colour_dataset(tmp_path / "data")
    ds = load_dataset("captions-json", root, split="val")
    split = embed_split(model, ds, cache_dir=tmp_path / "cache", show_progress=False)
    assert split.query_image_emb is not None
    result = evaluate(model, ds, cache_dir=tmp_path / "cache", show_progress=False)
    assert result["query_image_flip"] is True
    _, i2t = retrieval_ranks(split.query_image_emb, split.text_emb, split.caption_image)
    t2i, _ = retrieval_ranks(split.image_emb, split.text_emb, split.caption_image)
    assert result["i2t"] == metrics_from_ranks(i2t) and result["t2i"] == metrics_from_ranks(t2i)
    # the plain similarities beside them: every image querying with its own vector
    _, plain_i2t = retrieval_ranks(split.image_emb, split.text_emb, split.caption_image)
    assert result["raw_similarities"]["i2t"] == metrics_from_ranks(plain_i2t)
    assert result["raw_similarities"]["t2i"] == result["t2i"]
