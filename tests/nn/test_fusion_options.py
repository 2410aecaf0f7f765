"""The fusion layer's options for relations, all off by default so that older checkpoints
load as they were built:

- ``fusion_self_attention`` (words read words, patches read patches, before the
  cross-attention) and ``anchor_bias`` (a relative-position term in the last layer's
  text->image scores) start at zero: a model fine-tuned from v15 starts as v15;
- an additive attention bias gives the same weights and outputs on every path (the three
  visible stages, torch's fused kernel, the transposed inference path) and is softmax(s + b);
- the AnchorBias is zero with a zero gate, a penalty outside the wedge around the relation's
  direction (0 inside, -S outside, square in pixels whatever the picture's shape), blind to
  padding;
- Step by step recomputes a layer with an AnchorBias exactly (the bias is recorded).
"""

import math

import pytest
import torch

from mmattn.api.grounder import Grounder
from mmattn.api.processor import MmattnProcessor
from mmattn.models.encoders import patch_coordinates
from mmattn.models.grounding_model import GroundingConfig, GroundingModel
from mmattn.models.tokenizer import load_tokenizer
from mmattn.nn.anchor import AnchorBias
from mmattn.nn.attention import MultiHeadAttention, attention_weights
from mmattn.scenes.relational import make_relational_sample
from mmattn.training.train import TrainConfig, freeze_parameters, initial_model


def test_defaults_are_off_and_the_shipped_model_loads_as_built():
    c = GroundingConfig()
    assert c.fusion_self_attention is False and c.anchor_bias is False
    assert not any("anchor" in n for n, _ in GroundingModel(c).named_parameters())
    m = GroundingModel.load("assets/model")  # v16: an AnchorBias in its last fusion layer, no self-attention
    assert m.config.anchor_bias and m.fusion[-1].anchor is not None and m.fusion[0].anchor is None
    assert sum(p.numel() for n, p in m.named_parameters() if ".anchor." in n) == 901
    assert not any("_self" in n for n, _ in m.named_parameters())
    with pytest.raises(ValueError, match="anchor_bias must be true or false"):
        GroundingConfig(anchor_bias="yes")


def _without(flag: str) -> GroundingModel:
    """The shipped model without ``flag``'s sublayer (its other weights as shipped)."""
    import dataclasses

    shipped = GroundingModel.load("assets/model")
    base = GroundingModel(dataclasses.replace(shipped.config, **{flag: False})).eval()
    missing, unexpected = base.load_state_dict(shipped.state_dict(), strict=False)
    assert not missing and all(flag.split("_")[0] in n or "_self" in n for n in unexpected)
    return base


@pytest.mark.parametrize("flag", ["fusion_self_attention", "anchor_bias"])
def test_new_sublayers_start_as_the_model_they_extend(flag):
    import dataclasses

    base = _without(flag)
    m = GroundingModel(dataclasses.replace(base.config, **{flag: True})).eval()  # a fresh sublayer
    m.load_state_dict(base.state_dict(), strict=False)
    assert sum(p.numel() for p in m.parameters()) > sum(p.numel() for p in base.parameters())
    s = make_relational_sample(1, 128, 96)
    tok = load_tokenizer("assets/model")
    proc = MmattnProcessor(tok, image_size=128, patch_size=8)
    enc = proc.encode([s.caption.text])
    px = proc.pixels([s.image])
    with torch.no_grad():
        a = base(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
        b = m(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
    assert torch.allclose(a.match_logits, b.match_logits, atol=1e-6)
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


def _one_token_anchor(landmark_at=(0.0, 0.0), direction=(-1.0, 0.0)):
    """An AnchorBias over one token whose map sat at ``landmark_at``, reading ``direction``,
    with its gate fully open: its bias is S * wedge."""
    anchor = AnchorBias(4)
    with torch.no_grad():
        anchor.roles.weight.zero_(), anchor.roles.bias.zero_()
        anchor.direction.weight.zero_(), anchor.direction.bias.copy_(torch.tensor(direction))
        anchor.gate.weight.zero_(), anchor.gate.bias.fill_(30.0)  # sigmoid(30) = 1
    return anchor, torch.tensor([[landmark_at]])  # (1, 1, 2) centroid


def test_anchor_bias_is_a_gated_wedge_blind_to_padding():
    from mmattn.nn.anchor import SCALE

    torch.manual_seed(0)
    anchor = AnchorBias(8)
    text, cents = torch.randn(1, 4, 8), torch.rand(1, 4, 2) * 2 - 1
    coords = patch_coordinates(3, 4, isotropic=True)  # (12, 2)
    mask = torch.tensor([[True, True, True, False]])
    assert anchor(text, cents, coords, mask).abs().max() < 1e-6  # the gate starts at sigmoid(-20)
    # "left of" a landmark at the centre: patches to its left (more left than up or down) are
    # left alone, patches to its right, above or below get nearly -S
    anchor, cent = _one_token_anchor((0.0, 0.0), (-1.0, 0.0))
    pts = torch.tensor([[-0.8, 0.1], [-0.6, -0.4], [-0.05, 0.0], [0.8, 0.0], [0.0, -0.8], [-0.3, 0.8], [0.0, 0.0]])
    b = anchor(torch.zeros(1, 1, 4), cent, pts)[0, 0, 0]  # (7,)
    assert (b[:3] == 0).all()  # left, left a little higher, just left of the landmark's centre
    assert (b[3:6] < -0.95 * SCALE).all()  # right, above, below-left (more below than left)
    assert abs(b[6]) < 1e-6  # the landmark's own centre is on the wedge's point
    # another landmark: the wedge moves with it
    anchor_r, cent_r = _one_token_anchor((0.5, 0.0), (-1.0, 0.0))
    assert anchor_r(torch.zeros(1, 1, 4), cent_r, torch.tensor([[0.2, 0.0], [0.8, 0.0]]))[0, 0, 0].tolist()[0] == 0
    assert anchor_r(torch.zeros(1, 1, 4), cent_r, torch.tensor([[1.0, 0.0]]))[0, 0, 0, 0] < -0.95 * SCALE
    # the direction's length does not matter, only where it points
    anchor2, _ = _one_token_anchor((0.0, 0.0), (-5.0, 0.0))
    assert torch.allclose(anchor2(torch.zeros(1, 1, 4), cent, pts), anchor(torch.zeros(1, 1, 4), cent, pts), atol=1e-5)
    # a padding token's features and centroid change nothing for the real tokens
    anchor = AnchorBias(8)
    torch.nn.init.normal_(anchor.gate.weight), torch.nn.init.zeros_(anchor.gate.bias)
    b = anchor(text, cents, coords, mask)[0, 0]  # (T, P)
    assert b.abs().max() > 1
    text2, cents2 = text.clone(), cents.clone()
    text2[0, 3], cents2[0, 3] = 100.0, torch.tensor([5.0, -5.0])
    assert torch.allclose(anchor(text2, cents2, coords, mask)[0, 0, :3], b[:3], atol=1e-5)


def test_isotropic_coordinates_keep_45_degrees_in_pixels():
    wide = patch_coordinates(2, 4, isotropic=True)  # a 4x2-patch picture: x spans [-1, 1], y half that
    assert torch.allclose(wide[:, 0].abs().max(), torch.tensor(0.75)) and torch.allclose(wide[:, 1].abs().max(), torch.tensor(0.25))
    steps = wide[1] - wide[0], wide[4] - wide[0]  # one patch right, one patch down
    assert torch.allclose(steps[0].norm(), steps[1].norm())
    assert torch.equal(patch_coordinates(3, 3, isotropic=True), patch_coordinates(3, 3))


def test_step_by_step_recomputes_a_layer_with_an_anchor():
    from mmattn.teach.recompute import attention_steps

    tok, m = initial_model("assets/model", {"anchor_bias": True})
    torch.manual_seed(0)
    torch.nn.init.normal_(m.fusion[-1].anchor.gate.weight, std=0.5), torch.nn.init.zeros_(m.fusion[-1].anchor.gate.bias)
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
