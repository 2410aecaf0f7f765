"""Building blocks shared by the encoders and the fusion layers.

Index letters: B batch, L sequence length, D model width, H heads.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmattn.nn.attention import MultiHeadAttention


class MLP(nn.Module):
    """Position-wise feed-forward: D -> ratio*D -> D with GELU.  (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm self-attention block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim, mlp_ratio, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, L, D), mask broadcastable to (B, H, L, L) -> x (B, L, D), weights (B, H, L, L) | None."""
        a, w = self.attn(self.norm1(x), mask=mask, need_weights=need_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), w
