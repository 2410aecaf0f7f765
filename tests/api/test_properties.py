"""Properties of the grounding API that hold for any input Hypothesis can come up with.

For any image (a PIL image or an array: 1x1 to a few hundred pixels, any aspect ratio, grey,
RGB or RGBA, uint8, floats, booleans, flat or noisy) and any caption with a word in it,
``Grounder.ground()`` and ``ground_batch()`` return :class:`~mmattn.Grounding` results that
keep its contract:

- one entry per word in ``words``, ``patch_maps``, ``grounded``, ``grounded_scores``, ``boxes``
  and the columns of ``image_to_text``; the words are the caption's, in order;
- maps finite and in [0, 1], on the patch grid and at the image's size;
- each box None or inside the image with a positive width and height;
- scores are probabilities; unknown words are never grounded.

A caption without a word is a ValueError; ``ground_batch`` gives what ``ground`` gives for
each pair. Runs on the shipped model (a tiny random one where it is missing).
"""

from __future__ import annotations

import re
import string

import numpy as np
import pytest
from app_fixtures import CAPTIONS, model_dir
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmattn import Grounder, Grounding
from mmattn.api.maps import boxes_from_maps

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def g() -> Grounder:
    return Grounder.from_pretrained(model_dir(), precision="float32")


@pytest.fixture(scope="module")
def g_auto() -> Grounder:
    """The default precision: bfloat16 for batches on CPUs that have it."""
    return Grounder.from_pretrained(model_dir())


# ---- strategies ----------------------------------------------------------------------------

SIDES = st.one_of(st.integers(1, 16), st.integers(17, 64), st.integers(65, 320))  # tiny images are where boxes used to vanish
KINDS = ("rgb", "grey", "rgba", "grey1", "float01", "float255", "float32", "bool", "int64", "pil-rgb", "pil-l", "pil-rgba", "pil-p")


@st.composite
def images(draw):
    """(image, (width, height)): one of the kinds of image ``load_image`` accepts."""
    w, h, kind = draw(SIDES), draw(SIDES), draw(st.sampled_from(KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # noise
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    else:  # a flat colour with a block of another: maps may tie everywhere
        rgba = np.broadcast_to(rng.integers(0, 256, 4, dtype=np.uint8), (h, w, 4)).copy()
        rgba[h // 4 : h // 2 + 1, w // 3 : w // 2 + 1] = rng.integers(0, 256, 4, dtype=np.uint8)
    rgb = rgba[..., :3]
    image = {
        "rgb": rgb, "grey": rgb[..., 0], "rgba": rgba, "grey1": rgb[..., :1],
        "float01": rgb / 255.0, "float255": rgb.astype(np.float64), "float32": (rgb / 255).astype(np.float32),
        "bool": rgb[..., 0] > 127, "int64": rgb.astype(np.int64),
        "pil-rgb": Image.fromarray(rgb), "pil-l": Image.fromarray(rgb[..., 0]), "pil-rgba": Image.fromarray(rgba),
        "pil-p": Image.fromarray(rgb).convert("P"),
    }[kind]  # fmt: skip
    return image, (w, h)


VOCAB = sorted({w.strip(",.") for c in CAPTIONS for w in c.split() if w.isascii()})
WORDS = st.one_of(
    st.sampled_from(VOCAB),  # known words
    st.text(string.ascii_lowercase, min_size=1, max_size=9),  # unknown English words: letter pieces
    st.sampled_from(list("红蓝绿圆方星")),  # Chinese: one word per character
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6),  # anything that is text
)
PUNCT = st.sampled_from(["", "", "", ",", ".", "!", "?", " -", "，"])


@st.composite
def captions(draw):
    """A caption with at least one letter or digit (the others are refused, see below)."""
    words = draw(st.lists(WORDS, min_size=1, max_size=14))
    text = " ".join(w + draw(PUNCT) for w in words)
    assume(any(ch.isalnum() for ch in text))
    return text


# ---- the contract ---------------------------------------------------------------------------


def check_contract(r: Grounding, size: tuple[int, int], caption: str) -> None:
    W, (width, height) = len(r.words), size
    gh, gw = r.grid
    assert r.size == size and r.caption == caption
    assert len(r.grounded) == len(r.boxes) == len(r.grounded_scores) == W
    assert r.patch_maps.shape == (W, gh * gw) and r.image_to_text.shape == (gh * gw, W)
    for name, a in (("patch_maps", r.patch_maps), ("image_to_text", r.image_to_text)):
        assert np.isfinite(a).all() and (a >= 0).all() and (a <= 1 + 1e-6).all(), name
    maps = r.word_maps
    assert maps.shape == (W, height, width) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min(initial=0) >= 0 and maps.max(initial=0) <= 1 + 1e-6
    for b in r.boxes:
        assert b is None or (all(isinstance(v, int) for v in b) and 0 <= b[0] < b[2] <= width and 0 <= b[1] < b[3] <= height), (b, size)
    assert 0 <= r.match_score <= 1 and all(0 <= s <= 1 for s in r.grounded_scores)
    assert all(w and not re.search(r"\s", w) for w in r.words)
    for w, grounded in zip(r.words, r.grounded):
        assert not (grounded and w in r.unknown_words), w
    assert r.notice or not r.truncated  # a truncated caption comes with a notice


@settings(max_examples=200, **SETTINGS)
@given(image=images(), caption=captions())
def test_ground_keeps_the_contract_for_any_image_and_caption(g, image, caption):
    image, size = image
    check_contract(g.ground(image, caption), size, caption)


@settings(max_examples=40, **SETTINGS)
@given(pairs=st.lists(st.tuples(images(), captions()), min_size=2, max_size=5))
def test_ground_batch_keeps_the_contract_and_gives_what_ground_gives(g, g_auto, pairs):
    imgs, caps = [im for (im, _), _ in pairs], [c for _, c in pairs]
    batch = g.ground_batch(imgs, caps, batch_size=2)
    for ((im, size), cap), r in zip(pairs, batch, strict=True):
        check_contract(r, size, cap)
        one = g.ground(im, cap)
        assert r.words == one.words and r.grid == one.grid
        np.testing.assert_allclose(r.patch_maps, one.patch_maps, atol=1e-4)
        assert abs(r.match_score - one.match_score) < 1e-4
    for ((_, size), cap), r in zip(pairs, g_auto.ground_batch(imgs, caps), strict=True):
        check_contract(r, size, cap)


@settings(max_examples=100, **SETTINGS)
@given(words=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=20), punct=st.lists(PUNCT, min_size=20, max_size=20))
def test_the_words_are_the_captions_words_in_order(g, words, punct):
    caption = " ".join(w + p for w, p in zip(words, punct))
    r = g.ground(np.zeros((8, 8, 3), np.uint8), caption)
    expected = [w.lower() for w in words]
    if r.truncated:  # the first whole words that fit, and the caller is told
        assert r.words == expected[: len(r.words)] and r.notice
    else:
        assert r.words == expected


@settings(max_examples=30, **SETTINGS)
@given(caption=st.text(st.sampled_from(list(string.punctuation + " \t\n，。！？、…") + ["\u200b", "\U0001f600"]), max_size=12))
def test_a_caption_without_a_word_is_a_value_error(g, caption):
    with pytest.raises(ValueError, match="empty"):
        g.ground(np.zeros((8, 8, 3), np.uint8), caption)


@settings(max_examples=20, **SETTINGS)
@given(caption=captions(), position=st.integers(0, 20))
def test_a_caption_with_a_lone_surrogate_is_a_value_error(g, caption, position):
    bad = caption[:position] + "\udc80" + caption[position:]
    with pytest.raises(ValueError, match="not valid text"):
        g.ground(np.zeros((8, 8, 3), np.uint8), bad)


@settings(max_examples=300, **SETTINGS)
@given(gh=st.integers(1, 16), gw=st.integers(1, 16), height=st.integers(1, 3000), width=st.integers(1, 3000),
       n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), zeros=st.booleans())  # fmt: skip
def test_boxes_lie_inside_the_image_and_cover_at_least_a_pixel(gh, gw, height, width, n, seed, zeros):
    import torch

    maps = torch.from_numpy(np.random.default_rng(seed).random((n, gh * gw), dtype=np.float32))
    if zeros:
        maps[0] = 0  # an all-zero map has no box
    boxes = boxes_from_maps(maps, (gh, gw), (height, width))
    assert len(boxes) == n and (boxes[0] is None) == zeros
    for b in boxes[1:] if zeros else boxes:
        assert b is not None and 0 <= b[0] < b[2] <= width and 0 <= b[1] < b[3] <= height, (b, width, height)


@settings(max_examples=50, **SETTINGS)
@given(image=images(), caption=captions())
def test_json_round_trip_keeps_the_result(g, image, caption):
    r = g.ground(image[0], caption)
    back = Grounding.from_json(r.to_json(maps=True))
    assert (back.words, back.boxes, back.grounded, back.size, back.grid) == (r.words, r.boxes, r.grounded, r.size, r.grid)
    np.testing.assert_allclose(back.patch_maps, r.patch_maps, atol=1e-6)


@settings(max_examples=30, **SETTINGS)
@given(height=st.integers(1, 600), width=st.integers(1, 60), seed=st.integers(0, 2**32 - 1), alpha=st.floats(0, 1))
def test_overlay_is_the_blend_of_image_and_colour_ramp(height, width, seed, alpha):
    """overlay_map (in bands of rows, in float32) is image * (1 - a m) + ramp(m) * a m, to one grey level."""
    from mmattn.api.pictures import colorize, overlay_map

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    m = rng.random((height, width)) * 1.4 - 0.2  # values outside [0, 1] are clipped
    w = alpha * np.clip(m, 0, 1)[..., None]
    expected = image * (1 - w) + colorize(m) * w
    got = np.asarray(overlay_map(Image.fromarray(image), m, alpha=alpha))
    assert got.shape == image.shape and np.abs(got - expected).max() <= 1.0
