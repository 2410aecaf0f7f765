"""Phrases on the page (issue #26):

- the Ground legend groups a phrase's words in one box, and a relational phrase says which
  landmark it is anchored to, in English and Chinese; every word still has its own chip;
- the Ground picture draws a phrase's box once (its words share it), in its head noun's colour;
- Positions off on a relational caption: the referent phrase's box on both sides, and a
  sentence that says which object each picks (the data too); none for a caption without a
  relation.
"""

import re

import numpy as np

from mmattn.scenes.relational import make_relational_sample
from mmattn.teach import recompute, views


def test_legend_groups_a_phrase_and_names_its_landmark(g):
    for lang, caption, anchored in (("en", "the red circle left of the blue square", "→ left of “blue square”"),
                                    ("zh", "蓝色正方形左边的红色圆形", "→ 在“蓝色正方形”的左边")):  # fmt: skip
        s = make_relational_sample(5, 160, 120, lang=lang)
        v = views.ground_view(g.trace(s.image, caption), lang=lang)
        html = views.legend_html(v.words, None, lang, v.phrases)
        groups = [part.split('"', 1) for part in html.split('<span class="phrase" title="')[1:]]  # (title, what follows)
        assert sorted(title for title, _ in groups) == sorted(p.text for p in v.phrases) and len(groups) == 2, html
        ref = next(body for title, body in groups if title in ("red circle", "红色圆形"))
        assert anchored in ref.split('<span class="phrase"')[0]
        assert sorted(int(i) for i in re.findall(r'data-index="(\d+)"', html)) == list(range(len(v.words)))  # every word once


def test_a_phrase_box_is_drawn_once_in_its_head_nouns_colour():
    view = views.Image.new("RGB", (60, 40), (128, 128, 128))
    maps = np.zeros((3, 40, 60))
    colours = ["#ff0000", "#00ff00", "#0000ff"]
    box = [10, 20, 50, 38]
    pic = np.asarray(views.compose(view, maps, colours, [0, 1], [box, box, None]))
    # the box's bottom edge is the last word's colour (the head noun), not the first's
    assert tuple(pic[37, 30]) == (0, 255, 0), pic[37, 30]
    # one tag plate per word above the box, in each word's colour
    assert tuple(pic[10, 12]) == (255, 0, 0) and tuple(pic[10, 12 + 15]) == (0, 255, 0)


def test_positions_off_shows_the_referent_phrase_both_ways(g):
    s = make_relational_sample(951, 320, 240, lang="en", case="same_colour")
    on = g.trace(s.image, s.caption.text)
    off = recompute.without_positions(g).trace(s.image, s.caption.text)
    pic, text, data = views.positions_off_view(on, off, "en")
    ref = data["referent"]
    assert ref["phrase"] and ref["relation"] == s.caption.relation and ref["box_on"] is not None
    first = text.split("\n")[0]
    assert first.startswith("**With positions, ") and ref["phrase"] in first.replace("\\", "")
    assert ("jumps to" in first) == ref["jumped"]
    _, text_zh, _ = views.positions_off_view(on, off, "zh")
    assert "位置编码" in text_zh.split("\n")[0]
    plain = make_relational_sample(951, 320, 240, lang="en")
    on2 = g.trace(plain.image, "a red circle")
    _, text2, data2 = views.positions_off_view(on2, recompute.without_positions(g).trace(plain.image, "a red circle"), "en")
    assert "referent" not in data2 and not text2.startswith("**With positions, ")
