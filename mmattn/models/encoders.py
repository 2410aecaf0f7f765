"""The two unimodal encoders: words -> token features, pixels -> patch features.

Index letters: B batch, T text tokens, P patches (= gh * gw), D width, H heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmattn.nn.layers import Block
from mmattn.nn.positional import Learned1d, Learned2d, Sinusoidal1d, Sinusoidal2d


class TextEncoder(nn.Module):
    """Token embedding + 1-D positions + pre-norm self-attention blocks.

    ``positions`` is "sinusoidal", "learned" or "none" (then the encoder is
    permutation-equivariant: attention alone ignores word order).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        num_heads: int,
        num_layers: int,
        *,
        max_len: int = 64,
        positions: str = "sinusoidal",
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"text positions must be 'sinusoidal', 'learned' or 'none' (got {positions!r})")
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = {"sinusoidal": Sinusoidal1d(dim), "learned": Learned1d(max_len, dim), "none": None}[positions]
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=mlp_ratio, dropout=dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, ids: Tensor, attention_mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """ids (B, T) long, attention_mask (B, T) bool (True = real token)
        -> features (B, T, D), self-attention weights per layer [(B, H, T, T)] (empty unless asked)."""
        B, T = ids.shape
        x = self.embed(ids)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos(T).to(x)
        mask = None if attention_mask is None else attention_mask[:, None, None, :]  # (B, 1, 1, T)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, need_weights)
            if need_weights:
                weights.append(w)
        return self.norm(x), weights


def conv_stem(dim: int, patch_size: int, extra: int = 2) -> nn.Sequential:
    """A small convolutional stem: stride-2 3x3 convolutions until the stride is
    ``patch_size`` (a power of two), ``extra`` stride-1 3x3 convolutions that widen each
    patch's view to its neighbours (receptive field 15 px -> 47 px at patch size 8, enough
    to see a whole small shape), then a 1x1 projection to D.  (B, 3, H, W) -> (B, D, gh, gw)."""
    if patch_size < 2 or patch_size & (patch_size - 1):
        raise ValueError(f"the conv stem needs a power-of-two patch_size >= 2 (got {patch_size})")
    layers, ch, stride = [], 3, 1
    widths = [32, 64, 128, 128, 128]
    while stride < patch_size:
        out = min(widths[len(layers) // 3], dim)
        layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.GELU()]
        ch, stride = out, stride * 2
    for _ in range(extra):
        layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.GELU()]
    layers.append(nn.Conv2d(ch, dim, 1))
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """Patch embedding + 2-D positions + pre-norm self-attention blocks.

    The input's height and width must be multiples of ``patch_size`` (see
    :func:`mmattn.image.to_tensor` for the resize policy that guarantees it).
    ``stem`` is "conv" (a small CNN, stride ``patch_size``) or "linear" (one
    patch_size x patch_size convolution: the ViT patch embedding).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_layers: int,
        *,
        patch_size: int = 8,
        stem: str = "conv",
        positions: str = "sinusoidal",
        max_grid: int = 64,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if stem == "conv":
            self.stem = conv_stem(dim, patch_size)
        elif stem == "linear":
            self.stem = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        else:
            raise ValueError(f"stem must be 'conv' or 'linear' (got {stem!r})")
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"image positions must be 'sinusoidal', 'learned' or 'none' (got {positions!r})")
        self.patch_size = patch_size
        self.pos = {"sinusoidal": Sinusoidal2d(dim), "learned": Learned2d(max_grid, max_grid, dim), "none": None}[positions]
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=mlp_ratio, dropout=dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, pixels: Tensor, need_weights: bool = False) -> tuple[Tensor, tuple[int, int], list[Tensor]]:
        """pixels (B, 3, H, W) -> features (B, P, D), grid (gh, gw), weights per layer [(B, H, P, P)]."""
        _, _, Hpx, Wpx = pixels.shape
        if Hpx % self.patch_size or Wpx % self.patch_size:
            raise ValueError(
                f"image size {Wpx}x{Hpx} is not a multiple of the patch size {self.patch_size}; "
                "resize it with mmattn.image.to_tensor()"
            )
        if not torch.is_grad_enabled():  # inference: oneDNN's convolutions are faster on channels-last pixels
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        fmap = self.stem(pixels)  # (B, D, gh, gw)
        gh, gw = fmap.shape[-2:]
        x = fmap.flatten(2).transpose(1, 2)  # (B, P, D), patch (r, c) at r*gw + c
        if self.pos is not None:
            x = x + self.pos(gh, gw).to(x)
        weights = []
        for block in self.blocks:
            x, w = block(x, None, need_weights)
            if need_weights:
                weights.append(w)
        return self.norm(x), (gh, gw), weights


def patch_coordinates(gh: int, gw: int, device: torch.device | None = None, isotropic: bool = False) -> Tensor:
    """Centre of every patch in [-1, 1] image coordinates, row-major.  Shape: (P, 2) as (x, y).
    ``isotropic``: one unit along both axes instead, the longer side spanning [-1, 1] (so that
    a 45-degree line in these coordinates is one in the picture)."""
    ys = (torch.arange(gh, device=device) + 0.5) / gh * 2 - 1
    xs = (torch.arange(gw, device=device) + 0.5) / gw * 2 - 1
    if isotropic:
        ys, xs = ys * gh / max(gh, gw), xs * gw / max(gh, gw)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)
