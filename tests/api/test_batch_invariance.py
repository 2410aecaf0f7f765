"""A result does not depend on what else was in its batch (issue #25), under the default precision."""

import numpy as np
import pytest

import mmattn
from mmattn.api import precision
from mmattn.scenes import SHIFTED, TRAIN, make_sample
from mmattn.scenes.relational import make_relational_sample

SEED = 78_500_000  # seeds used by neither training nor `mmattn eval`
SIZES = [(320, 240), (200, 120), (120, 200), (96, 96), (160, 120)]


@pytest.fixture(scope="module")
def pairs():
    """32 held-out pairs: several image sizes (so a chunk holds several model input sizes), both
    render configs, English and Chinese captions."""
    out = []
    for i in range(32):
        if i % 8 == 5:  # a relational scene with a same-shape distractor: its phrase is boxed where both layers see it
            s = make_relational_sample(SEED + i, *SIZES[i % len(SIZES)], lang="zh" if i % 16 == 5 else "en")
        else:
            s = make_sample(SEED + i, *SIZES[i % len(SIZES)], SHIFTED if i % 2 else TRAIN, lang="zh" if i % 7 == 3 else "en")
        out.append((s.image, s.caption.text))
    return out


@pytest.fixture(scope="module")
def g():
    return mmattn.Grounder.from_pretrained()  # the default precision ("auto")


@pytest.fixture(scope="module")
def singles(g, pairs):
    return [g.ground(im, c) for im, c in pairs]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 32])
def test_ground_batch_equals_ground(g, pairs, singles, batch_size, monkeypatch):
    # as on a CPU with bfloat16 instructions, where "auto" used to switch batches of 4 or more to bfloat16
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    images, captions = [p[0] for p in pairs], [p[1] for p in pairs]
    batch = g.ground_batch(images, captions, batch_size=batch_size, progress=False)
    assert len(batch) == len(singles)
    for i, (b, one) in enumerate(zip(batch, singles, strict=True)):
        assert (b.words, b.grounded, b.boxes) == (one.words, one.grounded, one.boxes), i
        assert [p.to_json() for p in b.phrases] == [p.to_json() for p in one.phrases], i  # boxed with the batch's words
        assert b.word_maps.shape == one.word_maps.shape
        np.testing.assert_allclose(b.word_maps, one.word_maps, atol=1e-4, err_msg=f"pair {i}")
        np.testing.assert_allclose(b.patch_maps, one.patch_maps, atol=1e-5, err_msg=f"pair {i}")
        np.testing.assert_allclose(b.grounded_scores, one.grounded_scores, atol=1e-5)
        assert b.match_score == pytest.approx(one.match_score, abs=1e-5)
    traces = list(g.iter_traces(images[:batch_size], captions[:batch_size], batch_size=batch_size, progress=False))
    assert {t.precision for t in traces} == {"float32"}


def test_bfloat16_only_when_asked(g, pairs):
    gb = type(g)(g.model, g.processor, precision="float32")
    assert {t.precision for t in gb.iter_traces([p[0] for p in pairs[:4]], [p[1] for p in pairs[:4]], progress=False)} == {"float32"}
    with pytest.warns(UserWarning, match="slower"):  # this CPU has no bfloat16 instructions
        gb = type(g)(g.model, g.processor, precision="bfloat16")
    assert gb.trace(*pairs[0]).precision == "bfloat16"  # single questions too, not only batches
