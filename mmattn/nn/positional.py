"""Positional encodings: attention alone ignores order, so positions are added to the inputs.

Sinusoids (Vaswani et al.):
    PE(pos, 2i)   = sin(pos / 10000^(2i/dim))
    PE(pos, 2i+1) = cos(pos / 10000^(2i/dim))
Values stay in [-1, 1], every position gets its own vector, and PE(pos + k) is a fixed
rotation of PE(pos) per frequency pair, so PE @ PEᵀ depends only on |i - j|.

For images the same idea runs in 2-D: the first half of the channels encodes the patch's
row, the second half its column. Patches are numbered row-major: patch (r, c) of a
(gh, gw) grid is row ``r * gw + c``, the order in which ``flatten(2)`` reads a feature map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sinusoidal_1d(n: int, dim: int, *, base: float = 10000.0) -> Tensor:
    """Sinusoidal encodings of positions 0..n-1.  Shape: (n, dim), float32."""
    if n < 0 or dim <= 0 or dim % 2:
        raise ValueError(f"need n >= 0 and an even dim > 0 (got n={n}, dim={dim})")
    pos = torch.arange(n, dtype=torch.float64)[:, None]  # (n, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,)  the "2i" of the formula
    angle = pos / base ** (two_i / dim)  # (n, dim/2)
    pe = torch.empty(n, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


def sinusoidal_2d(gh: int, gw: int, dim: int, *, base: float = 10000.0) -> Tensor:
    """2-D encodings of a (gh, gw) patch grid, row-major.  Shape: (gh*gw, dim).

    Channels [0, dim/2) encode the row, channels [dim/2, dim) encode the column.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for 2-D sinusoids (got dim={dim})")
    if gh <= 0 or gw <= 0:
        raise ValueError(f"grid must be at least 1x1 (got gh={gh}, gw={gw})")
    rows = sinusoidal_1d(gh, dim // 2, base=base)  # (gh, dim/2)
    cols = sinusoidal_1d(gw, dim // 2, base=base)  # (gw, dim/2)
    r, c = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")  # (gh, gw) each
    return torch.cat([rows[r.flatten()], cols[c.flatten()]], dim=1)  # (gh*gw, dim)


class Learned1d(nn.Module):
    """Learned positions for up to ``max_len`` tokens.  forward(n) -> (n, dim)."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.table = nn.Parameter(torch.empty(max_len, dim).normal_(std=0.02))  # = randn * 0.02, bit for bit

    def forward(self, n: int) -> Tensor:
        if n > self.max_len:
            raise ValueError(f"sequence of {n} positions exceeds the learned table of {self.max_len}")
        return self.table[:n]


class Learned2d(nn.Module):
    """Learned row and column tables (half the channels each) for grids up to max_h x max_w.
    forward(gh, gw) -> (gh*gw, dim), row-major like :func:`sinusoidal_2d`."""

    def __init__(self, max_h: int, max_w: int, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim must be even (got {dim})")
        self.rows = nn.Parameter(torch.empty(max_h, dim // 2).normal_(std=0.02))
        self.cols = nn.Parameter(torch.empty(max_w, dim // 2).normal_(std=0.02))

    def forward(self, gh: int, gw: int) -> Tensor:
        if gh > self.rows.size(0) or gw > self.cols.size(0):
            raise ValueError(
                f"grid {gh}x{gw} exceeds the learned tables ({self.rows.size(0)}x{self.cols.size(0)})"
            )
        r, c = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return torch.cat([self.rows[r.flatten()], self.cols[c.flatten()]], dim=1)


class Sinusoidal1d(nn.Module):
    """Fixed sinusoidal positions as a module (cached per length).  forward(n) -> (n, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self._cache: dict[int, Tensor] = {}

    def forward(self, n: int) -> Tensor:
        if n not in self._cache:
            self._cache[n] = sinusoidal_1d(n, self.dim)
        return self._cache[n]


class Sinusoidal2d(nn.Module):
    """Fixed 2-D sinusoidal positions as a module (cached per grid).  forward(gh, gw) -> (P, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self._cache: dict[tuple[int, int], Tensor] = {}

    def forward(self, gh: int, gw: int) -> Tensor:
        if (gh, gw) not in self._cache:
            self._cache[(gh, gw)] = sinusoidal_2d(gh, gw, self.dim)
        return self._cache[(gh, gw)]
