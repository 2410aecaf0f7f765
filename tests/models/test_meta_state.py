"""A checkpoint's expected shapes come from a model built on the meta device, with no
initialiser run: the shapes equal a real build's, and loading the shipped model never
imports torch._dynamo (on the meta device torch's initialisers run through torch._refs,
whose first call imports it: 1.5 s of the demo's start-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mmattn.io.checkpoint import meta_state
from mmattn.models.grounding_model import GroundingConfig, GroundingModel


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "none"])
def test_meta_state_has_the_shapes_and_dtypes_of_a_real_build(positions):
    config = GroundingConfig(dim=32, num_heads=2, vocab_size=50, text_positions=positions, image_positions=positions, anchor_bias=True)
    real = GroundingModel(config=config).state_dict()
    meta = meta_state(lambda: GroundingModel(config=config))
    assert {k: (tuple(v.shape), v.dtype) for k, v in meta.items()} == {k: (tuple(v.shape), v.dtype) for k, v in real.items()}
    assert all(v.is_meta for v in meta.values())


def test_a_huge_config_costs_no_memory():
    meta = meta_state(lambda: GroundingModel(config=GroundingConfig(dim=4096, num_heads=8, vocab_size=1_000_000)))
    assert meta["text_encoder.embed.weight"].shape == (1_000_000, 4096)  # 16 GB if it were allocated


def test_a_model_built_beside_it_is_initialised_as_usual():
    torch.manual_seed(0)
    before = GroundingModel(config=GroundingConfig(dim=32, num_heads=2, vocab_size=50)).state_dict()
    meta_state(lambda: GroundingModel(config=GroundingConfig(dim=32, num_heads=2, vocab_size=50)))
    torch.manual_seed(0)
    after = GroundingModel(config=GroundingConfig(dim=32, num_heads=2, vocab_size=50)).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert after["text_encoder.embed.weight"].std() > 0.5  # N(0, 1): the initialiser ran


def test_loading_the_shipped_model_does_not_import_dynamo():
    code = ("import sys, mmattn; from PIL import Image; "
            "mmattn.Grounder.from_pretrained().ground(Image.new('RGB', (64, 64)), 'a red circle').word_maps; "
            "print('torch._dynamo' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
