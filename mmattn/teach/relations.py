"""Positions off makes the referent jump: which object a relational phrase picks with and
without positional encodings ("the circle left of the square" when there are two circles).

:func:`jump` compares two answers to one question (the demo's two traces);
:func:`referent_jump` grounds the caption twice, with the model's positions and with a copy
that has none (:func:`mmattn.teach.recompute.without_positions`), takes the first phrase
anchored to a landmark (:mod:`mmattn.api.phrases`), and says in words where each of its two
boxes lies relative to the landmark ("left of the square") and whether the pick moved. For a
generated scene, pass its objects to name the object picked ("the red circle").
"""

from __future__ import annotations

from dataclasses import dataclass

from mmattn.api.grounder import Grounder
from mmattn.api.grounding import Grounding
from mmattn.scenes import ZH_COLOURS, ZH_RELATIONS, ZH_SHAPES
from mmattn.teach.recompute import without_positions
from mmattn.teach.text import t

EN_SIDES = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
RELATION_DOMINANCE = 1.3  #: as mmattn.scenes.samples.relation: the dominant axis must be this many times the other


@dataclass
class ReferentJump:
    """The referent phrase's pick with and without positions, on one image."""

    phrase: str  #: the referent phrase ("circle")
    landmark: str  #: the phrase it is anchored to ("square")
    relation: str  #: what the caption says ("left")
    box_on: tuple[int, int, int, int] | None  #: the phrase's box with positions (image pixels)
    box_off: tuple[int, int, int, int] | None  #: without positions
    side_on: str | None  #: where box_on lies relative to the landmark: "left" | "right" | "above" | "below" | None (unclear)
    side_off: str | None
    object_on: int | None  #: with ``objects``: the index of the object under box_on's centre
    object_off: int | None
    jumped: bool  #: the two picks differ (another object, or another side of the landmark)
    sentence_en: str
    sentence_zh: str


def side_of(box, landmark_box) -> str | None:
    """Where the centre of ``box`` lies relative to ``landmark_box``'s centre, or None."""
    if box is None or landmark_box is None:
        return None
    dx = (box[0] + box[2] - landmark_box[0] - landmark_box[2]) / 2
    dy = (box[1] + box[3] - landmark_box[1] - landmark_box[3]) / 2
    if abs(dx) >= RELATION_DOMINANCE * abs(dy) and dx:
        return "left" if dx < 0 else "right"
    if abs(dy) >= RELATION_DOMINANCE * abs(dx) and dy:
        return "above" if dy < 0 else "below"
    return None


def _object_at(box, objects) -> int | None:
    if box is None or not objects:
        return None
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for k, o in enumerate(objects):
        x0, y0, x1, y1 = o.box
        if x0 <= cx < x1 and y0 <= cy < y1:
            return k
    return None


def _describe(lang: str, landmark: str, side: str | None, obj) -> str:
    name = None if obj is None else t("jump_name", lang, colour=obj.colour if lang == "en" else ZH_COLOURS[obj.colour],
                                      shape=obj.shape if lang == "en" else ZH_SHAPES[obj.shape])  # fmt: skip
    if side:
        where = t("jump_side", lang, side=EN_SIDES[side] if lang == "en" else ZH_RELATIONS[side], landmark=landmark)
    else:
        where = t("jump_no_side", lang, landmark=landmark)
    return t("jump_named", lang, name=name, where=where) if name else where


def jump(on: Grounding, off: Grounding, objects=None) -> ReferentJump | None:
    """Compare the first phrase anchored to a landmark in two answers to one question: ``on``
    with positions, ``off`` without (:func:`mmattn.teach.recompute.without_positions`). None
    when the caption has no such phrase. ``objects``: the scene's objects when known."""
    anchored = [p for p in on.phrases if p.anchor is not None]
    if not anchored or len(off.phrases) != len(on.phrases):
        return None
    n = on.phrases.index(anchored[0])
    p_on, p_off = on.phrases[n], off.phrases[n]
    landmark_on = on.phrases[p_on.anchor]
    side_on, side_off = side_of(p_on.box, landmark_on.box), side_of(p_off.box, landmark_on.box)
    obj_on, obj_off = _object_at(p_on.box, objects), _object_at(p_off.box, objects)
    jumped = (obj_on != obj_off) if objects else side_on != side_off
    o = lambda k: objects[k] if objects and k is not None else None  # noqa: E731
    sentences = {}
    for lang in ("en", "zh"):
        said_on = _describe(lang, landmark_on.text, side_on, o(obj_on))
        said_off = _describe(lang, landmark_on.text, side_off, o(obj_off))
        key = "jump_moved" if jumped else "jump_same"
        sentences[lang] = t(key, lang, phrase=p_on.text, on=said_on, off=said_off)
    return ReferentJump(p_on.text, landmark_on.text, p_on.relation, p_on.box, p_off.box, side_on, side_off,
                        obj_on, obj_off, jumped, sentences["en"], sentences["zh"])  # fmt: skip


def referent_jump(grounder: Grounder, image, caption: str, objects=None) -> ReferentJump:
    """Ground ``caption`` with and without positions and compare its relational phrase's
    picks (:func:`jump`). ``objects``: the scene's objects (:class:`mmattn.scenes.SceneObject`,
    with boxes) when known. Raises ValueError when the caption has no phrase anchored to a
    landmark."""
    j = jump(grounder.ground(image, caption), without_positions(grounder).ground(image, caption), objects)
    if j is None:
        raise ValueError(f"{caption!r} has no phrase anchored to another by a relation (e.g. 'the circle left of the square')")
    return j
