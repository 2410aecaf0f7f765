"""Noun phrases of a caption, and the box of each: ``Grounding.phrases``.

A caption's words (as the API splits them)
are cut into noun phrases at function words and relation words: "the red circle left of the
blue square" -> "red circle", "blue square"; "正方形左边的圆形" -> "正方形", "圆形". A
relational caption anchors its referent phrase to its landmark phrase:

Chinese words may be whole words ("红色", "圆形", as the shipped model's split gives them) or
single characters (any other split).

- English "X [to the] left of Y", "X above Y": X is anchored to Y;
- Chinese "X在Y的左边" (X is on Y's left) and "Y左边的X" (the X on Y's left): X is anchored to Y.

A phrase's map is the mean of its words' maps; its box is the region around that map's peak
(:func:`mmattn.api.maps.boxes_from_maps`, as a word's box), its score the mean probability
that its words are located in the image. The grammar knows the shapes world's words and
cuts any other English caption the same way ("the mug left of the laptop" -> "mug",
"laptop"), so it serves every backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from mmattn.api.maps import boxes_from_maps

#: relation words -> the relation they name ("left": the referent is left of the landmark)
EN_RELATION_WORDS = {"left": "left", "right": "right", "above": "above", "below": "below", "under": "below",
                     "beneath": "below", "over": "above"}  # fmt: skip
ZH_RELATION_WORDS = {"左边": "left", "右边": "right", "上面": "above", "下面": "below", "左侧": "left", "右侧": "right",
                     "上方": "above", "下方": "below"}  # fmt: skip
#: words that are never part of a noun phrase
EN_FUNCTION = {"a", "an", "the", "of", "to", "is", "are", "and", "on", "in", "at", "with", "there", "this", "that",
               "side", "next", "near", "by", "one", "some"}  # fmt: skip
ZH_FUNCTION = {"在", "的", "一个", "一", "个", "和", "有", "是", "。", "，"}


@dataclass
class Phrase:
    """One noun phrase of a caption."""

    text: str  #: its words, joined as the caption's language writes them
    words: list[int]  #: indices into the caption's words
    box: tuple[int, int, int, int] | None = None  #: (x0, y0, x1, y1) in image pixels, x1/y1 exclusive
    score: float = 0.0  #: mean probability that its words are located in the image
    relation: str | None = None  #: "left" | "right" | "above" | "below": how it stands to its anchor
    anchor: int | None = None  #: index (in ``Grounding.phrases``) of the landmark phrase it is anchored to

    def to_json(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box) if self.box else None
        d["score"] = round(self.score, 6)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Phrase:
        return cls(text=d["text"], words=list(d["words"]), box=tuple(d["box"]) if d.get("box") else None,
                   score=float(d.get("score", 0.0)), relation=d.get("relation"), anchor=d.get("anchor"))  # fmt: skip


def _is_chinese(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in word)


def find_phrases(words: list[str]) -> list[Phrase]:
    """The noun phrases of a caption's ``words`` (no boxes yet), with each relational
    phrase's ``relation`` and ``anchor``."""
    if any(_is_chinese(w) for w in words):
        return _zh_phrases(words)
    return _en_phrases(words)


def _en_phrases(words: list[str]) -> list[Phrase]:
    phrases: list[Phrase] = []
    run: list[int] = []
    marks: list[tuple[int, str]] = []  # (number of phrases before it, relation) for each relation word

    def close():
        if run:
            phrases.append(Phrase(" ".join(words[run[0] : run[-1] + 1]), list(run)))
            run.clear()

    for i, w in enumerate(words):
        lw = w.lower()
        if lw in EN_RELATION_WORDS:
            close()
            marks.append((len(phrases), EN_RELATION_WORDS[lw]))
        elif lw in EN_FUNCTION or not any(ch.isalnum() for ch in lw):
            close()
        else:
            run.append(i)
    close()
    for before, rel in marks:  # "X left of Y": the phrase before anchored to the phrase after
        if 0 < before < len(phrases) and phrases[before - 1].anchor is None:
            phrases[before - 1].relation, phrases[before - 1].anchor = rel, before
    return phrases


def _zh_phrases(words: list[str]) -> list[Phrase]:
    phrases: list[Phrase] = []
    run: list[int] = []
    events: list[tuple[str, int, str | None]] = []  # ("在", phrases before) | ("rel", phrases before, relation)
    i = 0

    def close():
        if run:
            phrases.append(Phrase("".join(words[run[0] : run[-1] + 1]), list(run)))
            run.clear()

    def relation_at(j: int) -> str | None:
        """The relation named at word ``j`` (written as one word, or one character per word: 左, 边)."""
        return ZH_RELATION_WORDS.get(words[j]) or ZH_RELATION_WORDS.get("".join(words[j : j + 2])) if j < len(words) else None

    while i < len(words):
        w = words[i]
        if rel := relation_at(i):
            close()
            events.append(("rel", len(phrases), rel))
            i += 1 if w in ZH_RELATION_WORDS else 2
            continue
        if w == "的" and run and i + 1 < len(words) and not relation_at(i + 1):  # 红色的圆形, 大的红色圆形: a modifier's 的
            i += 1  # inside the phrase's text, not one of its words
            continue
        if w in ZH_FUNCTION:
            close()
            if w == "在":
                events.append(("在", len(phrases), None))
            i += 1
            continue
        run.append(i)
        i += 1
    close()
    for n, (kind, before, rel) in enumerate(events):
        if kind != "rel":
            continue
        zai = [b for k, b, _ in events[:n] if k == "在"]
        if zai and 0 < zai[-1] < len(phrases) and before == zai[-1] + 1:  # X在Y的左边: X anchored to Y
            x, y = zai[-1] - 1, zai[-1]
        elif 0 < before < len(phrases):  # Y左边的X: X (the phrase after) anchored to Y (the phrase before)
            x, y = before, before - 1
        else:
            continue
        if phrases[x].anchor is None:
            phrases[x].relation, phrases[x].anchor = rel, y
    return phrases


def phrase_maps(patch_maps: np.ndarray, phrases: list[Phrase]) -> np.ndarray:
    """(N, P) each phrase's map: the mean of its words' (W, P) maps."""
    return np.stack([np.asarray(patch_maps)[p.words].mean(0) for p in phrases]).astype(np.float32)


def phrase_located(p: Phrase, grounded: list[bool] | None) -> bool:
    """A phrase gets a box when any of its words is grounded (always, without flags)."""
    return grounded is None or any(grounded[i] for i in p.words if i < len(grounded))


def phrase_score(p: Phrase, grounded_scores: list[float]) -> float:
    """The mean probability that the phrase's words are located in the image."""
    scores = [grounded_scores[i] for i in p.words if i < len(grounded_scores)]
    return float(np.mean(scores)) if scores else 0.0


def ground_phrases(words: list[str], patch_maps: np.ndarray, grid: tuple[int, int], size: tuple[int, int],
                   grounded_scores: list[float], grounded: list[bool] | None = None,
                   phrases: list[Phrase] | None = None) -> list[Phrase]:  # fmt: skip
    """:func:`find_phrases` (or ``phrases``, already found) with each phrase's box and score.
    ``patch_maps`` (W, P) are the words' maps on the patch grid, ``size`` the image's (width,
    height); with ``grounded`` (per word), a phrase none of whose words is grounded gets no
    box, as such a word. (:func:`mmattn.api.trace.groundings` boxes a batch's phrases
    together with its words.)"""
    phrases = find_phrases(words) if phrases is None else phrases
    if not phrases:
        return phrases
    maps = torch.from_numpy(phrase_maps(patch_maps, phrases))  # (N, P)
    width, height = size
    boxes = boxes_from_maps(maps, grid, (height, width)) if maps.numel() else [None] * len(phrases)
    for n, (p, box) in enumerate(zip(phrases, boxes)):
        p.box = box if phrase_located(p, grounded) and float(maps[n].max()) > 0 else None
        p.score = phrase_score(p, grounded_scores)
    return phrases
