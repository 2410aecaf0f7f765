"""Specification of mmattn.attention.

- MultiHeadAttention computes exactly what torch.nn.MultiheadAttention computes, given
  the same weights (self- and cross-attention, with key padding), weights included.
- The eager path (need_weights=True) and the fused path (need_weights=False) agree.
- Masks are bool and mean True = may attend; a query with no allowed key gets zero
  weights and a zero output, never NaN, and gradients stay finite.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmattn.nn.attention import MultiHeadAttention, scaled_dot_product_attention

D, H = 32, 4
ATOL = 1e-5


def twin_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    """A torch.nn.MultiheadAttention holding exactly our q/k/v/out weights."""
    ref = nn.MultiheadAttention(ours.dim, ours.num_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref.eval()


def key_padding(lengths: list[int], lk: int) -> torch.Tensor:
    """(B, Lk) bool, True = real key (ours)."""
    return torch.arange(lk)[None, :] < torch.tensor(lengths)[:, None]


# ---- MultiHeadAttention == torch.nn.MultiheadAttention ----------------------------------


@pytest.mark.parametrize(
    "lq, lk, lengths",
    [
        (7, None, None),  # self-attention
        (7, None, [7, 4, 1]),  # self-attention, key padding
        (5, 11, None),  # cross-attention, Lq != Lk
        (5, 11, [11, 6, 2]),  # cross-attention, key padding
    ],
    ids=["self", "self-padded", "cross", "cross-padded"],
)
@pytest.mark.parametrize("need_weights", [True, False], ids=["eager", "fused"])
@pytest.mark.parametrize("autograd", [True, False], ids=["autograd", "inference"])
def test_matches_torch_multihead_attention(lq, lk, lengths, need_weights, autograd):
    """Every path: with autograd the three projections; in inference the transposed one
    with weights, the packed Q/K/V one (self-attention) or the plain one without."""
    ours = MultiHeadAttention(D, H).eval()
    ref = twin_torch_mha(ours)
    B = 3
    x = torch.randn(B, lq, D)
    context = None if lk is None else torch.randn(B, lk, D)
    kv = x if context is None else context
    valid = None if lengths is None else key_padding(lengths, kv.size(1))  # True = may attend
    mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, Lk)

    with torch.inference_mode(not autograd):
        out, weights = ours(x, context, mask=mask, need_weights=need_weights)
    ref_out, ref_weights = ref(
        x, kv, kv,
        key_padding_mask=None if valid is None else ~valid,  # torch: True = ignore
        need_weights=True, average_attn_weights=False,
    )  # fmt: skip

    assert out.shape == (B, lq, D)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=1e-5)
    if need_weights:
        assert weights.shape == (B, H, lq, kv.size(1))
        torch.testing.assert_close(weights, ref_weights, atol=ATOL, rtol=1e-5)
    else:
        assert weights is None


# ---- eager and fused paths agree ---------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_eager_and_fused_paths_agree(masked):
    mha = MultiHeadAttention(D, H).eval()
    x, context = torch.randn(2, 6, D), torch.randn(2, 9, D)
    mask = key_padding([9, 3], 9)[:, None, None, :] if masked else None

    eager_out, eager_w = mha(x, context, mask=mask, need_weights=True)
    fused_out, fused_w = mha(x, context, mask=mask, need_weights=False)

    torch.testing.assert_close(eager_out, fused_out, atol=ATOL, rtol=1e-5)
    assert fused_w is None
    assert eager_w is not None and eager_w.shape == (2, H, 6, 9)


def test_weights_are_never_none_when_asked_for():
    mha = MultiHeadAttention(D, H).eval()
    x = torch.randn(1, 4, D)
    for mask in (None, torch.ones(1, 1, 1, 4, dtype=torch.bool), torch.zeros(1, 1, 1, 4, dtype=torch.bool)):
        _, w = mha(x, mask=mask, need_weights=True)
        assert w is not None and w.shape == (1, H, 4, 4)
        _, w = mha(x, mask=mask, need_weights=False)
        assert w is None


def test_per_query_mask_broadcasts_to_batch_heads_queries_keys():
    mha = MultiHeadAttention(D, H).eval()
    x = torch.randn(2, 5, D)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()  # (Lq, Lk), broadcast over B and H
    out, w = mha(x, mask=causal, need_weights=True)
    assert w.shape == (2, H, 5, 5)
    assert (w.masked_select(~causal) == 0).all()
    fused, _ = mha(x, mask=causal)
    torch.testing.assert_close(out, fused, atol=ATOL, rtol=1e-5)


# ---- scaled_dot_product_attention ---------------------------------------------------------


def qkv(b=2, h=H, lq=5, lk=7, d=8):
    return torch.randn(b, h, lq, d), torch.randn(b, h, lk, d), torch.randn(b, h, lk, d)


def test_sdpa_is_softmax_of_scaled_scores_times_values():
    q, k, v = qkv()
    out, w = scaled_dot_product_attention(q, k, v)
    expected_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    torch.testing.assert_close(w, expected_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, expected_w @ v, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_sdpa_matches_torch_fused_kernel(masked):
    q, k, v = qkv()
    mask = torch.rand(2, 1, 5, 7) > 0.4 if masked else None
    if masked:
        mask[..., 0] = True  # every query keeps at least one key
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # bool: True = take part, same convention
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-5)


def test_weight_rows_sum_to_one_and_masked_keys_get_exactly_zero():
    q, k, v = qkv()
    mask = torch.rand(2, H, 5, 7) > 0.5
    mask[..., 3] = True
    _, w = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, H, 5))
    assert (w[~mask] == 0).all()  # exactly zero, not merely small
    assert (w[mask] > 0).all()


def test_fully_masked_query_row_gives_finite_zeros_on_both_paths():
    q, k, v = qkv(lq=3, lk=5)
    mask = torch.ones(2, 1, 3, 5, dtype=torch.bool)
    mask[0, 0, 1] = False  # query 1 of sample 0 may attend to nothing
    mask[1, 0, :, 2:] = False  # an ordinary partial mask next to it

    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert (w[0, :, 1] == 0).all() and (out[0, :, 1] == 0).all()
    torch.testing.assert_close(w[1].sum(-1), torch.ones(H, 3))  # the other rows are untouched

    # module level: the heads give zeros, so the row's output is the out_proj bias, on both paths
    mha = MultiHeadAttention(D, H).eval()
    x, context = torch.randn(2, 3, D), torch.randn(2, 5, D)
    for need_weights in (True, False):
        y, w = mha(x, context, mask=mask, need_weights=need_weights)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y[0, 1], mha.out_proj.bias.detach().expand(D), atol=1e-6, rtol=0)
        if need_weights:
            assert (w[0, :, 1] == 0).all()


@pytest.mark.parametrize("need_weights", [True, False], ids=["eager", "fused"])
def test_fully_masked_rows_keep_gradients_finite(need_weights):
    mha = MultiHeadAttention(D, H)
    x = torch.randn(2, 3, D, requires_grad=True)
    context = torch.randn(2, 5, D, requires_grad=True)
    mask = torch.ones(2, 1, 3, 5, dtype=torch.bool)
    mask[0, 0, 1] = False
    mask[1] = False  # a whole sample with no valid key
    out, _ = mha(x, context, mask=mask, need_weights=need_weights)
    out.square().sum().backward()
    grads = {"x": x.grad, "context": context.grad} | {n: p.grad for n, p in mha.named_parameters()}
    for name, g in grads.items():
        assert g is not None and torch.isfinite(g).all(), name


def test_sdpa_gradients_finite_with_fully_masked_row():
    q, k, v = (t.requires_grad_() for t in qkv(lq=3, lk=5))
    mask = torch.ones(1, 1, 3, 5, dtype=torch.bool)
    mask[..., 0, :] = False
    out, w = scaled_dot_product_attention(q, k, v, mask)
    (out.sum() + w.square().sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


# ---- errors -------------------------------------------------------------------------------


def test_dim_not_divisible_by_heads_is_a_value_error_naming_both():
    with pytest.raises(ValueError, match=r"dim=30.*num_heads=4"):
        MultiHeadAttention(30, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.long, torch.uint8])
def test_non_bool_mask_is_a_type_error(dtype):
    mha = MultiHeadAttention(D, H)
    x = torch.randn(1, 4, D)
    mask = torch.ones(1, 1, 1, 4, dtype=dtype)
    for need_weights in (True, False):
        with pytest.raises(TypeError, match="bool"):
            mha(x, mask=mask, need_weights=need_weights)
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(*qkv(b=1, lq=4, lk=4), mask)


def test_inference_path_reuses_memory_but_gives_the_same_numbers():
    """Without autograd the stages run in place on the scores; with it they must not."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, :, :, 3:] = False
    mask[1, :, 2, :] = False  # a fully masked row
    qg = q.clone().requires_grad_()
    out_g, w_g = scaled_dot_product_attention(qg, k, v, mask)
    out_g.sum().backward()  # autograd path: nothing was overwritten
    with torch.inference_mode():
        out_i, w_i = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out_i, out_g.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(w_i, w_g.detach(), rtol=0, atol=1e-6)
    assert torch.isfinite(qg.grad).all()
    assert w_i[1, :, 2].abs().sum() == 0 and w_i[0, :, :, 3:].abs().sum() == 0


@pytest.mark.parametrize("bias", [True, False])
def test_packed_qkv_inference_path_follows_weight_changes(bias):
    """Self-attention without autograd runs Q, K and V as one matmul on cached stacked
    weights: same numbers as the three projections, and a weight change (an optimiser
    step, a load) is picked up at once."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, bias=bias).eval()
    x = torch.randn(2, 7, 16)
    for step in range(3):
        reference, ref_w = mha(x, need_weights=True)  # autograd on: separate projections
        with torch.no_grad():
            packed, packed_w = mha(x, need_weights=True)
            fused, _ = mha(x)
        torch.testing.assert_close(packed, reference, rtol=0, atol=1e-5)
        torch.testing.assert_close(packed_w, ref_w, rtol=0, atol=1e-6)
        torch.testing.assert_close(fused, reference, rtol=0, atol=1e-5)
        with torch.no_grad():  # change one projection in place, as an optimiser would
            (mha.k_proj.weight if step == 0 else mha.v_proj.weight).mul_(1.5)
    mha.load_state_dict(MultiHeadAttention(16, 4, bias=bias).state_dict())  # new weights, copied in place
    with torch.no_grad():  # packed (context is x) against separate projections (context is a copy)
        torch.testing.assert_close(mha(x)[0], mha(x, x.clone())[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_transposed_inference_path_gives_the_numbers_of_the_general_one(bias):
    """With weights and without autograd, attention runs on transposed features (Qᵀ = W_q Xᵀ:
    no head split or merge copies). Same outputs and weights as the general path, for self-
    and cross-attention, per-query masks with a fully masked row, and without biases."""
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4, bias=bias).eval()
    x, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = torch.ones(2, 1, 5, 7, dtype=torch.bool)
    mask[0, :, :, 4:] = False
    mask[1, :, 3, :] = False  # query 3 of item 1 may attend to nothing
    for ctx, m in ((None, None), (None, mask[..., :5]), (context, None), (context, mask)):
        reference, ref_w = mha(x, ctx, mask=m, need_weights=True)  # autograd on: the general path
        with torch.inference_mode():
            out, w = mha(x, ctx, mask=m, need_weights=True)
        torch.testing.assert_close(out, reference.detach(), rtol=0, atol=1e-5)
        torch.testing.assert_close(w, ref_w.detach(), rtol=0, atol=1e-6)
        assert w.shape == (2, 4, 5, 5 if ctx is None else 7) and torch.isfinite(out).all()
    assert w[1, :, 3].abs().sum() == 0


def test_scale_argument_is_the_one_of_torch():
    """``scale`` replaces 1/√d_k, as in F.scaled_dot_product_attention; pre-scaled queries with
    scale=1 give the default result."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=g) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v)
    out1, w1 = scaled_dot_product_attention(q / math.sqrt(8), k, v, scale=1.0)
    torch.testing.assert_close(out1, out)
    torch.testing.assert_close(w1, w)
    out2, _ = scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out2, F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_module_built_under_inference_mode_runs_and_follows_weight_changes():
    """Weights created inside torch.inference_mode() have no version counter to key the
    packed-QKV cache on: such a module still runs, and never serves stale packed weights."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    with torch.inference_mode():
        mha = MultiHeadAttention(16, 4)
        before, _ = mha(x)
        mha.q_proj.weight.mul_(2.0)
        after, _ = mha(x)
        q = mha.split_heads(mha.q_proj(x))
        k, v = mha.split_heads(mha.k_proj(x)), mha.split_heads(mha.v_proj(x))
        reference = mha.out_proj(mha.merge_heads(F.scaled_dot_product_attention(q, k, v)))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-5)


def test_attention_weights_module_is_the_first_two_stages_of_multi_head_attention():
    """AttentionWeights (Q, K, softmax; no V) gives the weights MultiHeadAttention gives with
    the same query and key projections, masks included (fully masked rows: zeros)."""
    from mmattn.nn.attention import AttentionWeights

    torch.manual_seed(0)
    mha, aw = MultiHeadAttention(32, 4).eval(), AttentionWeights(32, 4)
    aw.load_state_dict({k: v for k, v in mha.state_dict().items() if k.startswith(("q_proj", "k_proj"))})
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    mask = torch.ones(2, 1, 5, 7, dtype=torch.bool)
    mask[0, :, :, 4:] = False
    mask[1, :, 2] = False  # query 2 of item 1 may attend to nothing
    _, want = mha(x, context=ctx, mask=mask, need_weights=True)
    got = aw(x, context=ctx, mask=mask)
    torch.testing.assert_close(got, want)
    assert got.shape == (2, 4, 5, 7) and torch.equal(got[1, :, 2], torch.zeros(4, 7))
    assert torch.equal(got[0, ..., 4:], torch.zeros(4, 5, 3))
    with pytest.raises(ValueError, match="divisible"):
        AttentionWeights(30, 4)
    with pytest.raises(ValueError, match="shape"):
        aw(torch.randn(2, 5, 16))
