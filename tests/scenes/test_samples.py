"""The shapes world: scenes and captions whose answers are known."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmattn.models.tokenizer import build_tokenizer, split_words
from mmattn.scenes import (
    COLOURS,
    PALETTE,
    SHAPES,
    SHIFTED,
    TRAIN,
    ZH_COLOURS,
    ZH_SHAPES,
    ZH_WORDS,
    ShapesDataset,
    caption_corpus,
    make_sample,
    relation,
)
from mmattn.scenes.samples import Desc, _matching

SEEDS = range(120)


@pytest.fixture(scope="module")
def samples():
    return [make_sample(s, (96, 128, 200)[s % 3], (96, 72, 96)[s % 3]) for s in SEEDS]


def _desc_of(caption, ref):
    """The colour / shape / size a caption says of object ``ref``."""
    words = [w for w in caption.words if w.ref == ref]
    text = (" " if caption.lang == "en" else "").join(w.text for w in words)
    colour = next(c for c in COLOURS if (c in text.split() if caption.lang == "en" else ZH_COLOURS[c] in text))
    shape = next(s for s in SHAPES if (s in text.split() if caption.lang == "en" else ZH_SHAPES[s] in text))
    size = None
    for w in words:
        if w.kind == "size":
            size = {"small": "small", "小": "small", "large": "large", "big": "large", "大": "large"}[w.text]
    return Desc(colour, shape, size)


def test_masks_are_disjoint_and_boxes_fit(samples):
    for s in samples:
        total = np.zeros(s.objects[0].mask.shape, int)
        for o in s.objects:
            total += o.mask
            ys, xs = np.nonzero(o.mask)
            assert o.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert total.max() == 1
        assert s.image.size == (s.objects[0].mask.shape[1], s.objects[0].mask.shape[0])


def test_every_referent_word_is_true_of_its_object(samples):
    for s in samples:
        for w in s.caption.words:
            if w.ref is None:
                assert w.kind in ("function", "relation")
                continue
            o = s.objects[w.ref]
            if w.kind == "colour":
                assert w.text == o.colour or w.text in ZH_COLOURS[o.colour]
            elif w.kind == "shape":
                assert w.text == o.shape or w.text in ZH_SHAPES[o.shape]
            else:
                assert w.kind == "size" and w.text in {"small": ("small", "小"), "large": ("large", "big", "大")}[o.size]


def test_expressions_are_unique_and_relations_true(samples):
    n_rel = 0
    for s in samples:
        refs = s.mentioned
        for k in refs:
            assert _matching(_desc_of(s.caption, k), s.objects) == [k], s.caption.text
        if s.caption.relation:
            n_rel += 1
            short = min(s.image.size)
            assert relation(s.objects[0], s.objects[1], short) == s.caption.relation
            a, b = s.objects[0].center, s.objects[1].center
            expect = {"left": b[0] > a[0], "right": b[0] < a[0], "above": b[1] > a[1], "below": b[1] < a[1]}
            assert expect[s.caption.relation]
    assert n_rel > 10


def test_negatives_are_false_and_differ_only_where_changed(samples):
    kinds = set()
    for s in samples:
        for n in s.negatives:
            kinds.add(n.neg_kind)
            assert n.text != s.caption.text and n.changed
            if n.neg_kind == "relation":
                assert n.relation != s.caption.relation
            else:  # the changed description names nothing in the scene
                changed_refs = {n.words[i].ref for i in n.changed}
                assert len(changed_refs) == 1
                (k,) = changed_refs
                assert _matching(_desc_of(n, k), s.objects) == []
            same = [w.text for i, w in enumerate(n.words) if i not in n.changed]
            assert all(t in [w.text for w in s.caption.words] for t in same)
    assert kinds == {"colour", "shape", "size", "relation"}


def test_deterministic_by_seed():
    a, b, c = make_sample(7, 96, 72), make_sample(7, 96, 72), make_sample(8, 96, 72)
    assert a.image.tobytes() == b.image.tobytes() and a.caption.text == b.caption.text
    assert a.image.tobytes() != c.image.tobytes()


@pytest.mark.parametrize("size", [(200, 96), (64, 160), (32, 32)])
def test_any_size(size):
    s = make_sample(3, *size)
    assert s.image.size == size and s.objects[0].mask.shape == size[::-1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="32x32"):
        make_sample(0, 16, 16)
    with pytest.raises(ValueError, match="lang"):
        make_sample(0, lang="fr")


def test_languages_and_chinese_words_are_the_worlds_words(samples):
    langs = {s.caption.lang for s in samples}
    assert langs == {"en", "zh"}
    for s in samples:
        if s.caption.lang == "zh":
            assert all(w.text in ZH_WORDS for w in s.caption.words)  # 红色, 圆形, 左边 ...: words, not characters
            assert any(len(w.text) > 1 for w in s.caption.words)


def test_tokenizer_words_match_caption_words(samples):
    tok = build_tokenizer(caption_corpus())
    for s in samples:
        for c in [s.caption, *s.negatives]:
            assert split_words(tok, c.text) == [w.text for w in c.words]


def test_corpus_covers_grammar():
    corpus = " ".join(caption_corpus())
    for word in [*COLOURS, *SHAPES, "small", "large", "big", "left", "right", "above", "below", "of", "to"]:
        assert word in corpus.split()
    for zh in [*ZH_COLOURS.values(), *ZH_SHAPES.values(), "左边", "右边", "上面", "下面", "小", "大"]:
        assert zh in corpus


def test_ambiguous_fraction_near_p_shared():
    frac = np.mean([make_sample(1000 + i, 96, 96).ambiguous for i in range(300)])
    assert 0.3 < frac < 0.65  # p_shared = 0.5, minus single-object scenes


def test_shifted_uses_heldout_shades_only():
    train_rgbs = {rgb for c in COLOURS for rgb in PALETTE[c]["train"]}
    for i in range(30):
        s = make_sample(i, 96, 96, SHIFTED)
        for o in s.objects:
            assert o.rgb in PALETTE[o.colour]["heldout"] and o.rgb not in train_rgbs
    assert SHIFTED.rotation != TRAIN.rotation


def test_dataset_under_workers_yields_each_index_once():
    ds = ShapesDataset(seed=5, length=10, width=48, height=40)
    single = [s.seed for s in ds]
    multi = [s.seed for s in DataLoader(ds, batch_size=None, num_workers=2)]
    assert sorted(multi) == sorted(single) and len(set(multi)) == 10
    by_seed = {s.seed: s.caption.text for s in ds}
    for s in DataLoader(ds, batch_size=None, num_workers=2):
        assert by_seed[s.seed] == s.caption.text


def test_dataset_sizes_cycle():
    ds = ShapesDataset(seed=1, length=4, sizes=[(64, 48), (48, 64)])
    assert [s.image.size for s in ds] == [(64, 48), (48, 64), (64, 48), (48, 64)]
    assert torch.utils.data.IterableDataset in type(ds).__mro__
