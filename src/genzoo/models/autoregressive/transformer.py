"""Decoder-only causal Transformer language model (GPT-style).

References:
    Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin, "Attention is all
    you need", NeurIPS 2017 (attention, eq. 1; sinusoidal positions, section 3.5).
    Radford, Narasimhan, Salimans & Sutskever, "Improving language understanding by generative
    pre-training", 2018 (decoder-only language model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genzoo.models.autoregressive.lm import SequenceLM
from genzoo.models.nn import MLP
from genzoo.registry import register_model

POSITIONS = ("learned", "sinusoidal")


def sinusoidal_positions(length: int, width: int) -> Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``: ``(length, width)``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2) / width)
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table.to(torch.get_default_dtype())


class CausalSelfAttention(nn.Module):
    """Multi-head ``softmax(Q K^T / sqrt(d) + mask) V`` where position ``t`` sees ``<= t``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        n, t, c = h.shape  # (batch, time, channels)
        q, k, v = self.qkv(h).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (n, heads, t, c / heads)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    """Pre-norm Transformer block: ``h + attn(LN(h))``, then ``h + MLP(LN(h))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.mlp = MLP(width, width, hidden=(4 * width,), activation="gelu")

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


@register_model("transformer-lm", family="autoregressive")
class TransformerLM(SequenceLM):
    """Decoder-only causal Transformer language model (Vaswani et al. 2017; GPT-style).

    Token and position embeddings, ``n_layers`` causal self-attention blocks, a linear head;
    ``P(w_i | w_<i) = softmax(head(h_i))``. Loss: cross-entropy per token. Sampling past
    ``seq_len`` tokens (``generate(length=...)``) attends to the last ``seq_len`` only. With an
    input (``condition_len = M``) the positions cover ``M + seq_len`` tokens: the input prefix,
    the start symbol and the output (see ``SequenceLM``).

    Arguments:
        data_shape: ``[seq_len]``.
        levels: vocabulary size.
        width: model width ``d``.
        n_layers: Transformer blocks.
        heads: attention heads (must divide ``width``).
        positions: ``"learned"`` or ``"sinusoidal"`` (fixed, section 3.5 of the paper).
        temperature, top_k, top_p: default sampling settings, those of every language model
            (``SequenceLM``).
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        width: int = 128,
        n_layers: int = 2,
        heads: int = 4,
        positions: str = "learned",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, levels, **kwargs)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, not {positions!r}")
        if min(width, n_layers, heads) < 1 or width % heads:
            raise ValueError(f"width ({width}) must be a positive multiple of heads ({heads})")
        self.embed = nn.Embedding(levels + 1, width)  # + the start symbol
        context = self.seq_len + self.condition_len  # the input prefix, <start>, the output
        if positions == "learned":
            self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        else:
            table = sinusoidal_positions(context, width)
            self.register_buffer("position", table, persistent=False)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(n_layers)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, levels)

    def logits(self, tokens: Tensor) -> Tensor:
        h = self.embed(tokens) + self.position[: tokens.shape[1]]  # (n, t, width)
        return self.head(self.norm(self.blocks(h)))

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        state = tokens if state is None else torch.cat([state, tokens], 1)  # all ids so far
        return self.logits(state[:, -(self.seq_len + self.condition_len) :])[:, -1], state
