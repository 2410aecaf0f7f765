"""Positions off makes the referent jump: which object a relational phrase picks with and
without positional encodings ("the circle left of the square" when there are two circles).

:func:`referent_jump` grounds the caption twice, with the model's positions and with a copy
that has none (:func:`mmattn.teach.recompute.without_positions`), takes the first phrase
anchored to a landmark (:mod:`mmattn.api.phrases`), and says in words where each of its two
boxes lies relative to the landmark ("left of the square") and whether the pick moved. For a
generated scene, pass its objects to name the object picked ("the red circle").
"""

from __future__ import annotations

from dataclasses import dataclass

from mmattn.api.grounder import Grounder
from mmattn.scenes import ZH_COLOURS, ZH_RELATIONS, ZH_SHAPES
from mmattn.teach.recompute import without_positions

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


def _describe(lang: str, phrase: str, landmark: str, side: str | None, obj, box) -> str:
    if obj is not None:
        name = f"the {obj.colour} {obj.shape}" if lang == "en" else ZH_COLOURS[obj.colour] + ZH_SHAPES[obj.shape]
    else:
        name = None
    if lang == "en":
        where = f"the object {EN_SIDES[side]} the {landmark}" if side else "an object that is on no clear side of the " + landmark
        return f"{name} ({where})" if name else where
    where = f"{landmark}{ZH_RELATIONS[side]}的物体" if side else f"不在{landmark}明确一侧的物体"
    return f"{name}（{where}）" if name else where


def referent_jump(grounder: Grounder, image, caption: str, objects=None) -> ReferentJump:
    """Ground ``caption`` with and without positions and compare its relational phrase's
    picks. ``objects``: the scene's objects (:class:`mmattn.scenes.SceneObject`, with boxes)
    when known. Raises ValueError when the caption has no phrase anchored to a landmark."""
    on = grounder.ground(image, caption)
    off = without_positions(grounder).ground(image, caption)
    anchored = [p for p in on.phrases if p.anchor is not None]
    if not anchored:
        raise ValueError(f"{caption!r} has no phrase anchored to another by a relation (e.g. 'the circle left of the square')")
    n = on.phrases.index(anchored[0])
    p_on, p_off = on.phrases[n], off.phrases[n]
    landmark_on = on.phrases[p_on.anchor]
    side_on, side_off = side_of(p_on.box, landmark_on.box), side_of(p_off.box, landmark_on.box)
    obj_on, obj_off = _object_at(p_on.box, objects), _object_at(p_off.box, objects)
    jumped = (obj_on != obj_off) if objects else side_on != side_off
    o = lambda k: objects[k] if objects and k is not None else None  # noqa: E731
    en_on = _describe("en", p_on.text, landmark_on.text, side_on, o(obj_on), p_on.box)
    en_off = _describe("en", p_on.text, landmark_on.text, side_off, o(obj_off), p_off.box)
    zh_on = _describe("zh", p_on.text, landmark_on.text, side_on, o(obj_on), p_on.box)
    zh_off = _describe("zh", p_on.text, landmark_on.text, side_off, o(obj_off), p_off.box)
    if jumped:
        en = f"With positions, “{p_on.text}” picks {en_on}; without them it jumps to {en_off}."
        zh = f"有位置编码时，“{p_on.text}”选中{zh_on}；去掉位置编码后，它跳到了{zh_off}。"
    else:
        en = f"With and without positions, “{p_on.text}” picks {en_on}."
        zh = f"无论有没有位置编码，“{p_on.text}”都选中{zh_on}。"
    return ReferentJump(p_on.text, landmark_on.text, p_on.relation, p_on.box, p_off.box, side_on, side_off,
                        obj_on, obj_off, jumped, en, zh)  # fmt: skip
