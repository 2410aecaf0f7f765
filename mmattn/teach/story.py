"""Step by step as one story about the learner's word: one sentence per stage, written from
the live numbers of the head the learner is looking at.

Text -> image, the word's row: "blue: largest score 57.3 → ÷√32 gives 10.1 → weight 0.07, on
the patch in row 7, column 11 (r7c11)". A word of several tokens (红色 = 红 + 色, CLIP's
c ##a ##t) is followed as its map is made everywhere: the mean of its tokens' rows. Image ->
text, the query is the patch that gives the word the most weight (:func:`focus`).

Every sentence is ``t("story_<stage>_<direction>", lang, ...)`` (:mod:`mmattn.teach.text_en`
/ ``text_zh``), filled with numbers formatted here; nothing here draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmattn.teach.text import t

#: words that name no region (the default word is never one of these)
FUNCTION_WORDS = frozenset(
    "a an the of to in on at and or is are with by for from this that it its left right above below next".split()
    + ["的", "在", "一个", "一", "个", "和", "是", "了", "与"]
)


@dataclass(frozen=True)
class Focus:
    """Where a stage's sentence looks: the word, its token rows, and one patch."""

    word: str
    tokens: list[int]  #: the word's token positions
    patch: int  #: the patch followed (text -> image: where the word's weight is largest; image -> text: the query patch)
    row: int
    col: int


def focus(steps, word: int) -> Focus:
    """The patch a sentence is about: where word ``word``'s weight is largest (text -> image),
    or the patch that gives the word the most weight (image -> text)."""
    toks = list(steps.word_tokens[word])
    if steps.direction == "text_to_image":
        p = int(steps.weights[toks].mean(0).argmax())
    else:
        p = int(steps.weights[:, toks].sum(1).argmax())
    gw = steps.grid[1]
    return Focus(steps.words[word], toks, p, p // gw, p % gw)


def num(x: float) -> str:
    """A score as a learner reads it: 57, 10.1, 0.42, -3.2 (three significant figures at most)."""
    x = float(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.2f}"


def weight(p: float) -> str:
    """A softmax weight: 0.07, 0.003 (never 0.00 for a positive weight)."""
    p = float(p)
    return f"{p:.2f}" if p >= 0.01 or p == 0 else f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def sentence(steps, stage: str, word: int, lang: str = "en") -> str:
    """The stage's sentence about word ``word`` with this head's numbers (Markdown)."""
    f = focus(steps, word)
    hd = steps.head_dim
    rt = math.sqrt(hd)
    t2i = steps.direction == "text_to_image"
    q = f.tokens if t2i else [f.patch]
    scores = steps.scores[q].mean(0) if t2i else steps.scores[f.patch]  # (Lk,)
    weights = steps.weights[q].mean(0) if t2i else steps.weights[f.patch]
    if t2i:
        s, w = scores[f.patch], weights[f.patch]
        other = float(np.sort(weights)[::-1][:5].sum())
    else:
        s, w = float(scores[f.tokens].mean()), float(weights[f.tokens].sum())
        other = 1.0 - float(weights[[i for i, wid in enumerate(_word_of(steps)) if wid is not None]].sum())
    values = dict(
        word=f"**{_md(f.word)}**", patch=t("story_patch", lang, row=str(f.row), col=str(f.col), label=f"r{f.row}c{f.col}"),
        score=num(s), scaled=num(s / rt), weight=weight(w), hd=str(hd), lo=num(scores.min()), hi=num(scores.max()),
        lo_scaled=num(scores.min() / rt), hi_scaled=num(scores.max() / rt), top5=f"{other:.0%}", n_keys=str(len(scores)),
        H=str(steps.num_heads), head=str(steps.head), D=str(steps.dim), layer=str(steps.layer),
        width=str(steps.num_heads * hd), q_norm=num(np.linalg.norm(steps.q[q].mean(0))),
        k_norm=num(np.linalg.norm(steps.k[f.patch] if t2i else steps.k[f.tokens].mean(0))),
        err="–" if steps.max_output_error is None else f"{steps.max_output_error:.0e}",
    )  # fmt: skip
    pieces = _pieces(steps, f, lang) if stage in ("q", "scores") else ""  # said once, where the word's row first appears
    bias = getattr(steps, "bias", None)
    if stage == "scaled" and t2i and bias is not None and (low := float(bias[q].mean(0).min())) < -0.5:
        pieces += " " + t("story_bias", lang, low=num(low))  # an AnchorBias moved this word's row
    return t(f"story_{stage}_{'t2i' if t2i else 'i2t'}", lang, **values) + pieces


def _word_of(steps) -> list[int | None]:
    """For each token, its word's index in ``steps.words`` (None: [CLS], [SEP], punctuation)."""
    out: list[int | None] = [None] * len(steps.tokens)
    for w, toks in enumerate(steps.word_tokens):
        for i in toks:
            out[i] = w
    return out


def _pieces(steps, f: Focus, lang: str) -> str:
    """" (红色 is read as 2 tokens, 红 and 色: its row is their mean)" for a word of several tokens."""
    if len(f.tokens) < 2:
        return ""
    pieces = [steps.tokens[i].removeprefix("##").removesuffix("</w>") for i in f.tokens]
    return t("story_pieces", lang, word=_md(f.word), n=str(len(pieces)), pieces=" + ".join(_md(p) for p in pieces))


def _md(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~&" else ch for ch in text)


def default_word(words: list[str], grounded: list[bool] | None = None, scores: list[float] | None = None) -> int:
    """The word a view follows until the learner picks one: the most surely found content word
    (never "the", "a", "of", 的, 在 …), else the first content word, else the first word."""
    content = [i for i, w in enumerate(words) if w.lower() not in FUNCTION_WORDS and any(ch.isalnum() for ch in w)]
    if grounded is not None:
        found = [i for i in content if grounded[i]]
        if found:
            return max(found, key=lambda i: scores[i]) if scores is not None else found[0]
    return content[0] if content else 0
