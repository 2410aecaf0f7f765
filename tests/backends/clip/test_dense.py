"""The CLIP backend's dense features: NACLIP (the default) and MaskCLIP, on a tiny random CLIP.

NACLIP's features must equal those of a direct transcription of the reference code
(tests/clip_references.py, from sinahmr/NACLIP), and each of the method's three changes to
the last block must matter on this model: dropping any one of them gives other features, so
the parity test would catch an implementation that left it out. Random weights: what is
checked is the arithmetic, not the quality of the maps."""

from __future__ import annotations

import json

import pytest
import torch
from clip_helpers import offline
from clip_references import attention_addition, gaussian_window, naclip_reference

from mmattn import CheckpointError
from mmattn.backends.clip.dense import maskclip_block, neighbourhood_bias
from mmattn.backends.clip.grounder import FUSION_CONFIG, ClipGrounder, save_clip_checkpoint


@pytest.fixture(scope="module")
def naclip(clip_dir) -> ClipGrounder:
    with offline():
        return ClipGrounder.from_pretrained(clip_dir, image_size=48)


def pixels(h: int = 40, w: int = 48, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_naclip_is_the_default(naclip):
    assert naclip.model.config.dense == "naclip" and naclip.model.config.gaussian_std == 5.0
    assert naclip.model.image_encoder.dense == "naclip"


def test_neighbourhood_bias_is_a_gaussian_of_grid_distance_row_major():
    gh, gw, std = 3, 4, 1.5
    bias = neighbourhood_bias(gh, gw, std)
    assert bias.shape == (1 + gh * gw, 1 + gh * gw)
    assert (bias[0] == 0).all() and (bias[:, 0] == 0).all()  # [CLS]: no bias either way
    for r, c, r2, c2 in [(0, 0, 0, 0), (0, 0, 0, 3), (0, 0, 2, 0), (1, 2, 2, 3), (2, 3, 0, 1)]:
        expected = torch.exp(torch.tensor(-((r - r2) ** 2 + (c - c2) ** 2) / (2 * std**2)))
        torch.testing.assert_close(bias[1 + r * gw + c, 1 + r2 * gw + c2], expected)  # patch (r, c) is r*gw + c
    # the reference builds it by convolving one-hot maps with a window: the same numbers
    reference = attention_addition(gh, gw, gaussian_window(2 * gh - 1, 2 * gw - 1, std=std))
    torch.testing.assert_close(bias, reference, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("size", [(40, 48), (32, 32), (48, 24)])
def test_naclip_features_equal_the_reference_transcription(naclip, clip_model, size):
    px = pixels(*size)  # non-square grids too: rows and columns must not be swapped
    with torch.no_grad():
        ours, grid, _, _ = naclip.model.image_encoder(px)
        ref = naclip_reference(clip_model, px, std=5.0)
    assert grid == (size[0] // 8, size[1] // 8) and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("ablation", [{"key_key": False}, {"gaussian": False}, {"reduced": False}])
def test_each_of_naclips_changes_matters(naclip, clip_model, ablation):
    """Query-key attention, no neighbourhood bias, or the residual and MLP kept: each gives
    features far from NACLIP's (so the parity test above fails if any is dropped)."""
    px = pixels()
    with torch.no_grad():
        ours = naclip.model.image_encoder(px)[0]
        ablated = naclip_reference(clip_model, px, std=5.0, **ablation)
    assert (ours - ablated).abs().max() > 1e-2  # parity holds to 1e-5


def test_gaussian_std_is_used(clip_dir, naclip, clip_model):
    with offline():
        narrow = ClipGrounder.from_pretrained(clip_dir, image_size=48, gaussian_std=1.0)
    px = pixels()
    with torch.no_grad():
        ours = narrow.model.image_encoder(px)[0]
        torch.testing.assert_close(ours, naclip_reference(clip_model, px, std=1.0), atol=1e-5, rtol=1e-4)
        assert (ours - naclip.model.image_encoder(px)[0]).abs().max() > 1e-3


def test_maskclip_stays_an_option(clip_dir, clip_model):
    with offline():
        g = ClipGrounder.from_pretrained(clip_dir, image_size=48, dense="maskclip")
    assert g.model.config.dense == "maskclip"
    px = pixels()
    vm = clip_model.vision_model
    with torch.no_grad():
        ours = g.model.image_encoder(px)[0]
        x = vm.pre_layrnorm(vm.embeddings(px, interpolate_pos_encoding=True))
        for layer in vm.encoder.layers[:-1]:
            x = layer(x, None)
        ref = torch.nn.functional.normalize(
            clip_model.visual_projection(vm.post_layernorm(maskclip_block(vm.encoder.layers[-1], x)[:, 1:])), dim=-1
        )
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
        assert (ours - naclip_reference(clip_model, px)).abs().max() > 1e-2


def test_bad_dense_settings_are_refused(clip_dir):
    with offline():
        with pytest.raises(CheckpointError, match="dense must be one of 'naclip', 'maskclip'"):
            ClipGrounder.from_pretrained(clip_dir, dense="sclip")
        with pytest.raises(CheckpointError, match="gaussian_std"):
            ClipGrounder.from_pretrained(clip_dir, gaussian_std=0)


def test_a_fusion_trained_before_naclip_keeps_maskclip_features(naclip, tmp_path):
    """Checkpoints saved without a "dense" field were trained on MaskCLIP features."""
    folder = save_clip_checkpoint(naclip, tmp_path / "trained")
    info = json.loads((folder / FUSION_CONFIG).read_text())
    assert info["config"]["dense"] == "naclip"
    with offline():
        assert ClipGrounder.from_pretrained(folder).model.config.dense == "naclip"  # saved with the field: kept
        del info["config"]["dense"]
        (folder / FUSION_CONFIG).write_text(json.dumps(info))
        assert ClipGrounder.from_pretrained(folder).model.config.dense == "maskclip"
        assert ClipGrounder.from_pretrained(folder, dense="naclip").model.config.dense == "naclip"  # the caller decides
