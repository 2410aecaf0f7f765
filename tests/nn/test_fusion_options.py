"""The fusion layer's options for relations, all off by default so that older checkpoints
load as they were built:

- ``fusion_self_attention`` (words read words, patches read patches, before the
  cross-attention) and ``anchor_bias`` (a relative-position term in the last layer's
  text->image scores) start at zero: a model fine-tuned from v15 starts as v15;
- an additive attention bias gives the same weights and outputs on every path (the three
  visible stages, torch's fused kernel, the transposed inference path) and is softmax(s + b);
- the AnchorBias is zero with a zero gate, linear in the patch position, blind to padding;
- Step by step recomputes a layer with an AnchorBias exactly (the bias is recorded).
"""

import math

import pytest
import torch

from mmattn.api.grounder import Grounder
from mmattn.api.processor import MmattnProcessor
from mmattn.models.encoders import patch_coordinates
from mmattn.models.grounding_model import GroundingConfig, GroundingModel
from mmattn.nn.anchor import AnchorBias
from mmattn.nn.attention import MultiHeadAttention, attention_weights
from mmattn.scenes.relational import make_relational_sample
from mmattn.training.train import TrainConfig, freeze_parameters, initial_model


def test_defaults_are_off_and_the_shipped_model_loads_as_built():
    c = GroundingConfig()
    assert c.fusion_self_attention is False and c.anchor_bias is False
    m = GroundingModel.load("assets/model")
    assert not any("anchor" in n or "_self" in n for n, _ in m.named_parameters())
    with pytest.raises(ValueError, match="anchor_bias must be true or false"):
        GroundingConfig(anchor_bias="yes")


@pytest.mark.parametrize("flag", ["fusion_self_attention", "anchor_bias"])
def test_new_sublayers_start_as_the_model_they_extend(flag):
    base = GroundingModel.load("assets/model")
    _, m = initial_model("assets/model", {flag: True})
    m.eval()
    assert sum(p.numel() for p in m.parameters()) > sum(p.numel() for p in base.parameters())
    s = make_relational_sample(1, 128, 96)
    proc = MmattnProcessor(_, image_size=128, patch_size=8)
    enc = proc.encode([s.caption.text])
    px = proc.pixels([s.image])
    with torch.no_grad():
        a = base(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
        b = m(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
    assert torch.equal(a.match_logits, b.match_logits)
    for x, y in zip(a.text_to_image, b.text_to_image):
        assert torch.allclose(x, y, atol=1e-6)


def test_attention_bias_on_every_path():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    bias = torch.randn(2, 1, 3, 5)
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., 4] = False
    with torch.no_grad():
        out_t, w_t = mha(x, ctx, mask=mask, need_weights=True, bias=bias)  # transposed inference path
        out_f, _ = mha(x, ctx, mask=mask, bias=bias)  # torch's fused kernel
    out_s, w_s = mha(x, ctx, mask=mask, need_weights=True, bias=bias)  # the three stages (grad on)
    assert torch.allclose(out_t, out_f, atol=1e-5) and torch.allclose(out_s, out_f, atol=1e-5)
    assert torch.allclose(w_t, w_s, atol=1e-6)
    q, k = mha.split_heads(mha.q_proj(x)), mha.split_heads(mha.k_proj(ctx))
    scores = q @ k.transpose(-1, -2) / math.sqrt(4) + bias
    ref = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    assert torch.allclose(w_s, ref, atol=1e-6)
    assert torch.allclose(attention_weights(q, k, mask, bias=bias), ref, atol=1e-6)
    assert (w_s[1, ..., 4] == 0).all()


def test_anchor_bias_is_gated_linear_in_position_and_blind_to_padding():
    torch.manual_seed(0)
    anchor = AnchorBias(8)
    text, cents = torch.randn(1, 4, 8), torch.rand(1, 4, 2) * 2 - 1
    coords = patch_coordinates(3, 4)  # (12, 2)
    mask = torch.tensor([[True, True, True, False]])
    assert torch.equal(anchor(text, cents, coords, mask), torch.zeros(1, 1, 4, 12))  # gate starts at 0
    torch.nn.init.normal_(anchor.gate.weight)
    b = anchor(text, cents, coords, mask)[0, 0]  # (T, P)
    # linear in the patch position: the difference between patches (0,1) and (0,0) is the same step everywhere
    step_x = b[:, 1] - b[:, 0]
    assert torch.allclose(b[:, 2] - b[:, 1], step_x, atol=1e-5) and torch.allclose(b[:, 3] - b[:, 2], step_x, atol=1e-5)
    assert step_x.abs().max() > 0
    # a padding token's features and centroid change nothing for the real tokens
    text2, cents2 = text.clone(), cents.clone()
    text2[0, 3], cents2[0, 3] = 100.0, torch.tensor([5.0, -5.0])
    assert torch.allclose(anchor(text2, cents2, coords, mask)[0, 0, :3], b[:3], atol=1e-5)


def test_step_by_step_recomputes_a_layer_with_an_anchor():
    from mmattn.teach.recompute import attention_steps

    tok, m = initial_model("assets/model", {"anchor_bias": True})
    torch.manual_seed(0)
    torch.nn.init.normal_(m.fusion[-1].anchor.gate.weight, std=0.5)
    g = Grounder(m.eval(), MmattnProcessor(tok, image_size=128, patch_size=8), precision="float32")
    s = make_relational_sample(2, 128, 128, lang="en")
    t = g.trace(s.image, s.caption.text, inputs=True)
    assert t.inputs[1, "text_to_image"].bias is not None and t.inputs[0, "text_to_image"].bias is None
    assert abs(t.inputs[1, "text_to_image"].bias).max() > 0.1
    for head in range(4):
        st = attention_steps(g, t, layer=-1, head=head)
        assert st.max_weight_error < 1e-4 and st.max_output_error < 1e-4


def test_freeze_by_prefix():
    _, m = initial_model("assets/model", {"anchor_bias": True})
    freeze_parameters(m, ("text_encoder", "fusion"), ("fusion.1.anchor",))
    trained = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any(n.startswith("fusion.1.anchor.") for n in trained)
    assert not any(n.startswith(("text_encoder.", "fusion.0.", "fusion.1.text_to_image")) for n in trained)
    assert any(n.startswith("image_encoder.") for n in trained)
    with pytest.raises(ValueError, match="'fusion.9'"):
        freeze_parameters(m, ("fusion.9",))
    with pytest.raises(ValueError, match="relational is a share"):
        TrainConfig(relational=1.5)
