"""Specification of GroundingModel, its image input policy and its checkpoints.

- Output shapes on a non-square image and a padded batch; attention rows are distributions;
  padding is invisible (zero weight, and real tokens' outputs do not change).
- GroundingOutput has the same fields whatever the flags; attention tuples are empty
  unless asked for.
- Images: sizes must be multiples of the patch size; target_size keeps the aspect ratio;
  load_image accepts every common PIL mode, arrays, EXIF rotation, and fails clearly.
- Checkpoints are safetensors + config.json only, round-trip exactly, and every kind of
  damage is a CheckpointError (a ValueError) that names the problem. No pickle, ever.
"""

import dataclasses
import io
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mmattn.api.image import load_image, target_size, to_tensor
from mmattn.models.encoders import ImageEncoder
from mmattn.models.grounding_model import CheckpointError, GroundingConfig, GroundingModel, GroundingOutput, RelationProbe

VOCAB, PAD, CLS, SEP = 60, 0, 2, 3
CONFIG = GroundingConfig(vocab_size=VOCAB, dim=32, num_heads=4, text_layers=1, image_layers=1, fusion_layers=2)
B, H, GRID = 2, 4, (6, 10)
P = GRID[0] * GRID[1]
ATOL = 1e-5


def caption(n_words: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [CLS, *torch.randint(5, VOCAB, (n_words,), generator=g).tolist(), SEP]


def pad_batch(captions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(map(len, captions))
    ids = torch.tensor([c + [PAD] * (T - len(c)) for c in captions])
    return ids, ids != PAD


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GroundingModel(CONFIG).eval()


@pytest.fixture(scope="module")
def batch():
    """Two captions of 7 and 4 tokens (the second padded to 7) and two 48x80 images."""
    ids, mask = pad_batch([caption(5, 1), caption(2, 2)])
    pixels = torch.randn(B, 3, 48, 80, generator=torch.Generator().manual_seed(3))
    return ids, mask, pixels


# ---- forward ------------------------------------------------------------------------------


def test_output_shapes_on_a_non_square_image_and_a_padded_batch(model, batch):
    ids, mask, pixels = batch
    T = ids.size(1)
    with torch.no_grad():
        out = model(ids, pixels, mask, output_attentions=True)
    assert out.grid == GRID
    assert out.text_features.shape == (B, T, CONFIG.dim)
    assert out.image_features.shape == (B, P, CONFIG.dim)
    assert out.match_logits.shape == (B,)
    assert out.grounded_logits.shape == (B, T)
    assert out.patch_logits.shape == (B, P, 21)
    assert out.text_embeds.shape == out.image_embeds.shape == (B, CONFIG.embed_dim)
    torch.testing.assert_close(out.text_embeds.norm(dim=-1), torch.ones(B))
    assert out.centroids.shape == (B, T, 2) and out.centroids.abs().max() <= 1
    assert len(out.text_to_image) == len(out.image_to_text) == CONFIG.fusion_layers
    for t2i, i2t in zip(out.text_to_image, out.image_to_text, strict=True):
        assert t2i.shape == (B, H, T, P)  # each word's map over the patches
        assert i2t.shape == (B, H, P, T)  # each patch's distribution over the words
    assert [w.shape for w in out.text_self_attentions] == [(B, H, T, T)] * CONFIG.text_layers
    assert [w.shape for w in out.image_self_attentions] == [(B, H, P, P)] * CONFIG.image_layers


def test_attention_rows_sum_to_one_and_padding_gets_zero_weight(model, batch):
    ids, mask, pixels = batch
    with torch.no_grad():
        out = model(ids, pixels, mask, output_attentions=True)
    for t2i, i2t in zip(out.text_to_image, out.image_to_text, strict=True):
        torch.testing.assert_close(t2i.sum(-1), torch.ones(t2i.shape[:-1]))
        torch.testing.assert_close(i2t.sum(-1), torch.ones(i2t.shape[:-1]))
        assert (i2t.masked_select(~mask[:, None, None, :]) == 0).all()  # exactly zero on [PAD]
    for w in out.text_self_attentions:
        assert (w.masked_select(~mask[:, None, None, :]) == 0).all()


def test_output_fields_do_not_depend_on_output_attentions(model, batch):
    ids, mask, pixels = batch
    with torch.no_grad():
        plain = model(ids, pixels, mask)
        full = model(ids, pixels, mask, output_attentions=True)
    assert isinstance(plain, GroundingOutput) and isinstance(full, GroundingOutput)
    assert set(vars(plain)) == set(vars(full)) == {f.name for f in dataclasses.fields(GroundingOutput)}
    attention_fields = ("text_to_image", "image_to_text", "text_self_attentions", "image_self_attentions")
    for name in attention_fields:
        assert getattr(plain, name) == (), name
        assert len(getattr(full, name)) > 0, name
    for name in set(vars(plain)) - set(attention_fields) - {"grid"}:  # asking for weights changes nothing else
        torch.testing.assert_close(getattr(plain, name), getattr(full, name), atol=ATOL, rtol=1e-5, msg=name)


def test_padding_does_not_change_the_real_tokens(model, batch):
    ids, mask, pixels = batch
    n = int(mask[1].sum())  # the short caption, alone and without padding
    with torch.no_grad():
        together = model(ids, pixels, mask, output_attentions=True)
        alone = model(ids[1:, :n], pixels[1:], mask[1:, :n], output_attentions=True)
        no_mask = model(ids[1:, :n], pixels[1:])  # attention_mask defaults to all real

    def close(a, b, what):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4, msg=what)

    close(together.text_features[1, :n], alone.text_features[0], "text_features")
    close(together.image_features[1], alone.image_features[0], "image_features")
    close(together.match_logits[1], alone.match_logits[0], "match_logits")
    close(together.grounded_logits[1, :n], alone.grounded_logits[0], "grounded_logits")
    close(together.centroids[1, :n], alone.centroids[0], "centroids")
    for layer in range(CONFIG.fusion_layers):
        close(together.text_to_image[layer][1, :, :n], alone.text_to_image[layer][0], "text_to_image")
        close(together.image_to_text[layer][1, :, :, :n], alone.image_to_text[layer][0], "image_to_text")
    close(no_mask.match_logits, alone.match_logits, "default mask")


def test_a_precomputed_image_gives_the_same_outputs(model, batch):
    ids, mask, pixels = batch
    with torch.no_grad():
        direct = model(ids, pixels, mask)
        cached = model(ids, attention_mask=mask, image=model.encode_image(pixels))
    torch.testing.assert_close(direct.match_logits, cached.match_logits)
    with pytest.raises(TypeError, match="pixels"):
        model(ids, attention_mask=mask)


def test_config_rejects_dim_not_divisible_by_heads_and_zero_fusion_layers():
    with pytest.raises(ValueError, match="dim=30.*num_heads=4"):
        GroundingConfig(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="fusion"):
        GroundingConfig(fusion_layers=0)
    with pytest.raises(ValueError, match="match_layers=0"):
        GroundingConfig(match_layers=0)
    with pytest.raises(ValueError, match="relation_heads.*-1"):
        GroundingConfig(relation_heads=-1)


@pytest.fixture(scope="module")
def probe_input():
    g = torch.Generator().manual_seed(7)
    text = torch.randn(3, 9, 32, generator=g)  # (B, T, D)
    centroids = torch.rand(3, 9, 2, generator=g) * 2 - 1  # (B, T, 2)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False
    return text, centroids, mask


def test_relation_probe_depends_only_on_where_objects_are_relative_to_each_other(probe_input):
    """(b - a) . u: moving every word's map by the same offset changes nothing, scaling the
    scene scales the answer, and padded tokens have no say."""
    torch.manual_seed(0)
    probe = RelationProbe(32, 3)
    text, c, mask = probe_input
    out = probe(text, c, mask)
    assert out.shape == (3,) and out.abs().min() > 0
    torch.testing.assert_close(probe(text, c + torch.tensor([0.3, -0.2]), mask), out)
    torch.testing.assert_close(probe(text, 2 * c, mask), 2 * out)
    junk = text.clone()
    junk[1, 6:] = 100.0
    moved = c.clone()
    moved[1, 6:] = 5.0
    torch.testing.assert_close(probe(junk, moved, mask), out)
    nothing = torch.zeros_like(mask)  # no token at all: zero, never NaN
    assert torch.equal(probe(text, c, nothing), torch.zeros(3))


def test_relation_probe_knows_left_from_right():
    """A hand-set probe: token 1 is the subject, token 3 the object, token 2 the relation
    word whose direction is +x ("left of": the object lies to the right). Its output is the
    object's x minus the subject's x, so it flips sign when the two swap places."""
    probe = RelationProbe(4, 1)
    with torch.no_grad():
        probe.norm.weight.fill_(1.0)
        probe.norm.bias.zero_()
        probe.roles.weight.zero_()
        probe.roles.bias.zero_()
        probe.roles.weight[0, 0] = probe.roles.weight[1, 1] = probe.roles.weight[2, 2] = 50.0  # role r <- feature r
        probe.direction.weight.zero_()
        probe.direction.bias.zero_()
        probe.direction.weight[0, 2] = 1.0  # the relation word points along +x
    text = torch.full((1, 4, 4), -1.0)
    for t, feature in ((1, 0), (3, 1), (2, 2)):
        text[0, t, feature] = 3.0
    u = probe.direction(probe.norm(text))[0, 2, 0]
    left = torch.tensor([[[0.0, 0.0], [-0.5, 0.1], [0.0, 0.0], [0.6, 0.2]]])  # subject left of object
    mask = torch.ones(1, 4, dtype=torch.bool)
    torch.testing.assert_close(probe(text, left, mask), (0.6 - -0.5) * u.reshape(1), atol=1e-4, rtol=1e-4)
    right = left[:, [0, 3, 2, 1]]
    assert probe(text, left, mask) > 0 > probe(text, right, mask)


def test_deeper_match_head_with_map_spread_and_relation_probe_runs_and_round_trips(batch, tmp_path):
    config = dataclasses.replace(CONFIG, match_layers=2, match_spread=True, relation_heads=2)
    model = GroundingModel(config).eval()
    assert len(model.match_blocks) == 1 and model.where.in_features == 4 and model.relation.k == 2
    ids, mask, pixels = batch
    model.save_pretrained(tmp_path)
    loaded = GroundingModel.load(tmp_path)
    assert loaded.config == config
    with torch.no_grad():
        a, b = model(ids, pixels, mask), loaded(ids, pixels, mask)
    assert a.match_logits.shape == (B,) and torch.isfinite(a.match_logits).all()
    assert torch.equal(a.match_logits, b.match_logits)


# ---- image size policy --------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["conv", "linear"])
@pytest.mark.parametrize("size", [(50, 80), (48, 81), (7, 7)])
def test_image_encoder_rejects_sizes_that_are_not_multiples_of_the_patch(stem, size):
    enc = ImageEncoder(32, 4, 1, patch_size=8, stem=stem).eval()
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        enc(torch.randn(1, 3, *size))


@pytest.mark.parametrize("stem", ["conv", "linear"])
def test_image_encoder_grid_is_pixels_over_patch_size(stem):
    enc = ImageEncoder(32, 4, 1, patch_size=8, stem=stem).eval()
    with torch.no_grad():
        feats, grid, _ = enc(torch.randn(1, 3, 48, 80))
    assert grid == (6, 10) and feats.shape == (1, 60, 32)


@pytest.mark.parametrize(
    "w, h", [(640, 480), (480, 640), (128, 128), (10, 10), (333, 222), (1920, 1080), (1000, 37), (3, 5000)]
)
def test_target_size_keeps_aspect_rounds_to_patches_and_fits_the_long_side(w, h):
    tw, th = target_size(w, h, image_size=128, patch_size=8)
    assert tw % 8 == 0 and th % 8 == 0 and tw >= 8 and th >= 8
    assert max(tw, th) == 128
    scale = 128 / max(w, h)
    assert abs(tw - w * scale) <= 4 or tw == 8  # nearest multiple of 8 (at least one patch)
    assert abs(th - h * scale) <= 4 or th == 8
    assert (tw >= th) == (w >= h)  # orientation kept


def test_target_size_rejects_empty_images():
    with pytest.raises(ValueError, match="empty"):
        target_size(0, 10)


def test_to_tensor_resizes_by_the_policy_and_normalises():
    t = to_tensor(Image.new("RGB", (300, 200), (128, 0, 255)))
    assert t.shape == (3, *reversed(target_size(300, 200)))
    assert t.dtype == torch.float32
    torch.testing.assert_close(t[:, 0, 0], (torch.tensor([128.0, 0.0, 255.0]) / 255 - 0.5) / 0.25)


def test_to_tensor_resizes_like_pillow_bilinear():
    """The resize (torch's antialiased bilinear on 8-bit pixels) is Pillow's BILINEAR filter,
    to within one grey level, down and up."""
    rng = np.random.default_rng(0)
    for size in [(320, 240), (60, 40), (129, 77)]:
        im = Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8))
        ref = np.asarray(im.resize(target_size(*size), Image.BILINEAR), np.float32)
        ours = ((to_tensor(im) * 0.25 + 0.5) * 255).permute(1, 2, 0).numpy()
        assert np.abs(ours - ref).max() <= 1.0 + 1e-3


# ---- load_image ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "PA", "YCbCr"])
def test_load_image_turns_every_pil_mode_into_rgb(mode):
    im = load_image(Image.new(mode, (7, 5)))
    assert im.mode == "RGB" and im.size == (7, 5)


def test_load_image_composites_transparency_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    im.putpixel((1, 1), (255, 0, 0, 255))  # one opaque red pixel
    rgb = load_image(im)
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (255, 0, 0)


def test_load_image_stretches_16_bit_images_to_8_bit():
    a = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000
    im = Image.fromarray(a)
    assert im.mode.startswith("I;16")
    rgb = load_image(im)
    assert rgb.getpixel((0, 0)) == (0, 0, 0) and rgb.getpixel((6, 4)) == (255, 255, 255)


@pytest.mark.parametrize(
    "array, pixel",
    [
        (np.full((5, 7), 200, np.uint8), (200, 200, 200)),
        (np.full((5, 7, 1), 200, np.uint8), (200, 200, 200)),
        (np.full((5, 7, 3), (10, 20, 30), np.uint8), (10, 20, 30)),
        (np.full((5, 7, 4), (10, 20, 30, 255), np.uint8), (10, 20, 30)),
        (np.full((5, 7, 3), 1.0), (255, 255, 255)),  # floats in [0, 1]
        (np.full((5, 7, 3), 0.5, np.float32), (127, 127, 127)),
        (np.full((5, 7, 3), 128.0), (128, 128, 128)),  # floats in [0, 255]
    ],
)
def test_load_image_accepts_numpy_arrays(array, pixel):
    im = load_image(array)
    assert im.mode == "RGB" and im.size == (7, 5)
    assert im.getpixel((3, 2)) == pixel


def test_load_image_accepts_paths_and_bytes(tmp_path):
    src = Image.new("RGB", (9, 4), (1, 2, 3))
    path = tmp_path / "img.png"
    src.save(path)
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        im = load_image(source)
        assert im.size == (9, 4) and im.getpixel((0, 0)) == (1, 2, 3)


def test_load_image_applies_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 0, 0)).save(buf, format="JPEG", exif=exif)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(buf.getvalue())
    for source in (buf.getvalue(), path, Image.open(path)):
        assert load_image(source).size == (20, 40)  # width and height swapped


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (None, TypeError, "no image given"),
        (42, TypeError, "int"),
        (np.zeros((0, 5, 3), np.uint8), ValueError, "empty"),
        (np.zeros((0, 0), np.uint8), ValueError, "empty"),
        (np.zeros((5, 7, 2), np.uint8), ValueError, "shape"),
        (b"this is not an image", ValueError, "could not read the image"),
        (b"", ValueError, "could not read the image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ValueError, "could not read the image"),  # truncated PNG
    ],
    ids=["none", "int", "zero-rows", "zero-size", "two-channels", "garbage", "no-bytes", "truncated-png"],
)
def test_load_image_fails_clearly(bad, error, message):
    with pytest.raises(error, match=message):
        load_image(bad)


def test_load_image_missing_path_is_a_value_error(tmp_path):
    for path in (tmp_path / "nope.png", str(tmp_path / "nope.png"), tmp_path):
        with pytest.raises(ValueError, match="no image file"):
            load_image(path)


# ---- checkpoints --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "model"
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def ckpt(saved, tmp_path):
    """A fresh copy of the saved checkpoint that the test may damage."""
    return shutil.copytree(saved, tmp_path / "model")


def edit_tensors(folder, edit):
    file = folder / "model.safetensors"
    state = load_file(file)
    edit(state)
    save_file(state, file, metadata={"format": "pt"})


def edit_config(folder, **changes):
    file = folder / "config.json"
    config = json.loads(file.read_text())
    config.update(changes)
    file.write_text(json.dumps(config))


def test_save_and_load_round_trip_exactly(model, saved, batch):
    loaded = GroundingModel.load(saved)
    assert loaded.config == model.config
    assert not loaded.training
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k
    ids, mask, pixels = batch
    with torch.no_grad():
        a = model(ids, pixels, mask, output_attentions=True)
        b = loaded(ids, pixels, mask, output_attentions=True)
    for f in dataclasses.fields(GroundingOutput):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f.name
        elif f.name != "grid":
            assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True)), f.name


def test_checkpoint_is_safetensors_and_json_without_pickle(saved):
    files = {p.name for p in saved.iterdir()}
    assert {"model.safetensors", "config.json"} <= files
    assert not {p for p in files if p.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))}
    for p in saved.iterdir():
        assert not p.read_bytes().startswith(b"\x80"), f"{p.name} looks like a pickle"  # pickle protocol >= 2
    assert json.loads((saved / "config.json").read_text()) == dataclasses.asdict(CONFIG)


def test_loading_never_unpickles(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must load without pickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch.serialization, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    GroundingModel.load(saved)
    GroundingModel.from_pretrained(saved)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_tensor(ckpt):
    edit_tensors(ckpt, lambda s: s.pop("match_head.bias"))
    with pytest.raises(CheckpointError, match=r"missing tensors match_head\.bias"):
        GroundingModel.load(ckpt)


def test_extra_tensor(ckpt):
    edit_tensors(ckpt, lambda s: s.update({"stray.weight": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors stray\.weight"):
        GroundingModel.load(ckpt)


def test_mis_shaped_tensor(ckpt):
    edit_tensors(ckpt, lambda s: s.update({"match_head.weight": torch.zeros(1, 33)}))
    with pytest.raises(CheckpointError, match=r"wrong shapes match_head\.weight: file \(1, 33\) vs model \(1, 32\)"):
        GroundingModel.load(ckpt)


def test_config_that_does_not_match_the_weights(ckpt):
    edit_config(ckpt, dim=64)
    with pytest.raises(CheckpointError, match="does not fit the model in its config.json: wrong shapes"):
        GroundingModel.load(ckpt)


@pytest.mark.parametrize("keep", [0.5, 0.0, 8])
def test_corrupt_safetensors(ckpt, keep):
    file = ckpt / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        GroundingModel.load(ckpt)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{dim: 32", "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        ("[1, 2]", "not a valid mmattn config.*JSON object"),
        ('{"dim": 32, "colour": "red"}', "not a valid mmattn config.*colour"),
        ('{"dim": 30, "num_heads": 4}', "not a valid mmattn config.*divisible"),
    ],
    ids=["broken", "empty", "binary", "list", "unknown-key", "bad-value"],
)
def test_invalid_config_json(ckpt, text, message):
    file = ckpt / "config.json"
    file.write_bytes(text) if isinstance(text, bytes) else file.write_text(text)
    with pytest.raises(CheckpointError, match=message):
        GroundingModel.load(ckpt)


def test_missing_files_and_folders(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        GroundingModel.load(tmp_path / "does-not-exist")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        GroundingModel.load(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        GroundingModel.load(ckpt)


# ---- the last fusion layer: image -> text weights only --------------------------------------


def test_last_fusion_layer_computes_what_is_read_and_nothing_else(batch):
    """Nothing reads the image stream after the last fusion layer, so by default that layer
    has no V, out_proj or MLP on the image side; every output that is read (match, grounded,
    maps in both directions, centroids) is what the full layer gives with the same weights."""
    torch.manual_seed(1)
    full = GroundingModel(dataclasses.replace(CONFIG, update_image_last=True)).eval()
    lean = GroundingModel(CONFIG).eval()
    last = lean.fusion[-1]
    assert not hasattr(last, "mlp_i") and not hasattr(last.image_to_text, "v_proj")
    assert hasattr(lean.fusion[0], "mlp_i") and hasattr(full.fusion[-1], "mlp_i")
    missing, unexpected = lean.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("fusion.1.") for k in unexpected)
    ids, mask, pixels = batch
    with torch.no_grad():
        a, b = full(ids, pixels, mask, output_attentions=True), lean(ids, pixels, mask, output_attentions=True)
    for name in ("match_logits", "grounded_logits", "text_features", "centroids"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)
    for wa, wb in zip(a.text_to_image + a.image_to_text, b.text_to_image + b.image_to_text):
        torch.testing.assert_close(wa, wb)
    # without weights asked for, the lean layer still gives the text->image map the heads read
    with torch.no_grad():
        c = lean(ids, pixels, mask)
    torch.testing.assert_close(c.match_logits, b.match_logits)


def test_checkpoints_saved_before_the_option_load_as_built(batch, tmp_path):
    """A config.json without update_image_last (all checkpoints before it) is a model whose
    last layer updates the image: it loads strictly, with its weights."""
    model = GroundingModel(dataclasses.replace(CONFIG, update_image_last=True)).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["update_image_last"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GroundingModel.load(tmp_path)
    assert loaded.config.update_image_last and hasattr(loaded.fusion[-1], "mlp_i")
    ids, mask, pixels = batch
    with torch.no_grad():
        assert torch.equal(model(ids, pixels, mask).match_logits, loaded(ids, pixels, mask).match_logits)
