"""Positions off on a relational scene (mmattn.teach.relations):

- ``side_of`` says where a box lies relative to a landmark's box, as the scenes define
  relations (the dominant axis 1.3x the other), None when unclear;
- ``referent_jump`` names, in English and Chinese, the object the referent phrase picks with
  and without positions; a caption without a relation is refused;
- known answers (only with a shipped model that resolves relations, i.e. has an AnchorBias):
  on generated relational scenes, with positions the referent's box is on the referent, in
  both languages, all four relations and both Chinese word orders; without positions the
  pick jumps to the distractor in some of them.
"""

import pytest

from mmattn.api.grounder import Grounder
from mmattn.io.checkpoint import read_json
from mmattn.scenes.relational import RELATIONS, make_relational_sample
from mmattn.teach.relations import referent_jump, side_of
from mmattn.training.relations_eval import picked, referent_phrase

RESOLVES = read_json("assets/model/config.json").get("anchor_bias", False)


def test_side_of():
    lm = (40, 40, 60, 60)
    assert side_of((0, 40, 20, 60), lm) == "left"
    assert side_of((80, 45, 100, 65), lm) == "right"
    assert side_of((40, 0, 60, 20), lm) == "above"
    assert side_of((42, 80, 62, 100), lm) == "below"
    assert side_of((0, 0, 20, 20), lm) is None  # diagonal: no clear side
    assert side_of(None, lm) is None and side_of(lm, None) is None


@pytest.fixture(scope="module")
def grounder():
    return Grounder.from_pretrained()


def test_jump_is_described_in_both_languages(grounder):
    s = make_relational_sample(3, 160, 120, lang="en", case="colour_not_named", rel="left")
    j = referent_jump(grounder, s.image, s.caption.text, s.objects)
    assert j.phrase == s.caption.words[1].text and j.relation == "left"
    assert j.object_on in (None, *range(len(s.objects))) and j.object_off in (None, *range(len(s.objects)))
    assert j.jumped == (j.object_on != j.object_off)
    assert "positions" in j.sentence_en and "位置编码" in j.sentence_zh
    if j.object_on is not None:
        o = s.objects[j.object_on]
        assert f"the {o.colour} {o.shape}" in j.sentence_en
    with pytest.raises(ValueError, match="no phrase anchored"):
        referent_jump(grounder, s.image, "a red circle")


@pytest.mark.skipif(not RESOLVES, reason="the shipped model does not resolve relations (no AnchorBias): see docs/model.md")
@pytest.mark.parametrize("rel", RELATIONS)
@pytest.mark.parametrize("lang,first", [("en", False), ("zh", False), ("zh", True)])
def test_referent_box_on_the_referent(grounder, rel, lang, first):
    hits = 0
    for seed in range(10):
        s = make_relational_sample(900 + seed, 160, 120, lang=lang, rel=rel, landmark_first=first)
        r = grounder.ground(s.image, s.caption.text)
        hits += picked(referent_phrase(r, s).box, s) == "referent"
    assert hits >= 9, hits


@pytest.mark.skipif(not RESOLVES, reason="the shipped model does not resolve relations (no AnchorBias): see docs/model.md")
def test_positions_off_makes_the_referent_jump(grounder):
    jumps = 0
    for seed in range(12):
        s = make_relational_sample(950 + seed, 160, 120, lang="en", case="same_colour")
        j = referent_jump(grounder, s.image, s.caption.text, s.objects)
        assert j.object_on == 0
        jumps += j.jumped
    assert jumps >= 3, jumps
