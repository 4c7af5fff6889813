"""`PackedBert`: an inference copy of a transformers `BertModel` (MiniLM) without padding.

The text tower's fast path (`crossmodal.models.fast.fast_text_net`) builds it for a plain BERT
that `packable` recognises; the speed and the accuracy it keeps are in its docstring and in
docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertOutput", "PackedBert", "packable"]

#: A transformers BertModel or one of its layers, read by attribute name (see
#: `crossmodal.models.fast.ForeignModule`); `packable` checks the shape before any of it is read.
ForeignModule: TypeAlias = Any


@dataclass
class BertOutput:
    """The one field of a transformers model output that `MiniLMTower` reads."""

    last_hidden_state: torch.Tensor


def _norm(ln: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float]:
    assert ln.weight is not None and ln.bias is not None
    return ln.weight.detach(), ln.bias.detach(), float(ln.eps)


class _PackedLayer(nn.Module):
    """One BERT encoder layer over packed tokens: (tokens, hidden) in and out, fp32."""

    def __init__(self, layer: ForeignModule, heads: int, dtype: torch.dtype) -> None:
        super().__init__()
        attn = layer.attention.self
        # Q, K and V as one product: one weight read and one kernel call instead of three
        w_qkv = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]).detach()
        b_qkv = torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]).detach()
        out, inter, down = layer.attention.output, layer.intermediate, layer.output
        self.dtype = dtype
        self.heads = heads
        self.w_qkv, self.b_qkv = w_qkv.to(dtype), b_qkv.to(dtype)
        self.w_o, self.b_o = out.dense.weight.detach().to(dtype), out.dense.bias.detach().to(dtype)
        self.w_i = inter.dense.weight.detach().to(dtype)
        self.b_i = inter.dense.bias.detach().to(dtype)
        self.w_d = down.dense.weight.detach().to(dtype)
        self.b_d = down.dense.bias.detach().to(dtype)
        # LayerNorms run in fp32 on the fp32 residual stream (their weights are shared with
        # the original module, not copied): only the matrix products round to bf16
        self.ln1 = _norm(out.LayerNorm)
        self.ln2 = _norm(down.LayerNorm)

    def forward(self, x: torch.Tensor, groups: list[tuple[int, int]]) -> torch.Tensor:
        hidden = x.shape[1]
        qkv = F.linear(x.to(self.dtype), self.w_qkv, self.b_qkv)
        # attention within each text only: the rows hold the texts sorted by length, so each
        # run of equal-length texts is one (texts, length) block, attended without any mask
        parts = []
        start = 0
        for count, length in groups:
            if length == 0:  # an all-padding row (no tokenizer makes one): nothing to attend
                continue
            block = qkv[start : start + count * length]
            q, k, v = block.view(count, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v)
            parts.append(ctx.transpose(1, 2).reshape(count * length, hidden))
            start += count * length
        ctx = parts[0] if len(parts) == 1 else torch.cat(parts)
        a = F.linear(ctx, self.w_o, self.b_o).float()
        x = F.layer_norm(a.add_(x), (hidden,), self.ln1[0], self.ln1[1], self.ln1[2])
        h = F.gelu(F.linear(x.to(self.dtype), self.w_i, self.b_i))
        d = F.linear(h, self.w_d, self.b_d).float()
        return F.layer_norm(d.add_(x), (hidden,), self.ln2[0], self.ln2[1], self.ln2[2])


class PackedBert(nn.Module):
    """Inference copy of a transformers `BertModel` (MiniLM): same call, same hidden states.

    Each text of a batch is padded to the longest one; the reference module runs every matrix
    product over the padding too (a third of the rows of a batch of Flickr8k captions). This
    copy keeps only the real tokens, one (tokens, 384) matrix for the whole batch, and runs
    attention per group of equal-length texts, with no mask; the residual stream and
    LayerNorms stay fp32 and the matrix products run in bf16 (native on AVX512-BF16 / AMX).
    It also drops the pooler (never read) and most of the Python work per layer. A text's
    hidden states do not depend on the other texts of its batch (bit for bit), so batching
    queries in a server never changes their vectors. Measured in docs/benchmarks.md (web and
    gallery sections).
    """

    def __init__(self, net: ForeignModule, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        config = net.config
        emb = net.embeddings
        self.hidden = int(config.hidden_size)
        self.word = emb.word_embeddings.weight.detach()  # shared, fp32: a lookup, no product
        self.positions = emb.position_embeddings.weight.detach()
        self.token_type = emb.token_type_embeddings.weight.detach()[0]
        self.ln = _norm(emb.LayerNorm)
        heads = int(config.num_attention_heads)
        layers = net.encoder.layer
        self.layers = nn.ModuleList(_PackedLayer(layer, heads, dtype) for layer in layers)
        self.eval()

    @torch.inference_mode()
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> BertOutput:
        batch, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()
        lengths = mask.sum(1)
        order = torch.argsort(lengths, stable=True)
        # flat (batch * length) positions of the real tokens, texts in order of length: every
        # operation then sees a text's tokens the same way whatever else is in the batch, so
        # a query gets the same vector in any batch as alone (padding changed the attention
        # kernel's rounding: up to 7e-4 per coordinate in bf16)
        columns = torch.arange(length)
        rows = (order[:, None] * length + columns)[mask.index_select(0, order)]
        groups = [
            (int(n), int(size))
            for size, n in zip(*lengths[order].unique_consecutive(return_counts=True), strict=True)
        ]
        ids = input_ids.reshape(-1).index_select(0, rows)
        positions = rows % length  # a token's column, as transformers numbers positions
        x = F.embedding(ids, self.word) + self.positions.index_select(0, positions)
        x = F.layer_norm(x + self.token_type, (self.hidden,), self.ln[0], self.ln[1], self.ln[2])
        for layer in self.layers:
            x = layer(x, groups)
        out = x.new_zeros(batch * length, self.hidden).index_copy_(0, rows, x)
        return BertOutput(out.view(batch, length, self.hidden))


def packable(net: ForeignModule) -> bool:
    """Only a plain BertModel we know layer by layer (not a LoRA / peft-wrapped one)."""
    config = getattr(net, "config", None)
    if type(net).__name__ != "BertModel" or config is None:
        return False
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return False
    if getattr(config, "hidden_act", None) != "gelu" or getattr(config, "is_decoder", False):
        return False
    try:
        for layer in net.encoder.layer:
            attn = layer.attention
            linears = [
                attn.self.query,
                attn.self.key,
                attn.self.value,
                attn.output.dense,
                layer.intermediate.dense,
                layer.output.dense,
            ]
            if any(type(m) is not nn.Linear for m in linears):
                return False
            if type(attn.output.LayerNorm) is not nn.LayerNorm:
                return False
            if type(layer.output.LayerNorm) is not nn.LayerNorm:
                return False
            if getattr(layer, "crossattention", None) is not None:
                return False
    except AttributeError:
        return False
    return True
