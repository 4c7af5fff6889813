"""Chinese queries: dictionary glosses and their blend with the multilingual path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal.models.dual import DualEncoder
from crossmodal.models.features import embed_texts
from crossmodal.models.gloss import default_glosser
from tests.conftest import TINY_MODEL_CONFIG


@pytest.mark.parametrize(
    ("chinese", "words"),
    [
        ("一只黑狗在草地上奔跑。", ["a", "black", "dog", "lawn", "run"]),
        ("两个孩子在雪地里玩。", ["two", "child", "snow", "play"]),
        ("一只鸟在水面上飞翔。", ["bird", "water"]),  # 鸟's main reading, not the vulgar one
        ("三个男人在打棒球。", ["three", "man", "baseball"]),
        ("一個男孩", ["boy"]),  # traditional characters
    ],
)
def test_gloss_gives_the_dictionary_words(chinese: str, words: list[str]):
    gloss = default_glosser().gloss(chinese)
    for word in words:
        assert word in gloss.split() or word in gloss, (word, gloss)
    assert "。" not in gloss and "只" not in gloss


def test_gloss_keeps_latin_words_and_drops_punctuation_only_input():
    glosser = default_glosser()
    assert "frisbee" in glosser.gloss("一只狗在接frisbee")
    assert glosser.gloss("。，！") == ""


@pytest.fixture(scope="module")
def chinese_model(tmp_path_factory: pytest.TempPathFactory) -> DualEncoder:
    import torch

    torch.manual_seed(0)
    config = {
        **TINY_MODEL_CONFIG,
        "multilingual_tower": {"type": "use", "feature_dim": 512},
        "multilingual_gloss": {"weight": 0.7},
    }
    folder = DualEncoder(config).save(tmp_path_factory.mktemp("zh") / "model")
    return DualEncoder.load(folder)


def test_chinese_vector_is_the_blend_of_gloss_and_multilingual_path(chinese_model: DualEncoder):
    import torch

    text = "一只黑狗在草地上奔跑"
    got = chinese_model.encode_texts([text, "a black dog"])
    with torch.inference_mode():
        use = chinese_model.project_texts(chinese_model.text_features([text], True), True)
        english = chinese_model.project_texts(
            chinese_model.text_features([default_glosser().gloss(text)])
        )
    mixed = 0.7 * english.numpy() + 0.3 * use.numpy()
    np.testing.assert_allclose(got[0], (mixed / np.linalg.norm(mixed))[0], atol=1e-5)
    english_only = chinese_model.encode_texts(["a black dog"])
    np.testing.assert_allclose(got[1], english_only[0], atol=1e-6)  # English is untouched

    chinese_model.config["multilingual_gloss"] = {"weight": 0.0}
    try:
        plain = chinese_model.encode_texts([text])
    finally:
        chinese_model.config["multilingual_gloss"] = {"weight": 0.7}
    np.testing.assert_allclose(plain[0], use.numpy()[0], atol=1e-5)


def test_cached_embedding_path_blends_the_same_way(chinese_model: DualEncoder, tmp_path: Path):
    texts = ["两只狗在雪地里玩", "a dog in the snow", "一个男人"]
    direct = chinese_model.encode_texts(texts)
    for _ in range(2):  # cold and warm cache
        cached = embed_texts(chinese_model, texts, cache_dir=tmp_path, show_progress=False)
        np.testing.assert_allclose(cached, direct, atol=1e-5)


def test_the_gloss_setting_is_part_of_the_fingerprint(chinese_model: DualEncoder):
    before = chinese_model.fingerprint
    chinese_model.config["multilingual_gloss"] = {"weight": 0.5}
    try:
        assert chinese_model.fingerprint != before
    finally:
        chinese_model.config["multilingual_gloss"] = {"weight": 0.7}
