"""Trace: one forward pass records what every reading needs; the readings equal the API's;
the trace cache runs each question once; precision='auto' follows the hardware."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from app_fixtures import model_dir, scene
from PIL import Image

from mmattn.api import precision
from mmattn.api.grounder import Grounder
from mmattn.demo.tracecache import TraceCache, image_digest
from mmattn.teach import views

CAPTION = "a red circle, left of the blue square"


@pytest.fixture(scope="module")
def g() -> Grounder:
    return Grounder.from_pretrained(model_dir(), precision="float32")


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return scene(150, 100)


def test_a_trace_holds_every_layer_and_head_both_ways(g, image):
    before = g.forward_passes
    t = g.trace(image, CAPTION)
    assert g.forward_passes == before + 1
    T, (gh, gw) = len(t.tokens), t.grid
    assert t.words == ["a", "red", "circle", "left", "of", "the", "blue", "square"]  # punctuation read, not reported
    assert t.model_size == (gw * g.processor.patch_size, gh * g.processor.patch_size) and t.size == image.size
    assert len(t.text_to_image) == len(t.image_to_text) == g.num_layers
    for a, b in zip(t.text_to_image, t.image_to_text):
        assert a.shape == (g.num_heads, T, gh * gw) and b.shape == (g.num_heads, gh * gw, T)
        np.testing.assert_allclose(a.sum(-1), 1, atol=1e-5)
        np.testing.assert_allclose(b.sum(-1), 1, atol=1e-5)
    assert t.gradients is None and t.inputs is None and 0 <= t.match_score <= 1


@pytest.mark.parametrize("method", ["attention", "rollout", "gradcam"])
def test_readings_equal_ground(g, image, method):
    t = g.trace(image, CAPTION, gradients=method == "gradcam")
    for layer, heads in ((None, "mean"), (0, "max"), (1, 2)):
        a, b = t.grounding(method, layer, heads), g.ground(image, CAPTION, method=method, layer=layer, heads=heads)
        assert a.words == b.words and a.grounded == b.grounded and a.boxes == b.boxes
        np.testing.assert_allclose(a.patch_maps, b.patch_maps, atol=1e-6)
        np.testing.assert_allclose(a.image_to_text, b.image_to_text, atol=1e-6)


def test_gradcam_needs_gradients_and_bad_readings_say_why(g, image):
    t = g.trace(image, CAPTION)
    with pytest.raises(ValueError, match="gradients=True"):
        t.grounding("gradcam")
    with pytest.raises(ValueError, match="does not exist"):
        t.grounding(layer=g.num_layers)
    with pytest.raises(ValueError, match="heads"):
        t.grounding(heads=g.num_heads)
    with pytest.raises(ValueError, match="method"):
        t.token_maps("magic")


def test_batch_traces_equal_single_traces(g):
    images = [scene(150, 100), scene(100, 150), scene(150, 100)]
    captions = [CAPTION, "a blue square", "一个红色的圆"]
    for t, im, cap in zip(g.iter_traces(images, captions, batch_size=2), images, captions):
        s = g.trace(im, cap)
        assert t.words == s.words and t.grid == s.grid
        for a, b in zip(t.text_to_image, s.text_to_image):
            np.testing.assert_allclose(a, b, atol=1e-5)


# ---- the cache ------------------------------------------------------------------------------
def test_cache_runs_each_question_once(g, image):
    cache = TraceCache(g, size=2)
    before = g.forward_passes
    k1, t1 = cache.get(image, CAPTION)
    k2, t2 = cache.get(image.copy(), CAPTION)  # same pixels, another object
    assert t1 is t2 and k1 == k2 and g.forward_passes == before + 1
    assert t1.inputs is not None  # the step-by-step view can read it
    _, tg = cache.get(image, CAPTION, gradients=True)  # Grad-CAM: one more pass, which then serves both
    assert tg.gradients is not None and g.forward_passes == before + 2
    assert cache.get(image, CAPTION)[1] is tg
    cache.get(scene(60, 60), CAPTION)  # a third question evicts the oldest
    assert len(cache) == 2


def test_cache_runs_concurrent_identical_questions_once(g):
    cache = TraceCache(g, size=4)
    im = scene(120, 90)
    before = g.forward_passes
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(im, "a red circle")[1])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 6 and all(t is got[0] for t in got)
    assert g.forward_passes == before + 1


def test_cache_does_not_keep_failures(g):
    cache = TraceCache(g, size=4)
    with pytest.raises(ValueError, match="empty"):
        cache.get(scene(), "   ")
    assert len(cache) == 0
    with pytest.raises(ValueError, match="at least one"):
        TraceCache(g, size=0)


def test_image_digest_is_the_content():
    a, b = scene(40, 30), scene(40, 30)
    assert image_digest(a) == image_digest(b)
    b.putpixel((0, 0), (0, 0, 0))
    assert image_digest(a) != image_digest(b)


# ---- precision -----------------------------------------------------------------------------------
def test_auto_precision_is_float32_whatever_the_batch_and_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.arithmetic("auto", "cpu", batch=64) == "float32"
    with pytest.warns(UserWarning, match="slower"):
        precision.check_precision("bfloat16", "cpu")
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    for batch in (1, 4, 32, 512):  # a result must not depend on what else was in its batch (issue #25)
        assert precision.arithmetic("auto", "cpu", batch=batch) == "float32"
        assert precision.arithmetic("bfloat16", "cpu", batch=batch) == "bfloat16"  # when asked, for every batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.check_precision("bfloat16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        precision.check_precision("float16")


# ---- the views -----------------------------------------------------------------------------------
def test_ground_view_colours_and_default_words(g, image):
    t = g.trace(image, CAPTION)
    v = views.ground_view(t)
    assert v.picture.height >= views.VIEW_HEIGHT
    assert [w.colour for w in v.words] == views.word_colours(t.words)
    assert v.data["colours"] == [w.colour for w in v.words]
    # each word is drawn in its own colour: a map shown alone tints the picture toward it
    maps = np.zeros((2, 20, 20), np.float32)
    maps[0, :, :10], maps[1, :, 10:] = 1.0, 1.0
    grey = Image.new("RGB", (20, 20), (128, 128, 128))
    out = np.asarray(views.compose(grey, maps, ["#ff0000", "#0000ff"], [0, 1]), float)
    assert out[10, 3, 0] > out[10, 3, 2] and out[10, 16, 2] > out[10, 16, 0]
    out = np.asarray(views.compose(grey, maps, ["#ff0000", "#0000ff"], [1]), float)
    assert abs(out[10, 3, 0] - 128) < 1  # a hidden word is not drawn


def test_legend_escapes_words_and_boxes_have_area():
    rows = [views.WordRow(0, "<b>x</b>", "0:<b>x</b>", "#e6194b", True, True, 0.9, 1.0, [0, 0, 1, 1])]
    html = views.legend_html(rows)
    assert "<b>x" not in html and "&lt;b&gt;" in html
    assert views.scale_box((0, 0, 1, 1), (1, 1), (448, 448)) == [0, 0, 448, 448]
    assert views.scale_box((0, 0, 1, 1), (2000, 2000), (10, 10)) == [0, 0, 1, 1]


# ---- what the model knows ------------------------------------------------------------------------------
def test_photographs_are_outside_the_world_and_nothing_is_found(g):
    data = pytest.importorskip("skimage.data")
    for photo in (data.chelsea(), data.coffee(), data.astronaut()):
        r = g.ground(Image.fromarray(photo), "a small orange circle")
        assert r.out_of_world and not any(r.grounded) and all(b is None for b in r.boxes)
        assert "CLIP backend" in r.notice
    r = g.ground(scene(160, 120), "a red circle")
    assert not r.out_of_world and any(r.grounded)
    t = g.trace(Image.fromarray(data.chelsea()), "a small orange circle")
    assert views.default_shown(t.grounding().grounded, True) == []  # the page draws no map on a photo until asked


def test_unknown_words_get_a_suggestion(g):
    r = g.ground(scene(160, 120), "a red sqare")
    assert "sqare" in r.unknown_words and "did you mean" in r.notice and "square" in r.notice
    t = g.trace(scene(160, 120), "a red sqare")
    assert t.suggestions == {"sqare": "square"}
