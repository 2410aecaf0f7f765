"""Specification of mmattn.vocabulary.

- The shipped model's world lists the shapes world's shapes, colours, sizes and relations in
  English and Chinese, each a word (or, in Chinese, characters) the tokenizer holds whole;
  a word the tokenizer lacks is left out of the listing.
- The listing renders as one paragraph per language, in Markdown or plain text, naming every
  listed word and two example captions.
- suggest() finds the known word a typo was meant to be (insertion, deletion, substitution,
  swapped letters), and nothing for an unrelated or too-short word, or a known one.
- unknown_word_message() says it in English or Chinese.
"""

from pathlib import Path

import pytest

from mmattn.backends.shapes.vocabulary import ModelWorld, model_world, suggest, unknown_word_message
from mmattn.models.tokenizer import build_tokenizer, load_tokenizer, split_words
from mmattn.scenes import COLOURS, SHAPES, ZH_SHAPES, caption_corpus

MODEL = Path(__file__).resolve().parents[3] / "assets" / "model"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(MODEL)


@pytest.fixture(scope="module")
def world(tokenizer):
    return model_world(tokenizer)


def test_the_shipped_model_knows_the_whole_world(world):
    assert world.en.shapes == SHAPES and world.en.colours == COLOURS
    assert {"circle", "square"} <= set(world.en.shapes) and "red" in world.en.colours
    assert world.en.sizes == ("small", "large", "big")
    assert world.en.relations == ("left of", "right of", "above", "below")
    assert {"圆形", "正方形"} <= set(world.zh.shapes) and "红色" in world.zh.colours
    assert world.zh.sizes == ("小", "大") and "左边" in world.zh.relations
    assert {"圆形", "红色", "一个", "the", "of", "的"} <= world.known_words and "红" not in world.known_words  # words, not characters


def test_every_listed_word_is_in_the_tokenizer(world, tokenizer):
    vocab = tokenizer.get_vocab()
    for lang, split in (("en", str.split), ("zh", list)):
        w = world.words(lang)
        for term in w.shapes + w.colours + w.sizes + w.relations:
            assert all(part in vocab for part in split(term)), term
    assert all(w in vocab or all(ch in vocab for ch in w) for w in world.known_words)  # Chinese words: every character a token


def test_words_the_tokenizer_lacks_are_left_out():
    corpus = [c for c in caption_corpus() if "hexagon" not in c and "六" not in c]
    small = model_world(build_tokenizer(corpus))
    assert "hexagon" not in small.en.shapes and ZH_SHAPES["hexagon"] not in small.zh.shapes
    assert "hexagon" not in small.known_words and "六" not in small.known_words
    assert small.en.shapes == tuple(s for s in SHAPES if s != "hexagon")


def test_from_pretrained_reads_the_checkpoint(world):
    assert ModelWorld.from_pretrained(MODEL) == world
    assert hash(world) == hash(ModelWorld.from_pretrained(MODEL))  # frozen all the way down


def test_examples_are_known_captions(world, tokenizer):
    assert world.en.examples == ("a small red circle", "the blue square to the left of the green star")
    assert len(world.zh.examples) == 2
    for w in (world.en, world.zh):
        for caption in w.examples:
            assert set(split_words(tokenizer, caption)) <= world.known_words


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_describe_names_every_word(world, lang):
    w = world.words(lang)
    text = world.describe(lang)
    for term in w.shapes + w.colours + w.sizes + w.relations + w.examples:
        assert term in text
    assert "**" in text and "**" not in world.describe(lang, markdown=False)
    assert "\n" not in text and len(text) < 700


def test_describe_speaks_the_language(world):
    assert world.describe("en").startswith("**This model knows only the shapes world**")
    zh = world.describe("zh")
    assert "本模型" in zh and not any(s in zh for s in SHAPES)
    with pytest.raises(ValueError, match="'fr'"):
        world.describe("fr")


@pytest.mark.parametrize(
    "typo, word",
    [("sqare", "square"), ("circel", "circle"), ("Sqaure", "square"), ("trinagle", "triangle"), ("blu", "blue"),
     ("yelow", "yellow"), ("hexagno", "hexagon"), ("rde", "red"), ("teh", "the"), ("squares", "square")],
)  # fmt: skip
def test_suggest_corrects_typos(world, typo, word):
    assert suggest(typo, world.known_words) == word


@pytest.mark.parametrize("word", ["cat", "dog", "photo", "coffee", "猫", "园", "ab", "", "circle", "Red", "的"])
def test_suggest_nothing_for_unrelated_short_or_known_words(world, word):
    assert suggest(word, world.known_words) is None


def test_suggest_prefers_the_closest_then_the_most_similar():
    assert suggest("starr", {"star", "stare", "start"}) == "star"  # all one edit; "star" is most alike
    assert suggest("rad", {"rod", "red"}) == "red"  # a tie in everything: alphabetical
    assert suggest("sqare", []) is None


def test_unknown_word_messages():
    assert unknown_word_message("sqare", "square") == '"sqare" is not in the model\'s vocabulary — did you mean "square"?'
    assert unknown_word_message("cat", None) == '"cat" is not in the model\'s vocabulary.'
    assert unknown_word_message("sqare", "square", lang="zh") == "“sqare”不在模型的词汇表中——你是不是想说“square”？"
    assert unknown_word_message("猫", lang="zh") == "“猫”不在模型的词汇表中。"
    with pytest.raises(ValueError, match="'de'"):
        unknown_word_message("x", lang="de")
