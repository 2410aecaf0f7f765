"""mmattn.teach.views only reads its trace: what a view keeps, it keeps beside the trace, and
that goes when the trace goes."""

import gc

from scene_helpers import two_shapes

from mmattn.teach import views


def test_views_do_not_write_into_the_trace(g):
    trace = g.trace(two_shapes(), "the red circle left of the blue square", inputs=True)
    trace.grounding()  # the trace's own reading (it keeps its readings)
    before = dict(trace.memo)
    first = views.ground_view(trace)
    steps = views.attention_steps(g, trace, None, 0, "text_to_image")
    assert trace.memo.keys() == before.keys()
    assert views.ground_view(trace) is first  # kept beside the trace: made once
    assert views.attention_steps(g, trace, None, 0, "text_to_image") is steps
    other = g.trace(two_shapes(), "the blue square")
    assert views.ground_view(other) is not first  # each trace its own


def test_what_a_view_keeps_goes_with_its_trace(g):
    gc.collect()
    n = len(views.KEPT)
    trace = g.trace(two_shapes(), "a red circle")
    views.ground_view(trace)
    assert len(views.KEPT) == n + 1
    del trace
    gc.collect()
    assert len(views.KEPT) == n
