"""A tiny, randomly initialised Hugging Face CLIP that can be built and saved fully offline.

`make_tiny_hf_clip(path)` writes a folder that `transformers.CLIPModel.from_pretrained`,
`AutoTokenizer.from_pretrained` and `CLIPImageProcessor(Pil).from_pretrained` all load with
`local_files_only=True`: config.json + model.safetensors, preprocessor_config.json, and a real
byte-level CLIP BPE tokenizer whose vocab.json / merges.txt we write ourselves (all 256 byte
characters, their `</w>` end-of-word forms, a few merges, then the two special tokens); it is
loaded with `CLIPTokenizer` and re-saved in the model folder (transformers 5 writes
tokenizer.json + tokenizer_config.json), so no hub download is ever needed. Shared by the
backend and training test suites.
"""

from __future__ import annotations

import json
from pathlib import Path

#: embedding size of the tiny model's joint space
TINY_PROJECTION_DIM = 16
#: image side the tiny model expects (and the processor crops to)
TINY_IMAGE_SIZE = 32
#: text context length (tokenizer max length == text max_position_embeddings)
TINY_MAX_POSITIONS = 16

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

# a handful of merges so that common words become multi-character tokens
_MERGE_WORDS = ("a", "photo", "of", "the", "dog", "cat", "red", "car")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode char table (256 entries)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tiny_bpe_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """A complete byte-level CLIP BPE vocabulary: all 256 byte chars, their `</w>` forms,
    the merged tokens of a few words, then `<|startoftext|>` and `<|endoftext|>` last
    (the highest ids, as in the real CLIP vocabulary)."""
    chars = list(bytes_to_unicode().values())
    tokens: list[str] = chars + [c + "</w>" for c in chars]
    merges: list[str] = []
    seen = set(tokens)
    for word in _MERGE_WORDS:
        # merge left to right: ("p","h") -> "ph", ("ph","o") -> "pho", ..., last piece gets </w>
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            a, b = symbols[0], symbols[1]
            merged = a + b
            if f"{a} {b}" not in merges:
                merges.append(f"{a} {b}")
            if merged not in seen:
                tokens.append(merged)
                seen.add(merged)
            symbols = [merged, *symbols[2:]]
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tiny_tokenizer_files(path: Path) -> tuple[int, int, int]:
    """Write vocab.json + merges.txt; return (vocab_size, bos_id, eos_id)."""
    vocab, merges = tiny_bpe_vocab_and_merges()
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return len(vocab), vocab[BOS], vocab[EOS]


def _image_processor_class():
    """transformers 5: CLIPImageProcessorPil (numpy/PIL path, no torchvision);
    transformers 4: CLIPImageProcessor is already the slow numpy one."""
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def make_tiny_hf_clip(path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny random CLIP (model + image processor + tokenizer) into `path`.

    projection_dim 16, 32x32 images (patch 8), 16 text positions, 2 layers / 2 heads / width 32
    in both towers. Returns the folder. Deterministic for a given `seed`.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    # --- tokenizer: write the BPE files to a scratch folder, load, save next to the model
    scratch = path / "_tokenizer_src"
    vocab_size, bos_id, eos_id = write_tiny_tokenizer_files(scratch)
    tokenizer = CLIPTokenizer.from_pretrained(
        str(scratch), model_max_length=TINY_MAX_POSITIONS, local_files_only=True
    )
    tokenizer.save_pretrained(str(path))
    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()

    # --- model
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": TINY_MAX_POSITIONS,
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "pad_token_id": eos_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=TINY_PROJECTION_DIM,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(str(path), safe_serialization=True)

    # --- image processor (resize shortest edge to 32, centre crop 32x32, CLIP mean/std)
    processor = _image_processor_class()(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    )
    processor.save_pretrained(str(path))
    return path
