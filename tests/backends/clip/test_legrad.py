"""LeGrad on a tiny random CLIP: parity with a direct transcription of the reference code
(tests/clip_references.py, from WalBouss/LeGrad), and the "legrad" method of the CLIP backend
(shapes, finiteness, one scale shared by a caption's words). Random weights: what is checked
is the arithmetic, not the quality of the maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clip_helpers import photo
from clip_references import legrad_reference, min_max

from mmattn.backends.clip.legrad import attention_block, legrad, normalize

CAPTION = "A red dog, on the zebra grass!"
WORDS = ["a", "red", "dog", "on", "the", "zebra", "grass"]


def unit(n: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_attention_block_is_clips_layer(clip_model):
    layer = clip_model.vision_model.encoder.layers[0]
    x = torch.randn(2, 1 + 12, 32)
    seen = {}

    def grab(module, args, output):
        seen["w"] = output[1]  # returns None: the output is left as it is

    hook = layer.self_attn.register_forward_hook(grab)
    try:
        with torch.no_grad():
            ref = layer(x, None)
    finally:
        hook.remove()
    with torch.no_grad():
        out, weights = attention_block(layer, x)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, seen["w"], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("start_layer", [-2, -1, 0])
@pytest.mark.parametrize("size", [(40, 48), (32, 32)])
def test_legrad_equals_the_reference_transcription(clip_model, start_layer, size):
    vm = clip_model.vision_model
    px = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    text = unit(3)
    ours = legrad(vm, clip_model.visual_projection, px, text[None], start_layer=start_layer)  # (1, 3, P) mean over blocks
    ref = legrad_reference(clip_model, px, text, layer_index=start_layer)  # (3, gh, gw) summed over blocks
    blocks = len(vm.encoder.layers) - start_layer % len(vm.encoder.layers)
    assert ours.shape == (1, 3, (size[0] // 8) * (size[1] // 8))
    assert ref.abs().max() > 0 and (ours >= 0).all()
    torch.testing.assert_close(ours[0] * blocks, ref.reshape(3, -1), atol=1e-8, rtol=1e-4)
    # the reference's display normalisation (per prompt) is normalize(..., "word")
    torch.testing.assert_close(normalize(ours, "word")[0], min_max(ref[None]).reshape(3, -1), atol=1e-5, rtol=1e-4)


def test_legrad_reads_each_image_with_its_own_queries(clip_model):
    """A batch equals its items one by one (one vector-Jacobian product per query)."""
    vm = clip_model.vision_model
    px = torch.randn(2, 3, 32, 40, generator=torch.Generator().manual_seed(2))
    text = torch.stack([unit(4, seed=1), unit(4, seed=2)])  # (2, 4, E)
    both = legrad(vm, clip_model.visual_projection, px, text)
    for b in range(2):
        torch.testing.assert_close(both[b], legrad(vm, clip_model.visual_projection, px[b : b + 1], text[b : b + 1])[0])


def test_normalize_shares_one_scale_across_a_captions_words():
    maps = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 1.5, 2.0]]])  # (1, W=2, P=3)
    torch.testing.assert_close(normalize(maps, "caption"), torch.tensor([[[0.0, 0.5, 1.0], [0.0, 0.25, 0.5]]]))
    torch.testing.assert_close(normalize(maps, "word"), torch.tensor([[[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]]))
    keep = torch.tensor([[True, False]])
    torch.testing.assert_close(normalize(maps, "caption", keep), torch.tensor([[[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]]))
    assert normalize(torch.ones(1, 2, 3)).eq(0).all()  # flat maps: nothing stands out
    with pytest.raises(ValueError, match="scale"):
        normalize(maps, "image")


def test_legrad_is_a_method_of_the_clip_backend(grounder):
    assert "legrad" in grounder.methods and {"attention", "rollout", "gradcam"} <= set(grounder.methods)
    r = grounder.ground(photo(80, 50), CAPTION, method="legrad")
    assert r.method == "legrad" and r.words == WORDS
    assert r.patch_maps.shape == (len(WORDS), 2 * 4) and r.word_maps.shape == (len(WORDS), 50, 80)
    assert np.isfinite(r.patch_maps).all() and r.patch_maps.min() == 0 and r.patch_maps.max() == pytest.approx(1.0)
    assert [b is not None for b in r.boxes] == r.grounded
    plain = grounder.ground(photo(80, 50), CAPTION)
    assert r.grounded == plain.grounded and r.match_score == pytest.approx(plain.match_score)  # only the maps differ
    with pytest.raises(ValueError, match="method must be one of attention, rollout, gradcam, legrad"):
        grounder.ground(photo(32, 32), "a dog", method="legrad2")


def test_the_methods_maps_are_legrad_of_each_words_prompt(grounder, clip_model):
    """ground(method="legrad") = LeGrad of each word's prompt embedding ("a photo of {word}."),
    min-max over the caption's words together; legrad_maps(scale="word") is the reference's scale."""
    image = photo(80, 50)
    px = grounder.processor.pixels([image])
    prompts = [f"a photo of {w}." for w in WORDS]
    enc = grounder.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        text = F.normalize(clip_model.get_text_features(**enc).pooler_output, dim=-1)  # (W, E)
    ref = legrad_reference(clip_model, px, text)  # (W, gh, gw)
    shared = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(grounder.ground(image, CAPTION, method="legrad").patch_maps, shared.reshape(len(WORDS), -1), atol=1e-5)
    per_word = min_max(ref[None])[0].reshape(len(WORDS), -1)
    np.testing.assert_allclose(grounder.legrad_maps(image, CAPTION, scale="word"), per_word, atol=1e-5)


def test_legrad_batch_equals_single(grounder):
    images, captions = [photo(80, 50, 1), photo(40, 40, 2), photo(80, 50, 3)], [CAPTION, "a big blue circle", "a cat"]
    for im, cap, b in zip(images, captions, grounder.ground_batch(images, captions, method="legrad")):
        s = grounder.ground(im, cap, method="legrad")
        assert b.method == "legrad" and b.words == s.words and b.boxes == s.boxes
        np.testing.assert_allclose(b.patch_maps, s.patch_maps, atol=1e-5)


def test_legrad_runs_inside_inference_mode(grounder):
    with torch.inference_mode():
        maps = grounder.legrad_maps(photo(32, 32), "a red dog")
    assert maps.shape == (3, 16) and np.isfinite(maps).all()
