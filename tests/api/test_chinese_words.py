"""Chinese captions are grounded as words (红色, 圆形, ...), with known answers on the shipped model."""

import numpy as np
from scene_helpers import two_shapes

from mmattn.scenes import make_sample

CAPTION = "红色的圆形在蓝色正方形的左边"
WORDS = ["红色", "的", "圆形", "在", "蓝色", "正方形", "的", "左边"]


def peak(r, i):
    return np.unravel_index(r.word_maps[i].argmax(), r.word_maps[i].shape)  # (y, x)


def test_the_caption_is_grounded_as_words_on_their_shapes(g):
    r = g.ground(two_shapes(), CAPTION)
    assert r.words == WORDS and r.unknown_words == []
    tokens = g.processor.caption(CAPTION).tokens
    assert tokens[1:-1] == list(CAPTION)  # the tokens the model was trained on: one per character
    for word in ("红色", "圆形"):
        y, x = peak(r, r.words.index(word))
        assert x < 80, (word, x)  # on the red circle's half
    for word in ("蓝色", "正方形"):
        y, x = peak(r, r.words.index(word))
        assert x >= 80, (word, x)
    found = dict(zip(r.words, r.grounded))
    assert found["红色"] and found["圆形"] and found["蓝色"] and found["正方形"]
    assert not found["的"] and not found["在"]


def test_a_words_map_merges_its_characters(g):
    t = g.trace(two_shapes(), CAPTION)
    red = t.caption.words.index("红色")
    toks = t.caption.word_tokens[red]
    assert [t.caption.tokens[i] for i in toks] == ["红", "色"]
    maps = t.token_maps("attention")  # (T, P)
    word = (t.word_matrix() @ maps)[red]
    assert np.allclose(word.numpy(), maps[toks].mean(0).numpy(), atol=1e-6)


def test_generated_chinese_scenes_point_at_their_objects(g):
    hits = []
    for seed in range(77_100_000, 77_100_012):
        s = make_sample(seed, 160, 120, lang="zh")
        r = g.ground(s.image, s.caption.text)
        assert r.words == [w.text for w in s.caption.words]
        for i, w in enumerate(s.caption.words):
            if w.kind in ("colour", "shape"):
                y, x = peak(r, i)
                hits.append(bool(s.objects[w.ref].mask[y, x]))
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_a_caption_outside_the_world_names_its_unknown_word(g):
    r = g.ground(two_shapes(), "红色的圆在蓝色方块的左边")  # 圆 alone is read; 块 is not in the vocabulary
    assert r.words == ["红色", "的", "圆", "在", "蓝色", "方块", "的", "左边"]
    assert r.unknown_words == ["方块"]
