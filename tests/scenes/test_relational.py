"""Relational scenes: the referent and its same-shape distractors stand on different sides
of the landmark; the caption's words refer to the referent and the landmark; negatives hold
for no object; both Chinese word orders; every caption tokenises into its words."""

import numpy as np
import pytest

from mmattn.models.tokenizer import load_tokenizer
from mmattn.scenes import TRAIN, relation
from mmattn.scenes.relational import CASES, RELATIONS, holds_for, make_relational_sample
from mmattn.scenes.samples import Desc
from mmattn.training.batches import build_batch
from mmattn.training.relations_eval import relational_samples


def _desc(sample, k):
    words = [w for w in sample.caption.words if w.ref == k]
    colour = next((w.text for w in words if w.kind == "colour"), None)
    return colour is not None


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rel", RELATIONS)
def test_only_the_referent_stands_in_the_relation(case, rel):
    for seed in range(6):
        s = make_relational_sample(seed, 128, 96, TRAIN, case=case, rel=rel)
        short = 96
        ref, landmark = s.objects[0], s.objects[1]
        assert relation(ref, landmark, short) == rel
        assert s.distractors and s.case == case and s.caption.relation == rel
        for k in s.distractors:
            d = s.objects[k]
            assert d.shape == ref.shape
            assert (d.colour == ref.colour) == (case == "same_colour")
            assert relation(d, landmark, short) not in (None, rel)
        assert sum(o.shape == landmark.shape for o in s.objects) == 1  # the landmark is unique
        # the referent's words refer to object 0, the landmark's to object 1, nothing else
        refs = {w.ref for w in s.caption.words if w.ref is not None}
        assert refs == {0, 1}
        named = _desc(s, 0)
        assert named == _desc(s, 1)
        if case == "colour_not_named":
            assert not named
        desc = Desc(ref.colour if named else None, ref.shape)
        assert holds_for(desc, rel, 1, s.objects, short) == [0]  # the caption picks one object


def test_negatives_are_false_and_never_the_distractors_relation():
    for seed in range(40):
        s = make_relational_sample(seed, 128, 128)
        kinds = [n.neg_kind for n in s.negatives]
        assert "relation" in kinds
        for n in s.negatives:
            assert n.text != s.caption.text
            if n.neg_kind == "relation":
                ref = s.objects[0]
                named = any(w.kind == "colour" and w.ref == 0 for w in s.caption.words)
                desc = Desc(ref.colour if named else None, ref.shape)
                assert holds_for(desc, n.relation, 1, s.objects, 128) == []  # true of neither object


def test_both_chinese_orders_and_english():
    a = make_relational_sample(3, 128, 128, lang="zh", case="colour_not_named", rel="left", landmark_first=False)
    b = make_relational_sample(3, 128, 128, lang="zh", case="colour_not_named", rel="left", landmark_first=True)
    e = make_relational_sample(3, 128, 128, lang="en", case="colour_not_named", rel="left")
    assert a.caption.words[0].ref == 0 and "在" in a.caption.text and a.caption.text.endswith("的左边")
    assert b.caption.words[0].ref == 1 and b.caption.words[-1].ref == 0 and "左边的" in b.caption.text
    assert e.caption.text.startswith("the ") and " left of the " in e.caption.text


def test_deterministic_and_bad_arguments():
    a, b = make_relational_sample(7, 96, 96), make_relational_sample(7, 96, 96)
    assert a.caption.text == b.caption.text and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    with pytest.raises(ValueError, match="'sideways'"):
        make_relational_sample(0, rel="sideways")
    with pytest.raises(ValueError, match="'both'"):
        make_relational_sample(0, case="both")
    with pytest.raises(ValueError, match="20x20"):
        make_relational_sample(0, 20, 20)


def test_held_out_set_covers_every_combination():
    samples = relational_samples(48)
    combos = {(s.case, s.caption.lang, s.caption.words[0].ref, s.caption.relation) for s in samples}
    # 2 cases x (en + zh in two orders) x 4 relations
    assert len(combos) == 24


def test_relational_batches_carry_the_referent_mask():
    """The referent's words are pulled to the referent, not to the distractor (the centre
    of mass of their target maps lies in the referent's box)."""
    tok = load_tokenizer("assets/model")
    samples = [make_relational_sample(i, 128, 96) for i in range(8)]
    b = build_batch(samples, tok, 8, np.random.default_rng(0), 1.0, image_size=128)
    ys, xs = np.mgrid[0:12, 0:16]
    centres = np.stack([(xs.ravel() + 0.5) * 8, (ys.ravel() + 0.5) * 8], 1)  # (P, 2) pixels
    for i, s in enumerate(samples):
        rows = b["t2i"][i][b["t2i_w"][i] > 0].numpy()  # (n, P): referent's and landmark's tokens
        inside = lambda o, c: o.box[0] <= c[0] < o.box[2] and o.box[1] <= c[1] < o.box[3]  # noqa: E731
        picks = []
        for r in rows:
            c = r @ centres
            picks.append(0 if inside(s.objects[0], c) else 1 if inside(s.objects[1], c) else -1)
        n_ref = sum(w.ref == 0 for w in s.caption.words)
        assert picks.count(0) >= n_ref and -1 not in picks, (s.caption.text, picks)
