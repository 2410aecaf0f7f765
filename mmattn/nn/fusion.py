"""Bidirectional cross-attention: the heart of mmattn.

Index letters: B batch, T text tokens, P patches, D width, H heads.

One :class:`FusionLayer` lets the two sequences read each other, from the same inputs:
- text queries image (Q = words, K/V = patches): each word gathers the features of the
  region it matches; its weights (B, H, T, P) are the word's map over the image;
- image queries text (Q = patches, K/V = words): each patch gathers the meaning of the
  words that describe it; its weights (B, H, P, T) are the patch's distribution over words.
Each direction is residual and followed by a residual MLP, so layers stack.

In the last layer of a stack, nothing reads the image stream any more (the heads read the
text), so that layer can be built with ``update_image=False``: its image->text attention keeps
its queries and keys, and so its weights, but has no values, no output and no MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mmattn.nn.attention import AttentionWeights, MultiHeadAttention
from mmattn.nn.layers import MLP


@dataclass
class FusionOutput:
    text: Tensor  #: (B, T, D) grounded text features
    image: Tensor  #: (B, P, D) labelled image features (the input ones if the layer does not update them)
    text_to_image: Tensor | None  #: (B, H, T, P) when weights were asked for
    image_to_text: Tensor | None  #: (B, H, P, T) when weights were asked for


class FusionLayer(nn.Module):
    """Cross-attention in both directions + an MLP on each stream (pre-norm, residual).

    ``update_image=False``: the image stream passes through unchanged and image->text only
    computes its attention weights (:class:`~mmattn.attention.AttentionWeights`)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0, update_image: bool = True):
        super().__init__()
        self.update_image = update_image
        self.norm_t, self.norm_i = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.text_to_image = MultiHeadAttention(dim, num_heads, dropout=dropout)  # Q text, K/V image
        if update_image:
            self.image_to_text = MultiHeadAttention(dim, num_heads, dropout=dropout)  # Q image, K/V text
        else:
            self.image_to_text = AttentionWeights(dim, num_heads)  # Q image, K text: weights only
        self.mlp_norm_t, self.mlp_t = nn.LayerNorm(dim), MLP(dim, mlp_ratio, dropout)
        if update_image:
            self.mlp_norm_i, self.mlp_i = nn.LayerNorm(dim), MLP(dim, mlp_ratio, dropout)

    def forward(
        self, text: Tensor, image: Tensor, text_mask: Tensor | None = None, need_weights: bool = False
    ) -> FusionOutput:
        """text (B, T, D), image (B, P, D), text_mask (B, T) bool (True = real token)."""
        t, i = self.norm_t(text), self.norm_i(image)
        # text queries image: every patch is a valid key
        t_new, w_t2i = self.text_to_image(t, context=i, need_weights=need_weights)  # (B, T, D), (B, H, T, P)
        # image queries text: padding tokens are not valid keys
        key_mask = None if text_mask is None else text_mask[:, None, None, :]  # (B, 1, 1, T)
        if self.update_image:
            i_new, w_i2t = self.image_to_text(i, context=t, mask=key_mask, need_weights=need_weights)  # (B, P, D), (B, H, P, T)
            image = image + i_new
            image = image + self.mlp_i(self.mlp_norm_i(image))
        else:
            w_i2t = self.image_to_text(i, context=t, mask=key_mask) if need_weights else None  # (B, H, P, T)
        text = text + t_new
        text = text + self.mlp_t(self.mlp_norm_t(text))
        return FusionOutput(text, image, w_t2i, w_i2t)
