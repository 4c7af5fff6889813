"""The Stanford Dogs -> ImageNet-1k class table: its structure, and agreement with the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossmodal.dogs.imagenet import (
    DALMATIAN_INDEX,
    DOG_INDEX_RANGE,
    IMAGENET_INDEX,
    WILD_CANIDS,
    dog_class_indices,
    imagenet_index,
)
from crossmodal.dogs.knowledge import KnowledgeBase


def test_table_is_sorted_wnids_counting_from_151_skipping_the_dalmatian() -> None:
    domestic = sorted(w for w in IMAGENET_INDEX if w not in WILD_CANIDS)
    assert len(IMAGENET_INDEX) == 120 and len(domestic) == 117
    expected = [i for i in range(151, 269) if i != DALMATIAN_INDEX]
    assert [IMAGENET_INDEX[w] for w in domestic] == expected
    assert WILD_CANIDS == {"n02115641": 273, "n02116738": 275, "n02115913": 274}
    assert len(set(IMAGENET_INDEX.values())) == 120  # a bijection onto its image
    assert list(IMAGENET_INDEX) == sorted(IMAGENET_INDEX)


def test_table_covers_the_knowledge_base() -> None:
    kb = KnowledgeBase.load()
    assert set(kb.wnids) == set(IMAGENET_INDEX)
    assert imagenet_index("n02085620") == 151  # Chihuahua
    assert imagenet_index("n02113978") == 268  # Mexican hairless
    assert dog_class_indices()[0] == DOG_INDEX_RANGE[0] == 151
    assert dog_class_indices()[-1] == DOG_INDEX_RANGE[1] == 275


def test_table_agrees_with_the_classifier_on_train_images(dogs_root: Path) -> None:
    """Majority ImageNet argmax of 5 *train* images per breed (lite0) matches the table.

    Not all 120: ImageNet's own classifier confuses a few look-alike pairs (Eskimo dog vs
    Siberian husky above all), which is why the table is the structural one, not a data vote.
    """
    from crossmodal.data import load_dataset
    from crossmodal.dogs.features import imagenet_logits, tower_features

    train = load_dataset("stanford-dogs", dogs_root, split="train")
    picked = [int(i) for c in range(120) for i in np.flatnonzero(train.labels == c)[:5]]
    feats = tower_features("lite0", [train.image_paths[i] for i in picked])
    assert feats.ok.all()
    top = imagenet_logits("lite0", feats.vectors).argmax(axis=1)
    labels = train.labels[picked]
    agree = 0
    for c, wnid in enumerate(train.class_ids):
        values, counts = np.unique(top[labels == c], return_counts=True)
        vote = int(values[counts.argmax()])
        agree += vote == IMAGENET_INDEX[wnid]
        assert 151 <= vote <= 275, f"{wnid}: majority class {vote} is not a dog class"
    assert agree >= 115, f"only {agree}/120 breeds agree with the table"
