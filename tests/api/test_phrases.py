"""Grounding.phrases: noun phrases of captions of every kind, in English and Chinese (both
word orders), with the landmark each relational phrase is anchored to; each phrase's box is
the box of its words' mean map; to_json / from_json keep them."""

import numpy as np
import pytest

from mmattn.api.grounding import Grounding
from mmattn.api.phrases import Phrase, find_phrases, ground_phrases
from mmattn.models.tokenizer import load_tokenizer, split_words
from mmattn.scenes import make_sample
from mmattn.scenes.relational import make_relational_sample

TOK = load_tokenizer("assets/model")

CASES = [
    # caption, [(phrase text, relation, anchor)]
    ("a red circle", [("red circle", None, None)]),
    ("the big blue square", [("big blue square", None, None)]),
    ("a small green heart", [("small green heart", None, None)]),
    ("the red circle left of the blue square", [("red circle", "left", 1), ("blue square", None, None)]),
    ("the small red circle to the right of the large blue square", [("small red circle", "right", 1), ("large blue square", None, None)]),
    ("the circle above the star", [("circle", "above", 1), ("star", None, None)]),
    ("the circle below the star", [("circle", "below", 1), ("star", None, None)]),
    ("the mug left of the laptop", [("mug", "left", 1), ("laptop", None, None)]),
    ("一个红色圆形", [("红色圆形", None, None)]),
    ("一个大的红色圆形", [("大的红色圆形", None, None)]),
    ("红色的圆形在蓝色正方形的左边", [("红色的圆形", "left", 1), ("蓝色正方形", None, None)]),
    ("小的红色的圆形在蓝色的正方形的上面", [("小的红色的圆形", "above", 1), ("蓝色的正方形", None, None)]),
    ("红色圆形在蓝色正方形的左边", [("红色圆形", "left", 1), ("蓝色正方形", None, None)]),
    ("圆形在正方形的上面", [("圆形", "above", 1), ("正方形", None, None)]),
    ("正方形左边的圆形", [("正方形", None, None), ("圆形", "left", 0)]),
    ("绿色星形下面的红色圆形", [("绿色星形", None, None), ("红色圆形", "below", 0)]),
    ("星形右边的圆形", [("星形", None, None), ("圆形", "right", 0)]),
]


@pytest.mark.parametrize("caption,expected", CASES, ids=[c for c, _ in CASES])
def test_phrases_of_every_kind_of_caption(caption, expected):
    words = split_words(TOK, caption)
    phrases = find_phrases(words)
    assert [(p.text, p.relation, p.anchor) for p in phrases] == expected
    for p in phrases:  # a phrase's words are the words of its text, in order
        sep = " " if caption.isascii() else ""
        assert sep.join(words[p.words[0] : p.words[-1] + 1]) == p.text
        assert all(w not in ("the", "a", "of", "的", "在", "一个") for w in (words[i] for i in p.words))


def test_chinese_split_into_characters_gives_the_same_phrases():
    for caption in ("正方形左边的圆形", "红色圆形在蓝色正方形的下面"):
        a = find_phrases(split_words(TOK, caption))
        b = find_phrases(list(caption))
        assert [(p.text, p.relation, p.anchor) for p in a] == [(p.text, p.relation, p.anchor) for p in b]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_generated_captions_give_one_phrase_per_object(lang):
    for seed in range(30):
        for s in (make_sample(seed, 128, 128, lang=lang), make_relational_sample(seed, 128, 128, lang=lang)):
            words = split_words(TOK, s.caption.text)
            phrases = find_phrases(words)
            refs = sorted({w.ref for w in s.caption.words if w.ref is not None})
            assert len(phrases) == len(refs), (s.caption.text, phrases)
            # each phrase holds exactly the content words of one object
            for p in phrases:
                assert len({s.caption.words[i].ref for i in p.words}) == 1, (s.caption.text, p)
            if s.caption.relation:
                referent = next(p for p in phrases if s.caption.words[p.words[0]].ref == 0)
                landmark = next(k for k, p in enumerate(phrases) if s.caption.words[p.words[0]].ref == 1)
                assert (referent.relation, referent.anchor) == (s.caption.relation, landmark)


def test_phrase_box_is_the_box_of_its_words_mean_map():
    grid, size = (4, 4), (64, 64)
    words = ["the", "red", "circle", "left", "of", "the", "square"]
    maps = np.zeros((7, 16), np.float32)
    maps[1, 5] = maps[2, 5] = 1.0  # "red circle": patch (1, 1)
    maps[6, 15] = 1.0  # "square": patch (3, 3)
    scores = [0.0, 0.9, 0.8, 0.0, 0.0, 0.0, 0.7]
    ph = ground_phrases(words, maps, grid, size, scores)
    assert [p.text for p in ph] == ["red circle", "square"]
    x0, y0, x1, y1 = ph[0].box
    assert 8 <= (x0 + x1) / 2 < 32 and 8 <= (y0 + y1) / 2 < 32  # around patch (1, 1): pixels 16..32
    x0, y0, x1, y1 = ph[1].box
    assert (x0 + x1) / 2 >= 40 and (y0 + y1) / 2 >= 40
    assert ph[0].score == pytest.approx(0.85) and ph[1].score == pytest.approx(0.7)
    # none of its words grounded: no box, as for such a word
    grounded = [False, False, False, False, False, False, True]
    assert ground_phrases(words, maps, grid, size, scores, grounded)[0].box is None


def test_json_round_trip_keeps_phrases():
    p = Phrase("circle", [1], (1, 2, 3, 4), 0.5, "left", 1)
    assert Phrase.from_json(p.to_json()) == p
    g = Grounding(caption="the circle left of the square", words=["the", "circle", "left", "of", "the", "square"], size=(8, 8),
                  patch_maps=np.zeros((6, 1), np.float32), grid=(1, 1), grounded=[False] * 6, boxes=[None] * 6, match_score=0.5,
                  phrases=[p, Phrase("square", [5])])  # fmt: skip
    d = g.to_json()
    assert d["phrases"][0] == {"text": "circle", "words": [1], "box": [1, 2, 3, 4], "score": 0.5, "relation": "left", "anchor": 1}
    assert Grounding.from_json(d).phrases == g.phrases


def test_the_api_fills_phrases():
    from mmattn.api.grounder import Grounder

    g = Grounder.from_pretrained()
    s = make_sample(4, 128, 128, lang="en")
    r = g.ground(s.image, "the red circle left of the blue square")
    assert [p.text for p in r.phrases] == ["red circle", "blue square"]
    assert r.phrases[0].anchor == 1 and r.phrases[0].relation == "left"
    assert r.to_json()["phrases"][1]["text"] == "blue square"


def test_cli_table_lists_phrases(tmp_path, capsys):
    from mmattn.cli.ground import main

    path = tmp_path / "scene.png"
    make_relational_sample(5, 160, 120, lang="en").image.save(path)
    main([str(path), "the circle left of the square"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("phrase"))
    assert lines[head + 1].split()[0] == "circle" and lines[head + 1].endswith("left square")
    assert lines[head + 2].split()[0] == "square" and lines[head + 2].endswith("-")
