"""What the shipped model knows: the words of its world, and "did you mean" for the rest.

:func:`model_world` reads the shapes, colours, sizes and relations of the shapes world from
:mod:`mmattn.scenes` (in English and Chinese) and keeps those the tokenizer has as whole
words, so the listing can never name a word the model cannot read. A Chinese term
("圆形") counts as known when each of its characters is (the tokenizer makes every Chinese
character a word of its own); an English relation ("left of") when each of its words is.

:func:`suggest` ("did you mean") and :func:`unknown_word_message` are every backend's and
live in :mod:`mmattn.api.words`; they are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from mmattn.api.words import suggest, unknown_word_message  # noqa: F401 -- re-exported: "did you mean" is every backend's
from mmattn.models.tokenizer import known_word, load_tokenizer, split_words
from mmattn.scenes import BACKGROUNDS, COLOURS, SHAPES, SIZES, TRAIN, ZH_COLOURS, ZH_RELATIONS, ZH_SHAPES, ZH_SIZES, caption_corpus
from mmattn.scenes.samples import EN_RELATIONS, Desc, Style, build_caption

LANGS = ("en", "zh")
ZH_BACKGROUNDS = {"plain": "纯色", "noisy": "噪点", "gradient": "渐变", "textured": "条纹"}


@dataclass(frozen=True)
class WorldWords:
    """The words of one language for each kind, in the world's order."""

    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    sizes: tuple[str, ...]
    relations: tuple[str, ...]  #: phrases, e.g. "left of" / "左边"
    examples: tuple[str, ...]  #: captions written by the world's grammar from these words


@dataclass(frozen=True)
class ModelWorld:
    """What a shapes-world model knows, from :func:`model_world`.

    Attributes:
        en, zh: the English and Chinese words for shapes, colours, sizes and relations,
            and two example captions.
        known_words: every word of the world's captions that the tokenizer holds whole, in
            both languages (function words such as "the" and "的" included); what
            :func:`suggest` chooses from.
    """

    en: WorldWords
    zh: WorldWords
    known_words: frozenset[str]

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ModelWorld:
        """The world of the checkpoint in ``path`` (its ``tokenizer.json``)."""
        return model_world(load_tokenizer(path))

    def words(self, lang: str = "en") -> WorldWords:
        """The words of ``lang``, "en" or "zh"."""
        _check_lang(lang)
        return self.en if lang == "en" else self.zh

    def describe(self, lang: str = "en", markdown: bool = True) -> str:
        """A short paragraph saying what the model knows, in English or Chinese; bold labels
        in Markdown, or plain text (``markdown=False``)."""
        w = self.words(lang)

        def b(label: str) -> str:
            return f"**{label}**" if markdown else label

        if lang == "en":
            backgrounds = ", ".join(BACKGROUNDS[:-1]) + f" or {BACKGROUNDS[-1]}"
            examples = " or ".join(f'"{e}"' for e in w.examples)
            return (
                f"{b('This model knows only the shapes world')}: {TRAIN.min_objects}-{TRAIN.max_objects} flat coloured shapes "
                f"on a {backgrounds} grey background. {b('Shapes:')} {', '.join(w.shapes)}. {b('Colours:')} {', '.join(w.colours)}. "
                f"{b('Sizes:')} {', '.join(w.sizes)}. {b('Relations:')} {', '.join(w.relations)}. "
                f"Captions read like {examples}; other words are not in its vocabulary, and photographs are outside its world."
            )
        backgrounds = "、".join(ZH_BACKGROUNDS[k] for k in BACKGROUNDS)
        examples = "或".join(f"“{e}”" for e in w.examples)
        return (
            f"{b('本模型只认识形状世界')}：灰色背景（{backgrounds}）上的 {TRAIN.min_objects}–{TRAIN.max_objects} 个纯色图形。"
            f"{b('形状')}：{'、'.join(w.shapes)}。{b('颜色')}：{'、'.join(w.colours)}。"  # the colon outside the bold:
            f"{b('大小')}：{'、'.join(w.sizes)}。{b('位置')}：{'、'.join(w.relations)}。"  # "**形状：**颜" does not render
            f"描述的写法如{examples}；其他词不在它的词汇表中，照片也不在它的世界里。"
        )


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"lang must be 'en' or 'zh' (got {lang!r})")


def _en_sizes() -> tuple[str, ...]:
    """Size words as the grammar writes them ("small", "large", and "big" for large)."""
    out: dict[str, None] = {}
    for size in SIZES:
        for big in (False, True):
            caption = build_caption("en", [Desc(COLOURS[0], SHAPES[0], size)], [0], None, Style(big=big))
            out.update((w.text, None) for w in caption.words if w.kind == "size")
    return tuple(out)


def model_world(tokenizer: PreTrainedTokenizerFast) -> ModelWorld:
    """The shapes world's words that ``tokenizer`` holds whole (see the module docstring)."""
    vocab = tokenizer.get_vocab()

    def known(term: str, lang: str) -> bool:
        parts = term.split() if lang == "en" else list(term)
        return all(p in vocab for p in parts)

    def keep(terms, lang: str) -> tuple[str, ...]:
        return tuple(t for t in terms if known(t, lang))

    corpus_words = {w for caption in caption_corpus() for w in split_words(tokenizer, caption)}
    known_words = frozenset(w for w in corpus_words if known_word(vocab, w))
    examples = _examples(tokenizer, known_words)
    en = WorldWords(
        shapes=keep(SHAPES, "en"),
        colours=keep(COLOURS, "en"),
        sizes=keep(_en_sizes(), "en"),
        relations=keep((" ".join(EN_RELATIONS[r]) for r in EN_RELATIONS), "en"),
        examples=examples["en"],
    )
    zh = WorldWords(
        shapes=keep(ZH_SHAPES.values(), "zh"),
        colours=keep(ZH_COLOURS.values(), "zh"),
        sizes=keep(ZH_SIZES.values(), "zh"),
        relations=keep(ZH_RELATIONS.values(), "zh"),
        examples=examples["zh"],
    )
    return ModelWorld(en, zh, known_words)


def _examples(tokenizer: PreTrainedTokenizerFast, known: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Two captions per language written by the world's grammar ("a small red circle", "the
    blue square to the left of the green star"), each kept only if every word is known."""
    one = [Desc("red", "circle", "small")]
    two = [Desc("blue", "square"), Desc("green", "star")]
    out = {}
    for lang in LANGS:
        captions = [
            build_caption(lang, one, [0], None, Style("a")).text,
            build_caption(lang, two, [0, 1], "left", Style("the", to_the=True)).text,
        ]
        out[lang] = tuple(c for c in captions if set(split_words(tokenizer, c)) <= known)
    return out
