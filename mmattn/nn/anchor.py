"""AnchorBias: where a relation says the referent is, added to its cross-attention.

"The circle left of the square" with two circles: cross-attention alone finds both circles
(the word "circle" matches both), so the caption's relation must move the circle's map to
the one on the square's left. This module turns the caption into a relative-position term
of the text->image attention scores of a fusion layer (as a relative positional encoding):

    anchor  c = sum_t a_t centroid_t      where the landmark is: the centroid of its words'
                                          maps in the previous layer, a = softmax over tokens
    direction u = sum_t r_t dir(x_t)      which way the relation points (from "left", "上面"),
                                          r = softmax over tokens
    bias[t, p] = S g_t ((pos_p - c) . u)  a bonus for patches on that side of the landmark,
                                          for the words that name the referent (gate g_t)

S = 8 is a fixed scale (as 1/sqrt(d) in attention): a bias of a few units is what it takes
to move a softmax over patches, and the gate and the direction, both small linear reads,
would take many steps to grow that large on their own (measured: without it, 75
fine-tuning steps left the bias below 0.2 and the referent found in 0.39 of scenes).

Index letters: B captions, T tokens, P patches, D width. The gate starts at zero, so a layer
with an AnchorBias starts as the layer without it. With positions off (the demo's
experiment) the bias is switched off too: it is made of positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SCALE = 8.0  #: S above


class AnchorBias(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.roles = nn.Linear(dim, 2)  # token scores: landmark, relation word
        self.direction = nn.Linear(dim, 2)  # each token's direction (x, y) in image coordinates
        self.gate = nn.Linear(dim, 1)  # how strongly each token's map follows the relation
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, text: Tensor, centroids: Tensor, coords: Tensor, mask: Tensor | None = None) -> Tensor:
        """text (B, T, D), centroids (B, T, 2) where each token looked in the previous layer,
        coords (P, 2) patch centres in [-1, 1], mask (B, T) bool -> bias (B, 1, T, P)."""
        x = self.norm(text)
        gate = self.gate(x)  # (B, T, 1)
        scores = self.roles(x)  # (B, T, 2)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., None], float("-inf"))
        roles = scores.softmax(dim=1)  # (B, T, 2): each role's weights sum to 1 over the tokens
        anchor = torch.einsum("bt,btx->bx", roles[..., 0], centroids)  # (B, 2)
        u = torch.einsum("bt,btx->bx", roles[..., 1], self.direction(x))  # (B, 2)
        side = (coords[None] - anchor[:, None]) @ u[..., None]  # (B, P, 1): how far along u from the anchor
        #: what it read, for the training loss that supervises it (mmattn.training.train)
        self.parts = {"roles": roles, "direction": u, "gate": gate[..., 0]}
        return SCALE * (gate @ side.transpose(1, 2))[:, None]  # (B, T, 1) @ (B, 1, P) -> (B, 1, T, P)
