"""Step by step as one story about the learner's word: sentences from the live numbers,
pictures with colour bars, a ÷√d axis that follows the data, words never subword pieces."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from scene_helpers import CAPTIONS, two_shapes

from mmattn.api import pictures
from mmattn.teach import figures, story, views


@pytest.fixture(scope="module")
def traces(g):
    return {lang: g.trace(two_shapes(), cap, inputs=True) for lang, cap in CAPTIONS.items()}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_weights_sentence_holds_the_live_numbers_and_names_word_and_patch(g, traces, lang):
    sv = views.steps_view(g, traces[lang], "蓝色" if lang == "zh" else "blue", 0, 1, "text_to_image", lang)
    s, w = sv.steps, sv.word
    _, sentence, _ = views.step_figures(s, "weights", w, 1.0, lang)
    toks = s.word_tokens[w]
    weights = s.weights[toks].mean(0)
    p = int(weights.argmax())
    row, col = divmod(p, s.grid[1])
    score = float(s.scores[toks].mean(0)[p])
    first = sentence.split("\n\n")[0]
    assert s.words[w] in first and f"r{row}c{col}" in first
    assert story.num(score) in first and story.num(score / math.sqrt(s.head_dim)) in first and story.weight(weights[p]) in first
    assert (f"第 {row} 行第 {col} 列" if lang == "zh" else f"row {row}, column {col}") in first
    assert f"√{s.head_dim}" in first


@pytest.mark.parametrize("stage", ["q", "k", "v", "scores", "scaled", "weights", "head_output", "concat", "output"])
@pytest.mark.parametrize("direction", ["text_to_image", "image_to_text"])
def test_every_stage_sentence_names_the_word(g, traces, stage, direction):
    sv = views.steps_view(g, traces["en"], "circle", 0, 0, direction, "en")
    first = views.step_figures(sv.steps, stage, sv.word, 1.0, "en")[1].split("\n\n")[0]
    assert "circle" in first and re.search(r"\d", first)


def test_two_captions_give_two_sentences_each_naming_its_word(g):
    a = g.trace(two_shapes(), "a red circle", inputs=True)
    b = g.trace(two_shapes(), "a blue square", inputs=True)
    sa = views.steps_view(g, a, None, 0, 0, "text_to_image", "en")
    sb = views.steps_view(g, b, None, 0, 0, "text_to_image", "en")
    ta = views.step_figures(sa.steps, "weights", sa.word, 1.0, "en")[1].split("\n\n")[0]
    tb = views.step_figures(sb.steps, "weights", sb.word, 1.0, "en")[1].split("\n\n")[0]
    assert ta != tb
    assert sa.steps.words[sa.word] in ta and sb.steps.words[sb.word] in tb
    assert sa.steps.words[sa.word] in ("red", "circle") and sb.steps.words[sb.word] in ("blue", "square")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_default_word_is_a_content_word(g, traces, lang):
    sv = views.steps_view(g, traces[lang], None, -1, 0, "text_to_image", lang)
    assert sv.steps.words[sv.word] not in story.FUNCTION_WORDS
    assert story.default_word(["the", "a", "of", "red"]) == 3
    assert story.default_word(["的", "在", "红色"], [True, True, True], [0.99, 0.98, 0.9]) == 2


def _has_colour_bar(picture: Image.Image, signed: bool) -> bool:
    """A row of the picture runs through the ramp it was coloured with (both ends present)."""
    a = np.asarray(picture.convert("RGB")).astype(int)
    ramp = (pictures.DIVERGING if signed else pictures.RAMP).astype(int)
    for row in a[::-1]:
        if np.abs(row - ramp[0]).sum(1).min() < 40 and np.abs(row - ramp[-1]).sum(1).min() < 40:
            left, right = np.abs(row - ramp[0]).sum(1).argmin(), np.abs(row - ramp[-1]).sum(1).argmin()
            if right - left > picture.width // 2:
                return True
    return False


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_word_on_the_picture_has_a_colour_bar_and_a_caption(g, traces, lang):
    sv = views.steps_view(g, traces[lang], None, 0, 0, "text_to_image", lang)
    assert len(sv.stages) == 3
    for (pic, caption), signed in zip(sv.stages, (True, True, False)):
        assert _has_colour_bar(pic, signed), caption
        assert sv.steps.words[sv.word] in caption and re.search(r"r\d+c\d+", caption)
    for pic, caption in sv.heads:
        assert _has_colour_bar(pic, False), caption


def test_the_scaling_axis_follows_the_data(g, traces):
    sv = views.steps_view(g, traces["en"], "blue", 0, 0, "text_to_image", "en")
    fig = views.step_figures(sv.steps, "scaled", sv.word, 1.0, "en")[2]
    top = max(max(fig.data[0].y), max(fig.data[1].y))
    lo, hi = fig.layout.yaxis.range
    assert lo == 0 and top <= hi <= min(1.02, top * 1.2)
    assert "blue" in fig.layout.title.text


def _cat_steps():
    """Steps of a caption CLIP's WordPiece splits: "a cat" -> [CLS] a c ##a ##t [SEP]."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 4)) * 5
    e = np.exp(scores / 2 - (scores / 2).max(1, keepdims=True))
    return SimpleNamespace(direction="text_to_image", tokens=["[CLS]", "a", "c", "##a", "##t", "[SEP]"], words=["a", "cat"],
                           word_tokens=[[1], [2, 3, 4]], grid=(2, 2), head_dim=4, scores=scores, scaled=scores / 2,
                           weights=e / e.sum(1, keepdims=True))  # fmt: skip


def test_no_subword_piece_in_any_label():
    s = _cat_steps()
    labels = figures.query_labels(s)
    assert not any("##" in x for x in labels)
    assert labels == ["[CLS]", "a", "cat·c", "cat·a", "cat·t", "[SEP]"]
    fig = figures.scaling_figure(s, [2, 3, 4])
    assert "cat" in fig.layout.title.text and "##" not in fig.layout.title.text and not re.search(r"query c\b", fig.layout.title.text)
    st = figures.scaling_stats(s, [2, 3, 4])
    assert st.query == "cat" and np.isclose(st.scaled.sum(), 1)
    assert "##" not in story.sentence(s_with_values(s), "scores", 1, "en")


def s_with_values(s):
    return SimpleNamespace(**vars(s), q=np.ones((6, 4)), k=np.ones((4, 4)), num_heads=2, dim=8, layer=0, head=0, max_output_error=None)
