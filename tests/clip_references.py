"""Direct transcriptions of the reference implementations, written apart from mmattn's code,
for parity tests on a tiny random transformers CLIP.

They follow the reference code's own steps and layout (sequence-first ``(N, B, D)`` tensors,
packed ``in_proj`` weights as in ``nn.MultiheadAttention``, ``bmm`` over ``B * heads``), so a
test that compares them with mmattn's readable versions checks the maths, not the layout.

- NACLIP: github.com/sinahmr/NACLIP (MIT), ``clip/model.py``: ``VisionTransformer.forward``
  with ``arch='reduced'``, ``custom_attn`` with ``attn_strategy='naclip'``,
  ``gaussian_window`` and ``get_attention_addition``; ``naclip.py`` (``gaussian_std=5.``,
  ``encode_image(img, return_all=True)[:, 1:]`` then L2-normalised).
- LeGrad: github.com/WalBouss/LeGrad (MIT), ``legrad/wrapper.py``:
  ``LeWrapper.compute_legrad_clip`` (default ``layer_index=-2``), ``legrad/utils.py``:
  ``hooked_attention_forward`` (the attention map is the softmax output) and
  ``hooked_resblock_forward`` (``feat_post_mlp``), ``min_max``.
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


# ---- LeGrad ------------------------------------------------------------------------------------
def min_max(maps):
    """The reference's normalisation: each (batch, prompt) map to [0, 1] on its own."""
    B, n = maps.shape[:2]
    lo = maps.reshape(B, n, -1).min(-1, keepdim=True)[0].unsqueeze(-1)
    hi = maps.reshape(B, n, -1).max(-1, keepdim=True)[0].unsqueeze(-1)
    return (maps - lo) / (hi - lo)


def legrad_reference(clip_model, pixels, text_embedding, layer_index=-2):
    """LeGrad's accumulated relevance for one image (1, 3, h, w) and prompts (n, E), unit-norm:
    (n, gh, gw) on the patch grid, before the reference's upsampling and min-max (the
    upsampling is display; :func:`min_max` is applied by the caller where compared).

    As in the reference, the image is repeated once per prompt, each block from
    ``layer_index`` on records its attention map (the softmax output, (n*heads, N, N)) and its
    output (``feat_post_mlp``, (N, n, D)); per block, the score is the sum over prompts of
    ``text_embedding[i] · normalize(ln_post(mean over tokens of feat_post_mlp) @ proj)[i]``,
    its gradient w.r.t. the attention map is clamped at 0, averaged over heads, then over
    queries, and the patch columns are kept; the blocks' maps are summed."""
    vm = clip_model.vision_model
    num_prompts = text_embedding.shape[0]
    image = pixels.repeat(num_prompts, 1, 1, 1)
    p = vm.config.patch_size
    w, h = image.shape[-2] // p, image.shape[-1] // p
    blocks = vm.encoder.layers
    starting_depth = layer_index if layer_index >= 0 else len(blocks) + layer_index
    with torch.enable_grad():
        x = vm.pre_layrnorm(vm.embeddings(image, interpolate_pos_encoding=True)).permute(1, 0, 2)  # (N, n, D)
        x = x.detach().requires_grad_(True)  # the reference enables grads on these blocks' parameters
        attention_maps, feats = [], []
        for depth, blk in enumerate(blocks):
            if depth < starting_depth:
                x = blk(x.permute(1, 0, 2), None).permute(1, 0, 2)
                continue
            attn = blk.self_attn
            L, N, C = x.shape
            q_x = blk.layer_norm1(x)
            wq, bq = packed_in_proj(attn)
            q, k, v = F.linear(q_x, wq, bq).chunk(3, dim=-1)
            q = q.contiguous().view(L, N * attn.num_heads, -1).transpose(0, 1)
            k = k.contiguous().view(L, N * attn.num_heads, -1).transpose(0, 1)
            v = v.contiguous().view(L, N * attn.num_heads, -1).transpose(0, 1)
            q = q * float(q.shape[-1]) ** -0.5
            a = torch.bmm(q, k.transpose(-1, -2)).softmax(dim=-1)
            attention_maps.append(a)  # (n*heads, N, N)
            out = attn.out_proj(torch.bmm(a, v).transpose(0, 1).reshape(L, N, C))
            x = x + out
            x = x + blk.mlp(blk.layer_norm2(x))
            feats.append(x)  # feat_post_mlp
        accum = 0
        for a, feat in zip(attention_maps, feats):
            img = F.normalize(clip_model.visual_projection(vm.post_layernorm(feat.mean(dim=0))), dim=-1)  # (n, E)
            sim = text_embedding @ img.transpose(-1, -2)  # (n, n)
            one_hot = torch.sum(F.one_hot(torch.arange(num_prompts)).float() * sim)
            grad = torch.autograd.grad(one_hot, [a], retain_graph=True)[0]
            grad = grad.view(num_prompts, -1, *grad.shape[-2:]).clamp(min=0.0)  # (n, heads, N, N)
            relevance = grad.mean(dim=1).mean(dim=1)[:, 1:]  # heads, then queries; patch columns
            accum = accum + relevance.reshape(num_prompts, w, h)
    return accum
