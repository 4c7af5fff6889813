"""Dog search over a gallery collection: breed filter (zh/en) and look-alike dogs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossmodal.dogs.qa import DogQuestionError
from crossmodal.dogs.search import dog_search, similar_dogs
from tests.conftest import TINY_MODEL_CONFIG, sample_photo

BREEDS = {"n02085620": "Chihuahua", "n02099601": "golden_retriever", "n02110958": "pug"}
TINY = {**TINY_MODEL_CONFIG, "name": "tiny-dogs"}


@pytest.fixture(scope="module")
def collection(dogs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A 12-image collection (4 photos each of 3 breeds) with an untrained tiny model: the
    breed filter must hold whatever the embedding ranks first."""
    from crossmodal.collection import Collection
    from crossmodal.models.dual import DualEncoder

    names = [
        line.split("\t")[0]
        for line in (dogs_root / "labels.tsv").read_text().splitlines()[1:]
        if line.split("\t")[1] in BREEDS
    ]
    picked = [n for w in BREEDS for n in [m for m in names if m.startswith(w)][:4]]
    model_dir = DualEncoder(TINY).save(tmp_path_factory.mktemp("tiny-model"))
    col = Collection.open(tmp_path_factory.mktemp("dogcol"), model=str(model_dir), create=True)
    col.index(dogs_root / "images", only=picked, show_progress=False)
    assert len(col) == 12
    yield col
    col.close()


def test_breed_filter_in_english_and_chinese(collection) -> None:
    hits = dog_search(collection, "a small dog", breed="Chihuahua", k=3)
    assert hits and all(h.breed == "Chihuahua" for h in hits)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    zh = dog_search(collection, "草地上的巴哥", k=3)  # the breed named in the text filters
    assert zh and all(h.breed == "pug" for h in zh)
    by_zh_name = dog_search(collection, "a dog", breed="金毛", k=2)
    assert all(h.breed == "golden_retriever" for h in by_zh_name)
    assert set(by_zh_name[0].to_dict()) >= {"path", "breed", "breed_score", "score"}


def test_unfiltered_search_returns_k(collection) -> None:
    assert len(dog_search(collection, "a dog on grass", k=5)) == 5


def test_similar_dogs_same_breed(collection, dogs_root: Path) -> None:
    hits = dog_search(collection, "a dog", breed="pug", k=1)
    hits = similar_dogs(collection, hits[0].id, k=3)
    assert hits and all(h.breed == "pug" for h in hits)
    photo = next((dogs_root / "images").glob("n02099601_*.jpg"))
    from_file = similar_dogs(collection, photo, k=2)
    assert all(h.breed == "golden_retriever" for h in from_file)
    assert len(similar_dogs(collection, photo, k=5, same_breed=False)) == 5


def test_bad_inputs(collection) -> None:
    with pytest.raises(DogQuestionError, match="unknown breed"):
        dog_search(collection, "a dog", breed="Shiba Inu")
    with pytest.raises(DogQuestionError, match="empty"):
        dog_search(collection, "  ")
    with pytest.raises(DogQuestionError, match="English only"):
        dog_search(collection, "在海边奔跑的狗")
    with pytest.raises(DogQuestionError, match="does not look like a dog"):
        similar_dogs(collection, sample_photo("china"))


def test_cli_search(collection) -> None:
    import json

    from typer.testing import CliRunner

    from crossmodal.cli import app

    runner = CliRunner()
    args = ["dogs", "search", "a dog", "--breed", "吉娃娃", "-k", "2", "--json"]
    result = runner.invoke(app, [*args, "--collection", str(collection.path)])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and all(h["breed"] == "Chihuahua" for h in hits)
    both = runner.invoke(app, ["dogs", "search", "--collection", str(collection.path)])
    assert both.exit_code == 2 and "either a search text or --like" in both.output
