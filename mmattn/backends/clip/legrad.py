"""LeGrad: where a text embedding looks in CLIP's vision tower, from the gradients of the
text-image similarity with respect to every layer's attention map.

LeGrad (Bousselham et al., ICCV 2025; reference code github.com/WalBouss/LeGrad, MIT,
``legrad/wrapper.py``: ``LeWrapper.compute_legrad_clip``). For a unit-norm text embedding t
and each vision block l from ``start_layer`` on (the reference's ``layer_index``, -2 by
default: the last two blocks):

1. the block's output tokens x_l (B, N, D) (after its MLP) are pooled as CLIP pools the last
   ones, but by their mean: f_l = normalize(proj(post_layernorm(mean over the N tokens)));
2. the score s_l = t · f_l is differentiated with respect to the block's attention map
   A_l = softmax(q kᵀ / √hd), (B, H, N, N);
3. ReLU of that gradient, averaged over heads and then over queries (all N rows, [CLS]
   included); the P patch columns are kept: (B, P).

The maps of the blocks are averaged (the reference sums them; it then min-max normalises
each map, so the two are the same). Index letters: B batch, W text queries (words) per
image, N tokens (= 1 + P, [CLS] first), P patches (= gh * gw, row-major), H heads,
hd head width, D the tower's width, E the joint width.

Scale: the reference min-max normalises each prompt's map on its own. :func:`normalize`
offers that (``"word"``) and mmattn's convention, one scale shared by the words of a caption
(``"caption"``: min-max over all of its words together), so that a word that looks nowhere
in particular stays faint next to one that looks at one object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

START_LAYER = -2  #: the first vision block whose attention LeGrad reads (the reference's default)


def attention_block(layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """One CLIP vision block with its attention map in the graph: x (B, N, D) ->
    (output (B, N, D), attention (B, H, N, N)). The same arithmetic as transformers'
    ``CLIPEncoderLayer`` with eager attention."""
    attn = layer.self_attn
    B, N, D = x.shape
    H = attn.num_heads
    h = layer.layer_norm1(x)
    q, k, v = (proj(h).view(B, N, H, D // H).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))  # (B, H, N, hd)
    weights = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)  # (B, H, N, N)
    x = x + attn.out_proj((weights @ v).transpose(1, 2).reshape(B, N, D))
    return x + layer.mlp(layer.layer_norm2(x)), weights


def legrad(
    vision_model: nn.Module, visual_projection: nn.Module, pixels: Tensor, text: Tensor, *, start_layer: int = START_LAYER
) -> Tensor:
    """LeGrad relevance of every patch for every text query.

    vision_model: a transformers CLIP (or Chinese-CLIP) vision tower; visual_projection its
    projection to the joint space; pixels (B, 3, h, w), sides multiples of the patch size;
    text (B, W, E) unit-norm text embeddings (W queries per image) -> (B, W, P) relevance,
    >= 0, averaged over the blocks from ``start_layer`` on, not normalised (see :func:`normalize`).
    Needs autograd (it runs outside ``torch.inference_mode``); parameters get no gradients."""
    vm = vision_model
    layers = vm.encoder.layers
    if not -len(layers) <= start_layer < len(layers):
        raise ValueError(f"start_layer {start_layer} does not exist: the vision tower has {len(layers)} blocks")
    if text.dim() != 3 or text.size(0) != pixels.size(0):
        raise ValueError(f"text must be (B, W, E) with B = {pixels.size(0)} images (got {tuple(text.shape)})")
    start = start_layer % len(layers)
    relevance = []
    with torch.inference_mode(False), torch.enable_grad():
        pixels, text = pixels.clone(), text.detach().clone()  # usable by autograd even if made in inference mode
        with torch.no_grad():
            x = vm.pre_layrnorm(vm.embeddings(pixels, interpolate_pos_encoding=True))  # (B, N, D)
            for layer in layers[:start]:
                x = layer(x, None)
        x = x.clone().requires_grad_(True)  # the graph starts here: only the attention maps are differentiated
        for layer in layers[start:]:
            x, weights = attention_block(layer, x)  # (B, N, D), (B, H, N, N)
            image = F.normalize(visual_projection(vm.post_layernorm(x.mean(1))), dim=-1)  # (B, E), mean-pooled
            # one vector-Jacobian product per query: d(t_w · image)/d(weights) for all w at once
            (grad,) = torch.autograd.grad(image, weights, grad_outputs=text.transpose(0, 1), retain_graph=True, is_grads_batched=True)
            relevance.append(grad.clamp(min=0).mean(2).mean(2)[..., 1:].transpose(0, 1))  # (W, B, H, N, N) -> (B, W, P)
    return torch.stack(relevance).mean(0).detach()  # (B, W, P)


def normalize(maps: Tensor, scale: str = "caption", keep: Tensor | None = None) -> Tensor:
    """Min-max LeGrad maps (B, W, P) to [0, 1]: over each caption's words together
    (``"caption"``, mmattn's one shared scale) or each word alone (``"word"``, the reference's).
    ``keep`` (B, W) bool: the words that take part in a caption's min and max (others -> 0)."""
    if scale not in ("caption", "word"):
        raise ValueError(f"scale must be 'caption' or 'word' (got {scale!r})")
    keep = torch.ones(maps.shape[:2], dtype=torch.bool, device=maps.device) if keep is None else keep.bool()
    dims = (1, 2) if scale == "caption" else (2,)
    mask = keep[..., None].expand_as(maps)
    lo = maps.masked_fill(~mask, torch.inf).amin(dims, keepdim=True)
    hi = maps.masked_fill(~mask, -torch.inf).amax(dims, keepdim=True)
    span = hi - lo
    out = (maps - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return out.masked_fill(~mask, 0.0).nan_to_num(0.0)
