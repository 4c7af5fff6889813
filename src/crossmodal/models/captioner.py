"""A small transformer decoder that writes a caption from the image tower's features.

The image side is the default model's image tower (EfficientNet-Lite1, fine-tuned for
retrieval), frozen: its pooled 1280-d features, which the project's feature cache already
holds for every indexed or evaluated image (`embed_image_files(..., features_only=True)`).
A linear map turns the vector into a few memory slots of the decoder's width, read through
cross-attention by a few pre-norm decoder layers; the output layer shares the word embedding.
Inference is beam search with the GNMT length penalty.

Pooled rather than grid features: extracting a grid cache for Flickr8k costs a full pass of
the tower over 7,000 images, which the shared 2-core machine could not afford in the time
given; the pooled ones were cached already (docs/captioner.md).

`caption_images(paths)` is the API; the shipped weights live in `weights/captioner/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crossmodal.errors import ModelNotAvailable

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
WEIGHTS_DIR = Path(__file__).parent / "weights" / "captioner"
_WORD = re.compile(r"[a-z0-9]+")


def caption_words(text: str) -> list[str]:
    """Lowercase words with punctuation dropped: the training targets and what metrics compare
    (the COCO toolkit's PTB tokenizer does about the same, but needs Java)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Words seen at least `min_count` times in the training captions, plus four specials."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Sequence[str], min_count: int = 5) -> Vocabulary:
        counts: dict[str, int] = {}
        for caption in captions:
            for word in caption_words(caption):
                counts[word] = counts.get(word, 0) + 1
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str, max_len: int) -> list[int]:
        """BOS w1 .. wn EOS, cut to `max_len` tokens in all."""
        ids = [self.index.get(w, UNK) for w in caption_words(caption)][: max_len - 2]
        return [BOS, *ids, EOS]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.words[i])
        return " ".join(words)


@dataclass
class CaptionerConfig:
    vocab_size: int
    feature_dim: int = 1280
    memory_slots: int = 4
    d_model: int = 256
    layers: int = 3
    heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.3
    max_len: int = 24


class CaptionDecoder(nn.Module):
    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.feature_proj = nn.Linear(c.feature_dim, c.memory_slots * c.d_model)
        self.feature_norm = nn.LayerNorm(c.d_model)
        self.embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD)
        # the embedding is also the output layer: unit-scale rows (x sqrt(d) on input)
        nn.init.normal_(self.embed.weight, std=c.d_model**-0.5)
        self.pos = nn.Parameter(torch.zeros(1, c.max_len, c.d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerDecoderLayer(
            c.d_model, c.heads, c.ff_mult * c.d_model, c.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, c.layers, norm=nn.LayerNorm(c.d_model))
        self.drop = nn.Dropout(c.dropout)
        self.out_bias = nn.Parameter(torch.zeros(c.vocab_size))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """(n, 1280) cached features -> (n, memory_slots, d) memory."""
        c = self.config
        slots = self.feature_proj(self.drop(features.float())).reshape(
            -1, c.memory_slots, c.d_model
        )
        return self.drop(self.feature_norm(slots))

    def logits(
        self, memory: torch.Tensor, tokens: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """(n, L) token ids (BOS first) -> (n, L, vocab) next-word logits; (n, vocab) for the
        last position only with `last_only` (decoding: the vocabulary projection of every
        earlier position would be most of the work)."""
        length = tokens.shape[1]
        x = self.drop(self.embed(tokens) * self.config.d_model**0.5 + self.pos[:, :length])
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        # padding needs no key mask: it only follows EOS, and causal attention never looks
        # forward from a real token to it (its own outputs are ignored by the loss)
        h = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True)
        if last_only:
            h = h[:, -1]
        return h @ self.embed.weight.T + self.out_bias

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(features), tokens)


def greedy_decode(
    model: CaptionDecoder, features: torch.Tensor, max_len: int | None = None
) -> list[list[int]]:
    """The most likely word at each step (the reference that beam 1 must equal)."""
    max_len = max_len or model.config.max_len
    with torch.inference_mode():
        memory = model.encode(features)
        seq = torch.full((len(features), 1), BOS, dtype=torch.long)
        done = torch.zeros(len(features), dtype=torch.bool)
        for _ in range(max_len - 1):
            step = _never_pad_or_bos(model.logits(memory, seq, last_only=True)).argmax(-1)
            step = torch.where(done, torch.full_like(step, PAD), step)
            seq = torch.cat([seq, step[:, None]], dim=1)
            done |= step == EOS
            if bool(done.all()):
                break
    return [_strip(row) for row in seq.tolist()]


def beam_search(
    model: CaptionDecoder,
    features: torch.Tensor,
    beam: int = 3,
    length_penalty: float = 0.6,
    max_len: int | None = None,
) -> list[list[int]]:
    """Batched beam search. Beams are ranked by summed log-probability while searching
    (a finished beam keeps its score and only extends with padding); the winner among the
    final beams is chosen by score / ((5 + length) / 6) ** length_penalty (GNMT)."""
    max_len = max_len or model.config.max_len
    n, k = len(features), max(1, int(beam))
    with torch.inference_mode():
        memory = model.encode(features).repeat_interleave(k, dim=0)
        seq = torch.full((n * k, 1), BOS, dtype=torch.long)
        scores = torch.full((n, k), float("-inf"))
        scores[:, 0] = 0.0  # all beams start identical: keep one so they do not duplicate
        done = torch.zeros(n * k, dtype=torch.bool)
        for _ in range(max_len - 1):
            logits = _never_pad_or_bos(model.logits(memory, seq, last_only=True).float())
            logp = torch.log_softmax(logits, dim=-1)
            # a finished beam continues only with PAD, at no cost
            logp[done] = float("-inf")
            logp[done, PAD] = 0.0
            vocab = logp.shape[-1]
            total = (scores.reshape(-1, 1) + logp).reshape(n, k * vocab)
            scores, flat = total.topk(k, dim=-1)
            parent = (flat // vocab) + torch.arange(n)[:, None] * k
            word = (flat % vocab).reshape(-1, 1)
            seq = torch.cat([seq[parent.reshape(-1)], word], dim=1)
            done = done[parent.reshape(-1)] | (word[:, 0] == EOS) | (word[:, 0] == PAD)
            if bool(done.all()):
                break
        lengths = ((seq != PAD) & (seq != BOS)).sum(1).reshape(n, k).float()
        normalised = scores / ((5.0 + lengths) / 6.0) ** length_penalty
        best = normalised.argmax(-1) + torch.arange(n) * k
    return [_strip(row) for row in seq[best].tolist()]


def _never_pad_or_bos(logits: torch.Tensor) -> torch.Tensor:
    """PAD and BOS are never targets, so their logits are untrained: a live sequence must not
    pick them (PAD would end it early). Only EOS ends a caption."""
    logits = logits.clone()
    logits[:, PAD] = float("-inf")
    logits[:, BOS] = float("-inf")
    return logits


def _strip(row: list[int]) -> list[int]:
    out = []
    for i in row[1:]:
        if i in (EOS, PAD):
            break
        out.append(i)
    return out


class Captioner:
    """Decoder + vocabulary + the image tower that feeds it."""

    def __init__(
        self, decoder: CaptionDecoder, vocab: Vocabulary, info: dict[str, Any] | None = None
    ) -> None:
        self.decoder = decoder.eval()
        self.vocab = vocab
        self.info = info or {}

    def caption_features(
        self,
        features: torch.Tensor,
        beam: int = 3,
        length_penalty: float | None = None,
        batch_size: int = 64,
    ) -> list[str]:
        if length_penalty is None:
            length_penalty = float(self.info.get("length_penalty", 0.6))
        out: list[str] = []
        for start in range(0, len(features), batch_size):
            chunk = torch.as_tensor(features[start : start + batch_size])
            for ids in beam_search(self.decoder, chunk, beam, length_penalty):
                out.append(self.vocab.decode(ids))
        return out

    def save(self, folder: str | Path, info: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # float16 halves the shipped file; the decoder runs in float32 after loading
        state = {k: v.detach().half().contiguous() for k, v in self.decoder.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        meta = {
            "format": "crossmodal-captioner",
            "version": 1,
            "config": asdict(self.decoder.config),
            "vocab": self.vocab.words,
            "info": {**self.info, **(info or {})},
        }
        (folder / "config.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Captioner:
        from safetensors.torch import load_file

        folder = Path(folder) if folder is not None else WEIGHTS_DIR
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise ModelNotAvailable(
                f"no captioner in {folder} (expected config.json and model.safetensors); "
                "train one with `crossmodal train-captioner`"
            )
        meta = json.loads((folder / "config.json").read_text())
        if meta.get("format") != "crossmodal-captioner":
            raise ModelNotAvailable(f"{folder} holds no crossmodal captioner")
        vocab = Vocabulary(meta["vocab"])
        decoder = CaptionDecoder(CaptionerConfig(**meta["config"]))
        state = {k: v.float() for k, v in load_file(folder / "model.safetensors").items()}
        decoder.load_state_dict(state)
        return cls(decoder, vocab, meta.get("info", {}))


_loaded: dict[str, Captioner] = {}


def check_image_model(captioner: Captioner, model: object) -> None:
    """Refuse an image model whose tower is not the one the captioner was trained on (a
    retrained default model would feed it features it never saw)."""
    expected = captioner.info.get("image_tower")
    found = model.image_tower_fingerprint()  # type: ignore[attr-defined]
    if expected and found != expected:
        raise ModelNotAvailable(
            f"the captioner was trained on image features of {expected}, but the image model "
            f"gives {found}: retrain it with `crossmodal train-captioner`"
        )


def load_captioner(folder: str | Path | None = None) -> Captioner:
    key = str(folder or WEIGHTS_DIR)
    if key not in _loaded:
        _loaded[key] = Captioner.load(folder)
    return _loaded[key]


def caption_images(
    paths: Sequence[str | Path],
    beam: int = 3,
    captioner_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> list[str]:
    """One caption per image file, in order. A file that cannot be read raises
    ImageLoadError naming it (check files first to caption the rest)."""
    from crossmodal.errors import ImageLoadError
    from crossmodal.models.features import embed_image_files
    from crossmodal.models.registry import load_model

    captioner = load_captioner(captioner_dir)
    model = load_model(str(captioner.info.get("image_model", "default")))
    check_image_model(captioner, model)
    result = embed_image_files(
        model, list(paths), cache_dir, show_progress=False, features_only=True
    )
    if result.failures:
        path, reason = result.failures[0]
        raise ImageLoadError(f"{path}: {reason}")
    return captioner.caption_features(torch.from_numpy(result.vectors), beam=beam)
