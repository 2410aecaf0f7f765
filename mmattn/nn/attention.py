"""Attention, spelled out the way the essays teach it.

Index letters used in this module (and across mmattn):
    B  batch            H  heads          hd  head width (= D // H)
    Lq query positions  Lk key positions  D   model width

Masks are boolean and mean **True = may attend**. They broadcast to (B, H, Lq, Lk).
A query row whose keys are all masked gets zero weights and a zero output (never NaN).

Attention always returns ``(output, weights)``. Asking for weights runs the eager,
three-stage computation and the weights are never None; not asking takes PyTorch's fused
``F.scaled_dot_product_attention`` kernel and the weights are None. (In inference, the
eager stages run on transposed features, which splits and merges the heads without copies:
see ``MultiHeadAttention._transposed``.)
:class:`AttentionWeights` is the first two stages alone (Q, K, softmax: no V, no output),
for a layer whose weights are read but whose output would feed nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_mask(mask: Tensor | None) -> None:
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")


def _empty_rows(mask: Tensor | None) -> Tensor | None:
    """(..., Lq, 1), True where a query may attend to no key at all; None when no row is
    empty (the usual case: key padding always keeps [CLS]), so callers can skip a pass."""
    if mask is None:
        return None
    empty = ~mask.any(dim=-1, keepdim=True)
    return empty if empty.any() else None


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None, scale: float | None = None, bias: Tensor | None = None) -> Tensor:
    """Stages 1 and 2 of attention: softmax(Q Kᵀ / √d_k [+ bias]) per row.

    Shapes: q (..., Lq, d_k), k (..., Lk, d_k), mask broadcastable to (..., Lq, Lk) with
    True = may attend  ->  weights (..., Lq, Lk), rows summing to 1 (fully masked rows: 0).
    ``bias`` (broadcastable to (..., Lq, Lk), float) is added to the scores before the
    softmax (a relative-position term, :class:`mmattn.nn.anchor.AnchorBias`).
    """
    _check_mask(mask)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    # 1. match: every query against every key at once — a matrix of dot products, scaled
    #    by 1/√d_k (the std of a dot product of unit-variance entries). Scaling q instead of
    #    the scores is the same product on a tensor Lk/d_k times smaller (torch does it too).
    scores = (q * scale if scale != 1.0 else q) @ k.transpose(-2, -1)  # (..., Lq, Lk)
    # Without autograd the stages below reuse the scores' memory (the only big tensor):
    # same numbers, no second (..., Lq, Lk) buffer to allocate and page in.
    inplace = not (torch.is_grad_enabled() and scores.requires_grad)
    if bias is not None:
        scores = scores.add_(bias) if inplace and not bias.requires_grad else scores + bias
        inplace = not (torch.is_grad_enabled() and scores.requires_grad)
    # 2. normalise: masked keys get -inf ...
    if mask is not None:
        scores = scores.masked_fill_(~mask, float("-inf")) if inplace else scores.masked_fill(~mask, float("-inf"))
    # ... then softmax per row, so each query's weights form a distribution over keys.
    weights = torch.softmax(scores, dim=-1, out=scores) if inplace else torch.softmax(scores, dim=-1)  # (..., Lq, Lk)
    empty = _empty_rows(mask)
    if empty is not None:  # a row with no allowed key is all -inf -> NaN after softmax; it attends to nothing.
        weights = weights.masked_fill(empty, 0.0)
    return weights


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0, scale: float | None = None,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Softmax(Q Kᵀ / √d_k) V, in three visible stages.

    Shapes: q (..., Lq, d_k), k (..., Lk, d_k), v (..., Lk, d_v), mask broadcastable to
    (..., Lq, Lk) with True = may attend  ->  out (..., Lq, d_v), weights (..., Lq, Lk).
    Each row of ``weights`` sums to 1, except fully masked rows, which are all zeros.
    ``scale`` replaces 1/√d_k (as in ``F.scaled_dot_product_attention``); 1.0 for queries
    that are already scaled.
    """
    weights = attention_weights(q, k, mask, scale, bias)  # (..., Lq, Lk); checks the mask
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    # 3. read: each output row is the weighted sum of the value rows.
    out = attn @ v  # (..., Lq, d_v)
    return out, weights


class _Heads(nn.Module):
    """What every attention here shares: H heads of width D/H, and the query and key
    projections that decide where each query looks."""

    def __init__(self, dim: int, num_heads: int, *, bias: bool = True):
        super().__init__()
        if dim <= 0 or num_heads <= 0:
            raise ValueError(f"dim and num_heads must be positive (got dim={dim}, num_heads={num_heads})")
        if dim % num_heads:
            raise ValueError(f"dim must be divisible by num_heads (got dim={dim}, num_heads={num_heads})")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, H, L, hd): cut the feature axis into H heads."""
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)

    def _inputs(self, x: Tensor, context: Tensor | None, mask: Tensor | None) -> Tensor:
        """Check the inputs; returns the context (x itself for self-attention)."""
        _check_mask(mask)
        context = x if context is None else context
        if x.dim() != 3 or context.dim() != 3 or x.size(-1) != self.dim or context.size(-1) != self.dim:
            raise ValueError(
                f"expected x and context of shape (B, L, {self.dim}), got {tuple(x.shape)} and {tuple(context.shape)}"
            )
        return context


class MultiHeadAttention(_Heads):
    """Multi-head attention: H heads of width D/H, each with its own softmax, mixed by out_proj.

    Self-attention when ``context`` is None (Q, K, V all from ``x``); cross-attention
    otherwise (Q from ``x``, K and V from ``context``: "x understands context").

    Args:
        dim: model width D (input and output).
        num_heads: number of heads H; must divide ``dim``.
        dropout: dropout on the attention weights while training.
        bias: whether the four projections have biases.
    """

    def __init__(self, dim: int, num_heads: int, *, dropout: float = 0.0, bias: bool = True):
        super().__init__(dim, num_heads, bias=bias)
        self.dropout = dropout
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def _packed_qkv(self) -> tuple[Tensor, Tensor | None]:
        """W_q/√hd, W_k, W_v stacked into one (3D, D) matrix (and the biases into one 3D
        vector): one matmul gives Q already scaled, K and V. Cached until any of them changes
        (an optimiser step or a load bumps their version)."""
        params = [self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]
        biases = [self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]
        tensors = params + [b for b in biases if b is not None]
        # weights made under torch.inference_mode() have no version counter: never cached
        key = None if any(p.is_inference() for p in tensors) else tuple((p.data_ptr(), p._version) for p in tensors)
        if key is None or getattr(self, "_qkv_key", None) != key:
            s = 1.0 / math.sqrt(self.head_dim)
            with torch.no_grad():
                bias = torch.cat([biases[0] * s, *biases[1:]]) if biases[0] is not None else None
                self._qkv = (torch.cat([params[0] * s, *params[1:]]), bias)
            self._qkv_key = key
        return self._qkv

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, L, hd) -> (B, L, D): concatenate the heads again."""
        B, _, L, _ = x.shape
        return x.transpose(1, 2).reshape(B, L, self.dim)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
        bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, Lq, D), context (B, Lk, D) or None, mask broadcastable to (B, H, Lq, Lk)
        -> out (B, Lq, D), weights (B, H, Lq, Lk) post-softmax if need_weights else None.
        ``bias`` (float, broadcastable to (B, H, Lq, Lk)) is added to the scores."""
        context = self._inputs(x, context, mask)
        p = self.dropout if self.training else 0.0
        if need_weights and p == 0 and not torch.is_grad_enabled():  # the three stages on transposed features
            return self._transposed(x, context, mask, bias)
        scale = None  # 1/√hd, applied by the attention
        if context is x and not torch.is_grad_enabled():  # self-attention, inference: one matmul for Q, K and V
            B, L, _ = x.shape
            qkv = F.linear(x, *self._packed_qkv()).view(B, L, 3, self.num_heads, self.head_dim)  # (B, L, 3, H, hd)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # 3 x (B, H, L, hd), one copy for all three
            scale = 1.0  # the packed weights already scaled Q
        else:
            q = self.split_heads(self.q_proj(x))  # (B, H, Lq, hd)
            k = self.split_heads(self.k_proj(context))  # (B, H, Lk, hd)
            v = self.split_heads(self.v_proj(context))  # (B, H, Lk, hd)
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p, scale=scale, bias=bias)
        else:
            weights = None
            attn_mask = mask
            if bias is not None:  # one float mask: the bias where a key may be read, -inf where not
                attn_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, scale=scale)
            empty = _empty_rows(mask)
            if empty is not None:  # the fused kernel may give NaN on fully masked rows; make them 0
                out = out.masked_fill(empty, 0.0)
        return self.out_proj(self.merge_heads(out)), weights  # (B, Lq, D)

    def _transposed(self, x: Tensor, context: Tensor, mask: Tensor | None, bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The same attention with weights, for inference, on transposed features.

        Projected as Qᵀ = W_q Xᵀ, (B, D, L), the features of each head are hd whole rows,
        so (B, D, L) *is* (B, H, hd, L): the heads split with no copy, Qᵀ and Kᵀ feed
        stage 1 as they are, stage 3 is computed transposed (Vᵀ Aᵀ = (A V)ᵀ, again
        (B, D, Lq) with the heads already concatenated) and out_proj reads it transposed.
        No head split or merge copies: 27% less fresh memory than the (B, L, D) layout,
        which on this CPU made it 7-19% faster than torch's fused C++ path (bench/attention.py).
        Same numbers as ``forward``'s general path (tested)."""
        B, Lq, D = x.shape
        Lk, H, hd = context.size(1), self.num_heads, self.head_dim
        scale = 1.0 / math.sqrt(hd)
        qT = _linear_t(self.q_proj, x, scale).view(B, H, hd, Lq)  # (B, D, Lq) -> heads, no copy
        kT = _linear_t(self.k_proj, context).view(B, H, hd, Lk)
        vT = _linear_t(self.v_proj, context).view(B, H, hd, Lk)
        weights = attention_weights(qT.transpose(-2, -1), kT.transpose(-2, -1), mask, scale=1.0, bias=bias)  # (B, H, Lq, Lk)
        outT = vT @ weights.transpose(-2, -1)  # 3. read, transposed: (B, H, hd, Lq) = (B, D, Lq)
        W, b = self.out_proj.weight, self.out_proj.bias  # out = O W_oᵀ + b with O = (outT)ᵀ, a view
        O, Wt = outT.view(B, D, Lq).transpose(1, 2), W.t().expand(B, D, D)
        out = torch.bmm(O, Wt) if b is None else torch.baddbmm(b.expand(B, Lq, D), O, Wt)  # (B, Lq, D)
        return out, weights


def _linear_t(linear: nn.Linear, x: Tensor, scale: float = 1.0) -> Tensor:
    """``scale * linear(x)``, transposed: x (B, L, D) -> (B, D_out, L), contiguous."""
    B, L, _ = x.shape
    W = linear.weight.expand(B, *linear.weight.shape)  # (B, D_out, D), no copy
    if linear.bias is None:
        out = torch.bmm(W, x.transpose(1, 2))
        return out.mul_(scale) if scale != 1.0 else out
    b = linear.bias[:, None].expand(B, linear.weight.size(0), L)
    return torch.baddbmm(b, W, x.transpose(1, 2), beta=scale, alpha=scale)


class AttentionWeights(_Heads):
    """Where H heads look, without reading anything: Q and K projections and the row-wise
    softmax of :class:`MultiHeadAttention`, but no V and no output.

    For a layer whose attention weights are wanted (shown, supervised) but whose output would
    feed nothing, such as the image stream of the last fusion layer: computing V, out_proj
    and an MLP there would be work for a result no one reads.
    """

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, Lq, D), context (B, Lk, D) or None (self), mask broadcastable to (B, H, Lq, Lk)
        -> weights (B, H, Lq, Lk) post-softmax."""
        context = self._inputs(x, context, mask)
        q = self.split_heads(self.q_proj(x))  # (B, H, Lq, hd)
        k = self.split_heads(self.k_proj(context))  # (B, H, Lk, hd)
        return attention_weights(q, k, mask)
