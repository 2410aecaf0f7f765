"""Direct transcriptions of the reference implementations, written apart from mmattn's code,
for parity tests on a tiny random transformers CLIP.

They follow the reference code's own steps and layout (sequence-first ``(N, B, D)`` tensors,
packed ``in_proj`` weights as in ``nn.MultiheadAttention``, ``bmm`` over ``B * heads``), so a
test that compares them with mmattn's readable versions checks the maths, not the layout.

- NACLIP: github.com/sinahmr/NACLIP (MIT), ``clip/model.py``: ``VisionTransformer.forward``
  with ``arch='reduced'``, ``custom_attn`` with ``attn_strategy='naclip'``,
  ``gaussian_window`` and ``get_attention_addition``; ``naclip.py`` (``gaussian_std=5.``,
  ``encode_image(img, return_all=True)[:, 1:]`` then L2-normalised).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def last_block_input(vision_model, pixels):
    """The input of CLIP's last vision block, (N, B, D) sequence-first, and the patch grid,
    captured from transformers' own forward (interpolated positions)."""
    seen = {}

    def grab(module, args):
        seen["x"] = args[0]  # returns None: the input is left as it is

    hook = vision_model.encoder.layers[-1].register_forward_pre_hook(grab)
    try:
        vision_model(pixel_values=pixels, interpolate_pos_encoding=True)
    finally:
        hook.remove()
    p = vision_model.config.patch_size
    return seen["x"].permute(1, 0, 2), (pixels.shape[-2] // p, pixels.shape[-1] // p)


def packed_in_proj(attn):
    """transformers' q/k/v projections as ``nn.MultiheadAttention``'s packed in_proj (3D, D)."""
    w = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
    b = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
    return w, b


# ---- NACLIP ------------------------------------------------------------------------------------
def gaussian_window(dim1, dim2, std=1.0):
    """The reference's window: a (dim1, dim2) Gaussian of ``std`` (in cells) centred in the grid."""
    constant = 1 / (std * math.sqrt(2))
    axes = []
    for dim in (dim1, dim2):
        start = -(dim - 1) / 2.0
        axes.append(torch.linspace(start * constant, (start + dim - 1) * constant, steps=dim))
    return torch.exp(-(torch.stack(torch.meshgrid(*axes, indexing="ij")) ** 2).sum(0))


def attention_addition(dim1, dim2, window):
    """The reference's bias: every patch's one-hot map convolved with the window ('same'
    padding), so entry (i, j) is the window value at j's offset from i; a zero row and column
    for [CLS] in front."""
    one_hot = torch.einsum("ij,kl->ijkl", torch.eye(dim1), torch.eye(dim2)).permute(0, 3, 1, 2).contiguous()
    out = F.conv2d(one_hot.view(-1, dim1, dim2).unsqueeze(1), window[None, None], padding="same").squeeze(1)
    out = out.view(dim1 * dim2, dim1 * dim2)
    out = torch.vstack([torch.zeros(1, dim1 * dim2), out])
    return torch.hstack([torch.zeros(dim1 * dim2 + 1, 1), out])


def naclip_reference(clip_model, pixels, std=5.0, *, key_key=True, gaussian=True, reduced=True):
    """Unit-norm patch features (B, P, E) of NACLIP on a transformers CLIPModel, transcribed.

    The three switches are the ablations of the method: ``key_key=False`` uses query-key
    logits, ``gaussian=False`` drops the neighbourhood bias, ``reduced=False`` keeps the last
    block's residual connection and MLP (the reference's ``arch='vanilla'``)."""
    vm = clip_model.vision_model
    x, n_patches = last_block_input(vm, pixels)  # (N, B, D)
    blk = vm.encoder.layers[-1]
    attn = blk.self_attn
    num_tokens, bsz, embed_dim = x.shape
    num_heads = attn.num_heads
    head_dim = embed_dim // num_heads
    scale = head_dim**-0.5

    def custom_attn(h):
        w, b = packed_in_proj(attn)
        q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
        q = q.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
        weights = torch.bmm(k if key_key else q, k.transpose(1, 2)) * scale
        if gaussian:
            window = gaussian_window(*[side * 2 - 1 for side in n_patches], std=std)
            weights = weights + attention_addition(*n_patches, window).unsqueeze(0)
        weights = F.softmax(weights, dim=-1)
        out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(-1, bsz, embed_dim)
        return attn.out_proj(out)

    if reduced:
        x = custom_attn(blk.layer_norm1(x))
    else:
        x = x + custom_attn(blk.layer_norm1(x))
        x = x + blk.mlp(blk.layer_norm2(x))
    x = x.permute(1, 0, 2)  # (B, N, D)
    feats = clip_model.visual_projection(vm.post_layernorm(x))[:, 1:]  # ln_post(x) @ proj, [CLS] dropped
    return feats / feats.norm(dim=-1, keepdim=True)

