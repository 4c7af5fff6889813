"""The caption decoder: beam search, learning, saving, and the shipped weights on a real image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from crossmodal.errors import ImageLoadError, ModelNotAvailable
from crossmodal.models.captioner import (
    PAD,
    WEIGHTS_DIR,
    CaptionDecoder,
    Captioner,
    CaptionerConfig,
    Vocabulary,
    beam_search,
    caption_images,
    caption_words,
    greedy_decode,
)

CAPTIONS = [
    "A dog runs on the grass .",
    "A man rides a red bike",
    "Two children play in the water!",
    "A woman sings on a stage.",
]


def tiny_decoder(vocab_size: int, dropout: float = 0.0) -> CaptionDecoder:
    config = CaptionerConfig(
        vocab_size=vocab_size, d_model=64, layers=1, heads=4, ff_mult=2, dropout=dropout, max_len=12
    )
    return CaptionDecoder(config)


def test_caption_words_lowercase_without_punctuation() -> None:
    assert caption_words("Two children play in the water!") == [
        "two", "children", "play", "in", "the", "water",
    ]  # fmt: skip


def test_vocabulary_round_trip_and_unknown_words() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    ids = vocab.encode("A dog rides a zebra", max_len=12)
    assert vocab.decode(ids) == "a dog rides a <unk>"
    assert vocab.encode("a a a a a a a a a a a a a a", max_len=6)[-1] != PAD
    assert len(vocab.encode("a a a a a a a a a a a a a a", max_len=6)) == 6


def test_beam_of_one_is_greedy() -> None:
    torch.manual_seed(0)
    decoder = tiny_decoder(40).eval()
    features = torch.randn(6, 1280)
    assert beam_search(decoder, features, beam=1) == greedy_decode(decoder, features)


def test_beam_search_scores_at_least_the_greedy_sequence() -> None:
    torch.manual_seed(1)
    decoder = tiny_decoder(30).eval()
    features = torch.randn(5, 1280)

    def logprob(ids: list[int], feature: torch.Tensor) -> float:
        tokens = torch.tensor([[1, *ids, 2]])
        with torch.inference_mode():
            logp = torch.log_softmax(decoder(feature[None], tokens[:, :-1]), -1)
        return float(logp[0].gather(1, tokens[0, 1:, None]).sum())

    # no length penalty: beam search maximises the plain log-probability (within its beam)
    beams = beam_search(decoder, features, beam=4, length_penalty=0.0)
    greedy = greedy_decode(decoder, features)
    for b, g, f in zip(beams, greedy, features, strict=True):
        if len(b) < 11 and len(g) < 11:  # both finished with EOS
            assert logprob(b, f) >= logprob(g, f) - 1e-4


def test_decoder_overfits_four_captions() -> None:
    torch.manual_seed(0)
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    decoder = tiny_decoder(len(vocab))
    features = torch.randn(4, 1280)
    tokens = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(vocab.encode(c, 12)) for c in CAPTIONS], batch_first=True
    )
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    decoder.train()
    for _ in range(150):
        logits = decoder(features, tokens[:, :-1])
        loss = loss_fn(logits.reshape(-1, len(vocab)), tokens[:, 1:].reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    captioner = Captioner(decoder, vocab)
    expected = [" ".join(caption_words(c)) for c in CAPTIONS]
    assert captioner.caption_features(features, beam=1) == expected
    assert captioner.caption_features(features, beam=3) == expected


def test_save_and_load_keep_the_captions(tmp_path: Path) -> None:
    torch.manual_seed(2)
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    captioner = Captioner(tiny_decoder(len(vocab)), vocab, {"length_penalty": 0.6})
    features = torch.randn(3, 1280)
    before = captioner.caption_features(features)
    loaded = Captioner.load(captioner.save(tmp_path / "cap", {"note": "test"}))
    assert loaded.vocab.words == vocab.words
    assert loaded.info["note"] == "test"
    assert loaded.caption_features(features) == before


def test_loading_from_an_empty_folder_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="train-captioner"):
        Captioner.load(tmp_path)


@pytest.fixture(scope="module")
def shipped() -> Path:
    if not (WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.fail(f"the shipped captioner is missing from {WEIGHTS_DIR}")
    return WEIGHTS_DIR


def test_shipped_weights_are_small_and_load(shipped: Path) -> None:
    assert (shipped / "model.safetensors").stat().st_size < 8_000_000
    captioner = Captioner.load(shipped)
    assert captioner.info["image_model"] == "default"
    assert len(captioner.vocab) > 1000


def test_shipped_weights_caption_a_real_test_image(shipped: Path, flickr8k_root: Path) -> None:
    name = (flickr8k_root / "test.txt").read_text().split()[0]
    (caption,) = caption_images([flickr8k_root / "images" / name])
    words = caption.split()
    assert len(words) >= 3
    assert "<unk>" not in words[:1]


def test_a_corrupt_image_raises_a_named_error(shipped: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        caption_images([broken])
