"""Hybrid text->image search: a description lifts its image and says why (which text, which
words), `descriptions=False` ranks by the embedding alone, pages agree with the full list,
query arithmetic and FTS special characters work, and the packaged weights were selected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from crossmodal import Collection
from crossmodal.index.hybrid import WEIGHTS_FILE, HybridWeights, hybrid_hits
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return load_model(str(tiny_model_dir(0)))


def test_packaged_weights_were_chosen_on_val_with_person_above_generated():
    shipped = json.loads(WEIGHTS_FILE.read_text())
    assert "--select" in shipped["chosen_by"] and "val" in shipped["chosen_by"]
    w = HybridWeights.packaged()
    for kind in ("tag", "auto_caption"):  # what a generated text can add stays below
        most = getattr(w, f"dense_{kind}") + getattr(w, f"lexical_{kind}")
        assert most == 0 or most < w.dense_person + w.lexical_person
    assert all(0 <= t < 1 for t in w.thresholds()) and w.candidates >= 10


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory, tiny: Encoder) -> Collection:
    base = tmp_path_factory.mktemp("described")
    make_photos(base / "photos", 10)
    col = Collection.open(base / "col", model=tiny, create=True)
    col.index(base / "photos", show_progress=False, describe=False)  # annotations only
    return col


def _plain_order(col: Collection, text: str) -> list[int]:
    return [h.id for h in col.search(text=text, k=10, descriptions=False)]


def test_annotation_lifts_its_image_and_says_why(described: Collection):
    col = described
    query = "Max at the farm"
    plain = _plain_order(col, query)
    target = plain[-1]  # the image the embedding ranks last
    text_id = col.annotate(target, "Max at grandma's farm")
    try:
        strong = HybridWeights(lexical_person=5.0, dense_person=1.0, threshold=0.0)
        hits = hybrid_hits(col.catalog, col.stores, col.dim, col.embed_query(query)[0], query, 3,
                           weights=strong)  # fmt: skip
        assert hits[0].id == target and hits[0].rank == 1
        how = {r["how"]: r for r in hits[0].matched or []}
        assert how["words"]["text_id"] == text_id and how["words"]["by_person"] is True
        assert set(how["words"]["words"]) == {"max", "farm"}
        assert how["words"]["text"] == "Max at grandma's farm" and how["words"]["added"] > 0
        assert _plain_order(col, query) == plain  # descriptions=False: the embedding alone
        default = col.search(text=query, k=10)  # packaged weights: on by default
        assert {h.id for h in default} == set(plain) and all(h.matched is not None for h in default)
    finally:
        col.remove_annotations(target)
    assert col.uses_descriptions() is False and col.search(text=query, k=10)[0].matched is None


def test_hybrid_pages_agree_with_the_full_list_and_arithmetic_works(described: Collection):
    col = described
    first = col.search(text="a striped card", k=1)[0].id
    col.annotate(first, "a red striped card on a table")
    try:
        full = col.search(text="red card", k=8)
        assert [h.rank for h in full] == list(range(1, 9))
        page = col.search(text="red card", k=3, offset=2)
        assert [h.id for h in page] == [h.id for h in full[2:5]]
        assert [h.rank for h in page] == [3, 4, 5]
        mixed = col.search(query=[(1.0, "red card"), (-0.5, "snow")], k=4)
        assert len(mixed) == 4
        texts = col.search(text="red card", mode="t2t", k=2)
        assert texts[0].text_kind == "annotation" and texts[0].by_person is True
    finally:
        col.remove_annotations(first)


@pytest.mark.parametrize("query", ['"', "dog*", "NEAR(a b)", "-", "(", ":", 'a "b', "狗 *"])
def test_search_with_fts_special_characters_never_raises(described: Collection, query: str):
    image_id = int(described.catalog.ids("images")[0])
    described.annotate(image_id, 'a "quoted" dog (NEAR) - the: end*')
    try:
        assert len(described.search(text=query, k=3)) == 3
    finally:
        described.remove_annotations(image_id)
