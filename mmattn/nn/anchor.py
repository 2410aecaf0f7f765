"""AnchorBias: where a relation says the referent is, added to its cross-attention.

"The circle left of the square" with two circles: cross-attention alone finds both circles
(the word "circle" matches both), so the caption's relation must move the circle's map to
the one on the square's left. This module turns the caption into a relative-position term
of the text->image attention scores of a fusion layer (as a relative positional encoding):

    anchor  c = sum_t a_t centroid_t      where the landmark is: the centroid of its words'
                                          maps in the previous layer, a = softmax over tokens
    direction u = sum_t r_t dir(x_t)      which way the relation points (from "left", "上面"),
                                          r = softmax over tokens
    d_p = pos_p - c                       each patch seen from the landmark
    wedge_p = min(0, tanh(K (d_p . u - |d_p . u_perp|)))
                                          0 inside the relation's 90-degree wedge (the patch
                                          is further along u than across it: "left of" means
                                          more left than up or down), down to -1 outside
    g_t = sigmoid(w . x_t + b)            which words name the referent: ~1 for them, ~0 for
                                          every other word and every caption without a relation
    bias[t, p] = S g_t wedge_p            a penalty outside the wedge, for those words

A wedge, not a half-plane or a ramp, because that is what the relation means: the circle
"left of" the square may stand a little higher than it, the one below it a little to its
left. Positions are measured in one unit along both axes (the longer side spans [-1, 1]),
so the wedge is square in pixels whatever the picture's shape. Measured on 384 held-out
relational scenes with the caption's true roles, direction and gate (the referent's map
peak on the referent): a ramp ``(d . u)`` finds 0.89 (and pulls the map to the picture's
edge as it grows: 0.31 at S = 64), a half-plane 0.76, the wedge 0.98. Only a penalty, no
bonus inside: a bonus that fades towards the wedge's point drew a referent standing next to
its landmark onto its far half (its box IoU 0.55 instead of 0.67 with the same weights);
inside the wedge the word's own attention decides, as everywhere else.

S = 24 and K = 4 are fixed scales (as 1/sqrt(d) in attention): a penalty of several units
is what it takes to empty a patch's share of a softmax, and the gate, a small linear read,
would take many steps to grow that large on its own.

The gate is a sigmoid, not a free linear read: a linear gate trained towards 0 on the other
words still left them +-0.05, which, times S, cut the maps of large objects in captions with
no relation at all (box IoU of large objects 0.63-0.73 against 0.77-0.85 with the AnchorBias
removed from the same weights).

Index letters: B captions, T tokens, P patches, D width. The gate starts at 2e-9, so a layer
with an AnchorBias starts as the layer without it. With positions off (the demo's
experiment) the bias is switched off too: it is made of positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALE = 24.0  #: S above
SHARPNESS = 4.0  #: K above
GATE_START = -20.0  #: the gate's starting logit: sigmoid(-20) = 2e-9, so the layer starts as the one without it


class AnchorBias(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.roles = nn.Linear(dim, 2)  # token scores: landmark, relation word
        self.direction = nn.Linear(dim, 2)  # each token's direction (x, y) in image coordinates
        self.gate = nn.Linear(dim, 1)  # how strongly each token's map follows the relation (a logit)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, GATE_START)

    def forward(self, text: Tensor, centroids: Tensor, coords: Tensor, mask: Tensor | None = None) -> Tensor:
        """text (B, T, D), centroids (B, T, 2) where each token looked in the previous layer,
        coords (P, 2) patch centres, both in one unit along x and y (the longer side spans
        [-1, 1]; :func:`mmattn.models.encoders.patch_coordinates` with ``isotropic=True``),
        mask (B, T) bool -> bias (B, 1, T, P)."""
        x = self.norm(text)
        gate_logit = self.gate(x)  # (B, T, 1)
        gate = gate_logit.sigmoid()  # in (0, 1): never a bonus outside the wedge, and ~0 where it should be 0
        scores = self.roles(x)  # (B, T, 2)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., None], float("-inf"))
        roles = scores.softmax(dim=1)  # (B, T, 2): each role's weights sum to 1 over the tokens
        anchor = torch.einsum("bt,btx->bx", roles[..., 0], centroids)  # (B, 2)
        u = F.normalize(torch.einsum("bt,btx->bx", roles[..., 1], self.direction(x)), dim=-1, eps=1e-6)  # (B, 2)
        across = torch.stack([-u[:, 1], u[:, 0]], dim=-1)  # (B, 2): u turned by 90 degrees
        d = coords[None] - anchor[:, None]  # (B, P, 2)
        along, aside = d @ u[..., None], (d @ across[..., None]).abs()  # (B, P, 1) each
        wedge = torch.tanh(SHARPNESS * (along - aside)).clamp(max=0)  # (B, P, 1): 0 in the relation's wedge, to -1 outside
        #: what it read, for the training loss that supervises it (mmattn.training.train)
        self.parts = {"roles": roles, "direction": u, "gate": gate[..., 0], "gate_logit": gate_logit[..., 0]}
        return SCALE * (gate @ wedge.transpose(1, 2))[:, None]  # (B, T, 1) @ (B, 1, P) -> (B, 1, T, P)
