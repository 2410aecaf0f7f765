"""Bidirectional cross-attention: the heart of mmattn.

Index letters: B batch, T text tokens, P patches, D width, H heads.

One :class:`FusionLayer` lets the two sequences read each other, from the same inputs:
- text queries image (Q = words, K/V = patches): each word gathers the features of the
  region it matches; its weights (B, H, T, P) are the word's map over the image;
- image queries text (Q = patches, K/V = words): each patch gathers the meaning of the
  words that describe it; its weights (B, H, P, T) are the patch's distribution over words.
Each direction is residual and followed by a residual MLP, so layers stack.

With ``self_attention="both"`` (ALBEF's fusion encoder has it), each stream first attends to
itself: words to words, so that "circle" can read "left" and "square"; patches to patches,
so that a patch can read where the patches of another object are (``"text"``: words only,
for a first layer, whose patches have read no words yet). Then the cross-attention
reads the updated streams. A caption's referent can then be found by its relation to a
landmark ("the circle left of the square" when there are two circles), which cross-attention
alone, one word at a time, cannot do. The self-attention's output projections start at zero,
so a layer with it starts as the layer without it (fine-tuning from a model without it).

In the last layer of a stack, nothing reads the image stream any more (the heads read the
text), so that layer can be built with ``update_image=False``: its image->text attention keeps
its queries and keys, and so its weights, but has no values, no output and no MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mmattn.nn.anchor import AnchorBias
from mmattn.nn.attention import AttentionWeights, MultiHeadAttention
from mmattn.nn.layers import MLP

#: which streams attend to themselves before the cross-attention of a fusion layer
SELF_ATTENTION = ("none", "text", "both")


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

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0, update_image: bool = True,
                 self_attention: str = "none", anchor: bool = False):  # fmt: skip
        super().__init__()
        if self_attention not in SELF_ATTENTION:
            raise ValueError(f"self_attention must be one of {', '.join(map(repr, SELF_ATTENTION))} (got {self_attention!r})")
        self.update_image = update_image
        self.self_attention = self_attention
        attns = []
        if self_attention != "none":  # words read words (residual; zero output at start)
            self.self_norm_t, self.text_self = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout=dropout)
            attns.append(self.text_self)
        if self_attention == "both":  # patches read patches
            self.self_norm_i, self.image_self = nn.LayerNorm(dim), MultiHeadAttention(dim, num_heads, dropout=dropout)
            attns.append(self.image_self)
        for attn in attns:
            nn.init.zeros_(attn.out_proj.weight)
            nn.init.zeros_(attn.out_proj.bias)
        self.anchor = AnchorBias(dim) if anchor else None  # the relation's side of the landmark (text->image)
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
        self, text: Tensor, image: Tensor, text_mask: Tensor | None = None, need_weights: bool = False,
        centroids: Tensor | None = None, coords: Tensor | None = None,
    ) -> FusionOutput:  # fmt: skip
        """text (B, T, D), image (B, P, D), text_mask (B, T) bool (True = real token); for a
        layer with an anchor, ``centroids`` (B, T, 2) where each token looked in the previous
        layer and ``coords`` (P, 2) the patch centres (no anchor bias when they are None)."""
        if self.self_attention != "none":
            text, image = self.self_attend(text, image, text_mask)
        t, i = self.norm_t(text), self.norm_i(image)
        # text queries image: every patch is a valid key
        bias = self.anchor(text, centroids, coords, text_mask) if self.anchor is not None and centroids is not None else None  # (B, 1, T, P)
        t_new, w_t2i = self.text_to_image(t, context=i, need_weights=need_weights, bias=bias)  # (B, T, D), (B, H, T, P)
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

    def self_attend(self, text: Tensor, image: Tensor, text_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The self-attention sublayer: text (B, T, D), image (B, P, D) -> the same, each
        stream plus what it read from itself (padding tokens are not keys)."""
        key_mask = None if text_mask is None else text_mask[:, None, None, :]  # (B, 1, 1, T)
        text = text + self.text_self(self.self_norm_t(text), mask=key_mask)[0]
        if self.self_attention == "both":
            image = image + self.image_self(self.self_norm_i(image))[0]
        return text, image
