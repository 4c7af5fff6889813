"""`build_dataset`: knowledge-base captions for labelled dog photos, loadable as captions-json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import load_dataset
from crossmodal.dogs.dataset import breed_captions, build_dataset
from crossmodal.dogs.knowledge import KnowledgeBase
from crossmodal.errors import ConfigError, DatasetError
from tests.conftest import make_image

WNIDS = ["n02085620", "n02099601", "n02110958", "n02115641"]  # Chihuahua, Golden, Pug, dingo


def _fake_dogs(root: Path, per_class: int = 5) -> tuple[Path, Path]:
    images = root / "src" / "images"
    lines = ["image\twnid\tbreed"]
    for c, wnid in enumerate(WNIDS):
        for k in range(per_class):
            name = f"{wnid}_{k}.jpg"
            make_image(images / name, (40 * c + 20, 200 - 10 * k, 90))
            lines.append(f"{name}\t{wnid}\tx")
    labels = root / "src" / "labels.tsv"
    labels.write_text("\n".join(lines) + "\n")
    return images, labels


@pytest.mark.parametrize("lang", ["en", "zh", "both"])
def test_builds_a_loadable_captions_json(tmp_path: Path, lang: str) -> None:
    images, labels = _fake_dogs(tmp_path)
    out = tmp_path / "out" / "dogs-captions"
    report = build_dataset(images, labels, out, lang=lang)
    assert report.images == 20 and report.splits == {"train": 12, "val": 4, "test": 4}
    entries = json.loads((out / "captions.json").read_text(encoding="utf-8"))
    assert entries[0]["image"].startswith("../")  # referenced, not copied
    assert not list(out.glob("*.jpg"))
    per_image = {"en": 5, "zh": 5, "both": 10}[lang]
    assert all(len(e["captions"]) == per_image for e in entries)
    test = load_dataset("captions-json", out, split="test")
    assert len(test) == 4 and len(test.captions) == 4 * per_image
    assert all(p.is_file() for p in test.image_paths)
    assert {p.name.split("_")[0] for p in test.image_paths} == set(WNIDS)  # stratified
    if lang != "zh":
        assert any("Golden Retriever" in c for c in test.captions)
    if lang != "en":
        assert any("金毛寻回犬" in c for c in test.captions)


def test_captions_are_deterministic_and_breed_level(tmp_path: Path) -> None:
    kb = KnowledgeBase.load()
    info = kb.by_wnid("n02099601")
    a = breed_captions(info, "en", np.random.default_rng([0, 1]))
    b = breed_captions(info, "en", np.random.default_rng([0, 1]))
    assert a == b and all(info.name_en in c for c in a)
    assert any("usually" in c for c in a)  # colours are the breed's, not this dog's
    images, labels = _fake_dogs(tmp_path)
    build_dataset(images, labels, tmp_path / "o1")
    build_dataset(images, labels, tmp_path / "o2")
    first, second = (tmp_path / o / "captions.json" for o in ("o1", "o2"))
    assert first.read_bytes() == second.read_bytes()


def test_bad_inputs(tmp_path: Path) -> None:
    images, labels = _fake_dogs(tmp_path)
    with pytest.raises(ConfigError, match="language"):
        build_dataset(images, labels, tmp_path / "o", lang="fr")
    with pytest.raises(DatasetError, match="not found"):
        build_dataset(images, tmp_path / "missing.tsv", tmp_path / "o")
    bad = tmp_path / "bad.tsv"
    bad.write_text("image\twnid\nn02085620_0.jpg\tn99999999\n")
    with pytest.raises(DatasetError, match="not in the breed knowledge base"):
        build_dataset(images, bad, tmp_path / "o")
    gone = tmp_path / "gone.tsv"
    gone.write_text("image\twnid\nnope.jpg\tn02085620\n")
    with pytest.raises(DatasetError, match="line 2: no image file"):
        build_dataset(images, gone, tmp_path / "o")


def test_real_stanford_dogs_split_matches_the_recogniser(dogs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dogs"
    build_dataset(dogs_root / "images", dogs_root / "labels.tsv", out, lang="both")
    ours = load_dataset("captions-json", out, split="test")
    theirs = load_dataset("stanford-dogs", dogs_root, split="test")
    assert [p.resolve() for p in ours.image_paths] == [p.resolve() for p in theirs.image_paths]
    assert len(ours.captions) == 600 * 10


# ---- Tsinghua Dogs layout -----------------------------------------------------------------
#: class folders as the low-resolution download names them (image count, id, breed)
THU_CLASSES = {
    "1043-n000001-Shiba_Dog": None,  # not one of the 120 breeds: skipped, counted
    "1160-n000003-Siberian_husky": "Siberian_husky",
    "1936-n000005-Pomeranian": "Pomeranian",
    "203-n000022-English_setter": "English_setter",
}


def _fake_tsinghua(root: Path, per_class: int = 14) -> Path:
    """A tiny Tsinghua Dogs folder in its documented layout: low-resolution/<class>/<image>,
    TrainAndValList/{train,validation}.lst with `.//<class>/<image>` lines and a BOM."""
    train, val = [], []
    for c, folder in enumerate(THU_CLASSES):
        for k in range(per_class):
            name = f"{1000 * c + k}.jpg"
            make_image(root / "low-resolution" / folder / name, (30 * c + 40, 10 * k, 120))
            (val if k < 2 else train).append(f".//{folder}/{name}")
    lists = root / "TrainAndValList"
    lists.mkdir(parents=True)
    (lists / "train.lst").write_text("\ufeff" + "\n".join(train) + "\n", encoding="utf-8")
    (lists / "validation.lst").write_text("\ufeff" + "\r\n".join(val) + "\r\n", encoding="utf-8")
    return root


def test_tsinghua_layout_builds_a_dataset(tmp_path: Path) -> None:
    from crossmodal.dogs.dataset import build_tsinghua_dataset, read_tsinghua

    root = _fake_tsinghua(tmp_path / "thu")
    layout = read_tsinghua(root)
    assert layout.skipped == {"Shiba_Dog": 14} and layout.missing == 0
    kb = KnowledgeBase.load()
    breeds = {kb.by_wnid(w).breed for _, _, w, _ in layout.rows}
    assert breeds == {b for b in THU_CLASSES.values() if b}
    report = build_tsinghua_dataset(root, tmp_path / "out", lang="both")
    assert report.images == 42 and report.splits["test"] == 6  # validation.lst is our test
    assert report.splits["train"] + report.splits["val"] == 36
    assert "skipped 14 images of 1 breeds" in report.summary() and "Shiba_Dog" in report.summary()
    test = load_dataset("captions-json", tmp_path / "out", split="test")
    assert len(test) == 6 and all(p.is_file() for p in test.image_paths)
    # the captions draw on the care fields (lifespan, cold tolerance, trainability ...)
    caps = " ".join(test.captions)
    assert "years" in caps or "cold weather" in caps or "easily trained" in caps
    assert "寿命" in caps or "耐寒" in caps or "容易训练" in caps or "怕热" in caps


def test_tsinghua_bad_folder(tmp_path: Path) -> None:
    from crossmodal.dogs.dataset import read_tsinghua

    with pytest.raises(DatasetError, match="not a Tsinghua Dogs folder"):
        read_tsinghua(tmp_path)
    (tmp_path / "low-resolution").mkdir()
    with pytest.raises(DatasetError, match="list not found"):
        read_tsinghua(tmp_path)
