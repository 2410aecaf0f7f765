"""Dense (per-patch) features from CLIP's vision tower: its last block, changed so that each
patch stays local. Two training-free recipes, both on a transformers CLIP vision layer.

Index letters: B batch, N tokens (= 1 + P: [CLS] then the patches), P patches (= gh * gw,
row-major: patch (r, c) is token 1 + r * gw + c), D the vision tower's width, H heads,
hd head width (= D / H).

- **MaskCLIP** (Zhou et al., ECCV 2022): the last block without query-key mixing, each
  token reads only its own value: ``x + out_proj(v_proj(ln_1(x)))``, then the block's MLP
  with its residual, as usual.
- **NACLIP** (Hajimiri et al., WACV 2025; reference code github.com/sinahmr/NACLIP, MIT,
  ``clip/model.py``: ``VisionTransformer.custom_attn`` with ``attn_strategy='naclip'`` and
  ``arch='reduced'``): in the last block only,

  1. the attention logits are key-key, ``k kᵀ · hd^-0.5`` (k = k_proj(ln_1(x)), with its bias),
     not query-key;
  2. a Gaussian neighbourhood bias is added to the logits before the softmax: between
     patches (r, c) and (r', c'), ``exp(-((r-r')² + (c-c')²) / (2 std²))`` (1 for a patch
     and itself), and 0 in [CLS]'s row and column, so [CLS] is still attended, unbiased;
     ``std`` = 5 patches in the reference;
  3. the block's output is the attention output alone, ``out_proj(softmax(·) v)``: no
     residual connection and no MLP.

  CLIP's post-layernorm and visual projection then put each patch in the joint space (the
  reference's ``ln_post(x) @ proj`` on every token), exactly as for MaskCLIP.

Both functions return the last block's output for every token (B, N, D); [CLS]'s row is
returned too but is not CLIP's image embedding (that one goes through the normal block).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

DENSE = ("naclip", "maskclip")  #: the dense recipes, the first is the default
GAUSSIAN_STD = 5.0  #: NACLIP's neighbourhood width, in patches (the reference's default)


def neighbourhood_bias(gh: int, gw: int, std: float = GAUSSIAN_STD, *, device=None, dtype=torch.float32) -> Tensor:
    """NACLIP's additive attention bias for a (gh, gw) patch grid with [CLS] first: (1+P, 1+P).

    Entry (1 + r*gw + c, 1 + r'*gw + c') is ``exp(-((r-r')² + (c-c')²) / (2 std²))``; row 0
    and column 0 ([CLS]) are 0."""
    if std <= 0:
        raise ValueError(f"std must be > 0 patches (got {std})")
    rows, cols = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], -1).to(dtype)  # (P, 2), row-major
    d2 = (pos[:, None, :] - pos[None, :, :]).pow(2).sum(-1)  # (P, P) squared grid distances
    bias = torch.zeros(1 + gh * gw, 1 + gh * gw, device=device, dtype=dtype)
    bias[1:, 1:] = torch.exp(-d2 / (2 * std**2))
    return bias


def naclip_block(layer: nn.Module, x: Tensor, grid: tuple[int, int], std: float = GAUSSIAN_STD) -> Tensor:
    """NACLIP's last block: x (B, N, D), the input of CLIP's last vision layer ``layer``
    (a transformers ``CLIPEncoderLayer``), on a ``grid`` = (gh, gw) of patches -> (B, N, D),
    the key-key attention with the neighbourhood bias, through out_proj; no residual, no MLP."""
    attn = layer.self_attn
    B, N, D = x.shape
    H = attn.num_heads
    if N != 1 + grid[0] * grid[1]:
        raise ValueError(f"x has {N} tokens but the grid {grid} has {grid[0] * grid[1]} patches (+1 for [CLS])")
    h = layer.layer_norm1(x)
    k = attn.k_proj(h).view(B, N, H, D // H).transpose(1, 2)  # (B, H, N, hd)
    v = attn.v_proj(h).view(B, N, H, D // H).transpose(1, 2)  # (B, H, N, hd)
    logits = k @ k.transpose(-2, -1) * attn.scale  # (B, H, N, N) key-key
    logits = logits + neighbourhood_bias(*grid, std, device=x.device, dtype=logits.dtype)
    out = logits.softmax(-1) @ v  # (B, H, N, hd)
    return attn.out_proj(out.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


def maskclip_block(layer: nn.Module, x: Tensor) -> Tensor:
    """MaskCLIP's last block: x (B, N, D) -> (B, N, D), each token attending only to itself
    (value, out_proj, residual), then the block's MLP with its residual."""
    attn = layer.self_attn
    y = x + attn.out_proj(attn.v_proj(layer.layer_norm1(x)))
    return y + layer.mlp(layer.layer_norm2(y))
