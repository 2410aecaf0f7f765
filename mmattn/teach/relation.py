"""The relation check in words: where the maps put the two objects of a caption with a relation
("the red circle left of the blue square", "红色的圆形在蓝色正方形的左边"), compared with what
the caption says. Read from the word maps the page shows (their centres on the patch grid);
a caption without a relation word gets no sentence at all.

Index letters: W words, P patches (= gh * gw)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmattn.scenes import SHAPES, ZH_RELATIONS, ZH_SHAPES
from mmattn.teach.text import t

RELATIONS = ("left", "right", "above", "below")
_ZH_REL = {v: k for k, v in ZH_RELATIONS.items()}
_ZH_SHAPE = {v: k for k, v in ZH_SHAPES.items()}


@dataclass
class Relation:
    """A caption's claim: ``subject`` (word indices) is ``relation`` of ``object``."""

    subject: list[int]
    subject_name: str  #: as written in the caption ("circle", "圆形")
    relation: str  #: left, right, above or below
    object: list[int]
    object_name: str


def _spans(words: list[str], targets) -> list[tuple[int, int, str]]:
    """(start, end, text) of every run of words that spells one of ``targets`` (a Chinese word
    read character by character spans several "words")."""
    out = []
    for i in range(len(words)):
        for n in (1, 2, 3):
            if i + n <= len(words):
                text = "".join(words[i : i + n]) if n > 1 else words[i].lower()
                if text in targets:
                    out.append((i, i + n, text))
    return out


def find_relation(words: list[str]) -> Relation | None:
    """The caption's relation between its first two shapes, or None (no relation word, or not two shapes)."""
    rel = _spans(words, set(RELATIONS) | set(_ZH_REL))
    shapes = _spans(words, set(SHAPES) | set(_ZH_SHAPE) | {s + "s" for s in SHAPES})
    if not rel or len(shapes) < 2:
        return None
    (a0, a1, a), (b0, b1, b) = shapes[:2]
    name = rel[0][2]
    return Relation(list(range(a0, a1)), a, _ZH_REL.get(name, name), list(range(b0, b1)), b)


def placed(patch_maps: np.ndarray, grid: tuple[int, int], subject: list[int], obj: list[int]) -> str:
    """Where the maps put the subject against the object: left, right, above or below (the
    larger of the horizontal and vertical distances between the maps' centres). patch_maps: (W, P)."""
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)

    def centre(idx: list[int]) -> tuple[float, float]:
        m = np.clip(np.asarray(patch_maps, np.float64)[idx].mean(0), 0, None)  # (P,)
        m = m / m.sum() if m.sum() > 0 else np.full_like(m, 1 / m.size)
        return float(m @ cols), float(m @ rows)

    (sx, sy), (ox, oy) = centre(subject), centre(obj)
    dx, dy = sx - ox, sy - oy
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def relation_sentence(words: list[str], patch_maps: np.ndarray, grid: tuple[int, int], lang: str = "en") -> str:
    """One sentence: where the maps put the two objects, and whether the caption says the same;
    "" for a caption without a relation."""
    r = find_relation(words)
    if r is None:
        return ""
    got = placed(patch_maps, grid, r.subject, r.object)
    rel = t(f"rel_{got}", lang)
    key = "relation_agrees" if got == r.relation else "relation_contradicts"
    return t(key, lang, subject=r.subject_name, object=r.object_name, placed=rel, said=t(f"rel_{r.relation}", lang))

