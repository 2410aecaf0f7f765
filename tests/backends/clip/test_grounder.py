"""The CLIP backend, offline, on a tiny random CLIP saved in transformers' standard layout.

The checkpoint (2 layers of width 32, a hand-written BPE vocabulary, a CLIPImageProcessor)
loads through ``Grounder.from_pretrained`` with the hub offline and no network, and must
keep the grounding contract of the shipped model; its towers must agree with CLIP's own,
and its zero-shot fusion must be CLIP's similarity. Maps of random weights mean nothing:
what is checked is shapes, invariants and parity."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from app_fixtures import ROOT
from clip_helpers import offline, photo

from mmattn import CheckpointError, Grounder, Grounding
from mmattn.backends.clip.grounder import ClipGrounder, encode_words, split_words

CAPTION = "A red dog, on the zebra grass!"
WORDS = ["a", "red", "dog", "on", "the", "zebra", "grass"]  # punctuation dropped; "zebra" is 5 BPE pieces


# ---- loading ---------------------------------------------------------------------------------
def test_a_clip_folder_loads_offline_as_the_clip_backend(grounder, clip_model):
    assert isinstance(grounder, ClipGrounder) and grounder.backend == "CLIP backend, zero-shot fusion"
    c = grounder.model.config
    assert (c.dim, c.patch_size, c.image_size) == (16, 8, 32)  # projection_dim, patch, CLIP's input size
    assert c.temperature == pytest.approx(math.exp(float(clip_model.logit_scale.detach())))
    assert grounder.num_layers == 1 and grounder.num_heads == 1
    frozen = [*grounder.model.text_encoder.parameters(), *grounder.model.image_encoder.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in grounder.model.fusion.parameters())


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        Grounder.from_pretrained(tmp_path / "no-such-model")
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        ClipGrounder.from_pretrained(str(tmp_path / "no-such-model"))


def test_uncached_hub_id_offline_says_how_to_fix_it(tmp_path):
    with offline(cache=tmp_path / "empty-cache"), pytest.raises(CheckpointError) as e:
        Grounder.from_pretrained("openai/clip-vit-base-patch16")
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "not in the Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg and "local checkpoint folder" in msg


def test_clip_folder_without_weights_is_a_clear_error(clip_dir, tmp_path):
    (tmp_path / "config.json").write_text((clip_dir / "config.json").read_text())
    with offline(), pytest.raises(CheckpointError, match="no model.safetensors in"):
        Grounder.from_pretrained(tmp_path)


# ---- the towers are CLIP's -------------------------------------------------------------------
def test_caption_and_image_embeddings_are_clips(grounder, clip_model):
    enc = grounder.processor.encode(["a red dog on the grass", "a cat"])
    px = grounder.processor.pixels([photo(32, 32)])  # CLIP's own input size: no interpolation
    with torch.no_grad():
        text = grounder.model.text_encoder(enc.ids, enc.attention_mask)
        _, grid, image, _ = grounder.model.image_encoder(px)
        ref_t = clip_model.get_text_features(input_ids=enc.ids, attention_mask=enc.attention_mask.long()).pooler_output
        ref_i = clip_model.get_image_features(pixel_values=px).pooler_output
    torch.testing.assert_close(text.caption, F.normalize(ref_t, dim=-1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(image, F.normalize(ref_i, dim=-1), atol=1e-5, rtol=1e-4)
    assert grid == (4, 4)


def test_patches_are_the_last_block_with_each_token_attending_to_itself(maskclip, clip_model):
    """MaskCLIP (dense="maskclip"; NACLIP, the default, is tested in test_clip_dense.py): the
    last block without query-key mixing = the block with identity attention."""
    px = maskclip.processor.pixels([photo(32, 24)])  # non-square: interpolated positions
    last = clip_model.vision_model.encoder.layers[-1].self_attn
    real = last.forward
    last.forward = lambda hidden_states, attention_mask=None, **kw: (last.out_proj(last.v_proj(hidden_states)), None)
    try:
        with torch.no_grad():
            h = clip_model.vision_model(pixel_values=px, interpolate_pos_encoding=True).last_hidden_state
    finally:
        last.forward = real
    ref = F.normalize(clip_model.visual_projection(clip_model.vision_model.post_layernorm(h[:, 1:])), dim=-1)
    with torch.no_grad():
        patches, grid, _, _ = maskclip.model.image_encoder(px)
    assert grid == (3, 4) and patches.shape == (1, 12, 16)
    torch.testing.assert_close(patches, ref, atol=1e-5, rtol=1e-4)


def test_zero_shot_attention_is_clip_similarity_both_ways(grounder):
    m = grounder.model
    enc = grounder.processor.encode(["a red dog", "the big blue circle left of a cat"])
    px = grounder.processor.pixels([photo(32, 32, 1), photo(32, 32, 2)])
    with torch.no_grad():
        out = m(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
        text = m.text_encoder(enc.ids, enc.attention_mask)
        patches = m.image_encoder(px)[0]

    def centred(x):  # what the fusion's LayerNorm sees, on the unit sphere: Pearson correlation
        return F.normalize(x - x.mean(-1, keepdim=True), dim=-1)

    corr = centred(text.tokens) @ centred(patches).transpose(1, 2)  # (B, T, P)
    tau = m.config.temperature
    torch.testing.assert_close(out.text_to_image[0][:, 0], torch.softmax(tau * corr, -1), atol=2e-4, rtol=1e-3)
    keys = enc.attention_mask[:, None, :]  # image -> text: padding is never attended
    ref = torch.softmax((tau * corr.transpose(1, 2)).masked_fill(~keys, float("-inf")), -1)
    torch.testing.assert_close(out.image_to_text[0][:, 0], ref, atol=2e-4, rtol=1e-3)
    assert out.image_to_text[0][:, 0].masked_select(~keys.expand_as(ref)).abs().max() == 0
    # at the start the fusion leaves both streams as they came (residual branches off)
    torch.testing.assert_close(out.text_features, text.tokens)


def test_tower_self_attentions_when_asked(grounder):
    enc = grounder.processor.encode(["a red dog", "a cat"])
    px = grounder.processor.pixels([photo(32, 24, 1), photo(32, 24, 2)])
    with torch.no_grad():
        out = grounder.model(enc.ids, px, enc.attention_mask, output_attentions=True)
        plain = grounder.model(enc.ids, px, enc.attention_mask)
    T, P = enc.ids.size(1), 3 * 4
    assert [w.shape for w in out.text_self_attentions] == [(2, 4, T, T)] * 2  # eager attention: never empty
    assert [w.shape for w in out.image_self_attentions] == [(2, 4, 1 + P, 1 + P)] * 2  # [CLS] included
    assert [w.shape for w in out.text_to_image] == [(2, 1, T, P)] and [w.shape for w in out.image_to_text] == [(2, 1, P, T)]
    assert plain.text_to_image == () and plain.text_self_attentions == () and plain.image_self_attentions == ()
    torch.testing.assert_close(plain.match_logits, out.match_logits)
    assert out.patch_logits.shape == (2, P, 0) and out.centroids.shape == (2, T, 2)


# ---- the grounding contract --------------------------------------------------------------------
def test_words_merge_bpe_pieces_and_drop_punctuation(grounder):
    r = grounder.ground(photo(80, 50), CAPTION, raw=True)
    assert r.words == WORDS
    tokens = r.raw.tokens
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert tokens.count("z") == 1 and len(tokens) > len(WORDS) + 4  # zebra in pieces, the comma and "!" are tokens
    zebra = [t for t, w in zip(tokens, r.raw.word_ids) if w == 6]  # word 6 of the tokenizer's words (comma is 3)
    assert "".join(t.removesuffix("</w>") for t in zebra) == "zebra"
    assert split_words("Don't stop: 2024 dogs’ café") == ["don't", "stop", ":", "2024", "dogs", "’", "café"]
    assert not any(r.unknown_words for r in [r])  # byte-level BPE knows every word


def test_non_square_image_gives_maps_at_its_own_size(grounder):
    r = grounder.ground(photo(80, 50), CAPTION)
    W, (gh, gw) = len(WORDS), r.grid
    assert (gh, gw) == (2, 4)  # 80x50 -> 32x16 px (longer side 32, multiples of 8) -> 2 x 4 patches
    assert r.word_maps.shape == (W, 50, 80) and r.word_maps.dtype == np.float32
    assert r.patch_maps.shape == (W, gh * gw) and r.image_to_text.shape == (gh * gw, W)
    assert 0 <= r.word_maps.min() and r.word_maps.max() == pytest.approx(1.0)  # one scale across words
    assert 0 < r.match_score < 1 and len(r.grounded) == len(r.boxes) == len(r.grounded_scores) == W
    for word, g, box in zip(r.words, r.grounded, r.boxes):
        assert (box is not None) == g
        if word in ("a", "on", "the"):
            assert not g  # function words are never grounded
    words = r.words_at(79, 49)  # image -> text at the bottom-right patch
    assert [w for w, _ in words] == WORDS and all(0 <= v <= 1 for _, v in words)
    assert sum(v for _, v in words) <= 1 + 1e-6  # the rest went to the special tokens


def test_raw_attention_both_directions(grounder):
    r = grounder.ground(photo(40, 64), "a red dog", raw=True)
    T, P = len(r.raw.tokens), r.grid[0] * r.grid[1]
    assert [a.shape for a in r.raw.text_to_image] == [(1, T, P)]
    assert [a.shape for a in r.raw.image_to_text] == [(1, P, T)]
    np.testing.assert_allclose(r.raw.text_to_image[0].sum(-1), 1, atol=1e-5)
    np.testing.assert_allclose(r.raw.image_to_text[0].sum(-1), 1, atol=1e-5)


def test_batch_equals_single(grounder):
    images = [photo(80, 50, 1), photo(40, 40, 2), photo(50, 80, 3)]
    captions = [CAPTION, "a big blue circle", "the cat left of the tree"]
    batch = grounder.ground_batch(images, captions)
    for im, cap, b in zip(images, captions, batch):
        s = grounder.ground(im, cap)
        assert b.words == s.words and b.grounded == s.grounded and b.boxes == s.boxes
        np.testing.assert_allclose(b.word_maps, s.word_maps, atol=1e-5)
        np.testing.assert_allclose(b.image_to_text, s.image_to_text, atol=1e-5)
        assert b.match_score == pytest.approx(s.match_score, abs=1e-5)


@pytest.mark.parametrize("method", ["attention", "rollout", "gradcam"])
def test_methods(grounder, maskclip, method):
    r = grounder.ground(photo(80, 50), CAPTION, method=method, heads="max", layer=0)
    assert r.method == method and r.word_maps.shape == (len(WORDS), 50, 80)
    assert np.isfinite(r.word_maps).all() and r.word_maps.max() == pytest.approx(1.0)
    if method == "gradcam":  # the match score reads the maps, so every word has a gradient; shown on
        # MaskCLIP's features: on random weights NACLIP's patches (no residual) are nearly alike, so
        # each word's cosines with them, and its gradients, share one sign
        r = maskclip.ground(photo(80, 50), CAPTION, method=method, heads="max", layer=0)
        assert (r.patch_maps.max(1) > 0).all()


def test_bad_settings_are_refused(grounder):
    with pytest.raises(ValueError, match="layer"):
        grounder.ground(photo(32, 32), "a dog", layer=1)
    with pytest.raises(ValueError, match="heads"):
        grounder.ground(photo(32, 32), "a dog", heads=1)


def test_json_round_trip(grounder, tmp_path):
    r = grounder.ground(photo(80, 50), CAPTION)
    d = json.loads(json.dumps(r.to_json(maps=True)))
    assert d["model"] == "tiny-clip" and d["words"] == WORDS and d["image_size"] == [80, 50]
    back = Grounding.from_json(d)
    assert back.words == r.words and back.grounded == r.grounded and back.boxes == r.boxes
    np.testing.assert_allclose(back.word_maps, r.word_maps, atol=1e-4)
    np.testing.assert_allclose(back.image_to_text, r.image_to_text, atol=1e-5)
    assert (r.save(tmp_path / "out") / "grounding.json").is_file()


def test_long_captions_are_cut_by_whole_words(grounder):
    enc = encode_words(grounder.tokenizer, ["zebra " * 10 + "dog"], max_tokens=12)  # 5 pieces per zebra
    assert enc.truncated == [True] and enc.words[0] == ["zebra", "zebra"] and enc.ids.shape == (1, 12)
    r = grounder.ground(photo(32, 32), "red " * 40)
    assert r.truncated and r.notice and len(r.words) == 30


def test_token_mode_and_more_heads_keep_the_contract(clip_dir):
    with offline():
        g = ClipGrounder.from_pretrained(clip_dir, text_queries="token", num_heads=4, fusion_layers=2, image_size=48)
    r = g.ground(photo(80, 50), CAPTION, raw=True)
    assert r.words == WORDS and r.grid == (4, 6) and r.word_maps.shape == (len(WORDS), 50, 80)
    assert [a.shape[:2] for a in r.raw.text_to_image] == [(4, len(r.raw.tokens))] * 2


# ---- training on frozen towers ------------------------------------------------------------------
def test_train_saves_a_checkpoint_that_loads_back(clip_dir, grounder, tmp_path):
    from mmattn.cli import main as cli

    images = tmp_path / "pairs"
    images.mkdir()
    lines = []
    for i, caption in enumerate(["a red dog on the grass", "a blue car", "a cat in a tree"]):
        photo(60 + 10 * i, 40, i).save(images / f"{i}.png")
        lines.append(json.dumps({"image": f"pairs/{i}.png", "caption": caption}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines))
    for data in ([], ["--jsonl", str(tmp_path / "pairs.jsonl")]):
        out = tmp_path / ("jsonl" if data else "shapes")
        with offline():
            cli(["train", "--clip", str(clip_dir), *data, "--steps", "2", "--batch-size", "2", "--out", str(out)])
            g = Grounder.from_pretrained(out / "last")
        assert isinstance(g, ClipGrounder) and g.trained and g.backend == "CLIP backend, trained fusion"
        moved = [not torch.equal(a, b) for a, b in zip(g.model.fusion.parameters(), grounder.model.fusion.parameters())]
        assert any(moved)  # the fusion trained ...
        for a, b in zip(g.model.image_encoder.parameters(), grounder.model.image_encoder.parameters()):
            assert torch.equal(a, b)  # ... on frozen towers
        info = json.loads((out / "last" / "mmattn_clip.json").read_text())
        assert info["step"] == 2 and info["config"]["dim"] == 16
        r = g.ground(photo(80, 50), CAPTION)
        assert r.words == WORDS and r.word_maps.shape == (len(WORDS), 50, 80)


def test_train_refuses_bad_jsonl(clip_dir, tmp_path):
    from mmattn.training.clip_train import read_jsonl

    (tmp_path / "bad.jsonl").write_text('{"image": "x.png"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="no JSONL file"):
        read_jsonl(tmp_path / "missing.jsonl")


# ---- the demo -------------------------------------------------------------------------------------
def test_demo_serves_the_clip_backend(clip_dir, tmp_path, monkeypatch):
    """app.py with MMATTN_MODEL=<CLIP folder> (a second copy of the module: the app tests own ``app``)."""
    pytest.importorskip("gradio")
    monkeypatch.setenv("MMATTN_MODEL", str(clip_dir))
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples"))
    spec = importlib.util.spec_from_file_location("app_with_clip", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, app)  # dataclasses look their module up
    with offline():
        spec.loader.exec_module(app)
    assert isinstance(app.GROUNDER, ClipGrounder) and not app.DEFAULT.grounder.checks_world and "legrad" in app.METHODS
    assert "CLIP backend, zero-shot fusion" in app.MODEL_INFO and clip_dir.name in app.MODEL_INFO
    image = photo(160, 120)
    picture, table, match, notice, data = app.ground(image, "a red dog on the grass")
    assert data["words"] == ["a", "red", "dog", "on", "the", "grass"] and len(table) == len(data["words"])
    assert set(match) == {"the caption describes the image", "it does not"} and picture.height >= app.views.VIEW_HEIGHT
    before = app.GROUNDER.forward_passes
    *_, data = app.ground(image, "a red dog on the grass", "legrad")
    assert data["method"] == "legrad" and app.GROUNDER.forward_passes == before + 1  # one pass with its backward
    pics, md, per_head, steps = app.steps_view(image, "a red dog", "dog", 0, 0, "text_to_image")
    assert steps["max_weight_error"] < 1e-4 and steps["tokens"][0] == "<|startoftext|>"
    assert app.positions_view(image, 16, 16, "", None, None)[-1]["grid_encoding"] == "learned (CLIP, interpolated)"
