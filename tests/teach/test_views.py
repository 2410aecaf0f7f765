"""mmattn.teach.views only reads its trace: what a view keeps, it keeps beside the trace, and
that goes when the trace goes."""

import gc

import pytest
from PIL import Image, ImageDraw

import mmattn
from mmattn.teach import views


@pytest.fixture(scope="module")
def g():
    return mmattn.Grounder.from_pretrained()


def scene():
    im = Image.new("RGB", (160, 120), (128, 128, 128))
    d = ImageDraw.Draw(im)
    d.ellipse([20, 40, 60, 80], fill=(220, 30, 30))
    d.rectangle([100, 40, 140, 80], fill=(30, 60, 220))
    return im


def test_views_do_not_write_into_the_trace(g):
    trace = g.trace(scene(), "the red circle left of the blue square", inputs=True)
    trace.grounding()  # the trace's own reading (it keeps its readings)
    before = dict(trace.memo)
    first = views.ground_view(trace)
    steps = views.attention_steps(g, trace, None, 0, "text_to_image")
    assert trace.memo.keys() == before.keys()
    assert views.ground_view(trace) is first  # kept beside the trace: made once
    assert views.attention_steps(g, trace, None, 0, "text_to_image") is steps
    other = g.trace(scene(), "the blue square")
    assert views.ground_view(other) is not first  # each trace its own


def test_what_a_view_keeps_goes_with_its_trace(g):
    gc.collect()
    n = len(views.KEPT)
    trace = g.trace(scene(), "a red circle")
    views.ground_view(trace)
    assert len(views.KEPT) == n + 1
    del trace
    gc.collect()
    assert len(views.KEPT) == n
