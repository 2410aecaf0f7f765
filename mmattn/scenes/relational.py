"""Relational scenes: the referent is told apart from a same-shape distractor only by its
relation to a landmark ("the circle left of the square", "正方形左边的圆形").

Objects: 0 the referent, 1 the landmark, 2 (and 3 when drawn) distractors of the referent's
shape whose relation to the landmark is another one (never unclear), or 3 an unrelated
object of a third shape. Two cases:

- ``same_colour``: referent and distractors have the same colour and shape; the caption
  names the colours of both objects or of none ("the red circle below the green star");
- ``colour_not_named``: the distractors have other colours, which the caption does not name
  ("the circle left of the square").

Captions in English and in both Chinese word orders ("X在Y的左边", "Y左边的X"). Every caption
word refers to its object: the referent's words to object 0 (never to a distractor), the
landmark's to object 1. Negatives, each verified false: a relation that holds for neither the
referent nor any distractor (the relation swap is *true* of a distractor on the other side,
so it is never a negative here), a shape no object has and, when the colour is named, a
colour no object of that shape has.
"""

from __future__ import annotations

import zlib

import numpy as np

from mmattn.scenes.render import (
    COLOURS,
    PALETTE,
    SHAPES,
    SIZES,
    TRAIN,
    RenderConfig,
    draw_shape,
    finish,
    render_background,
    sample_interval,
)
from mmattn.scenes.samples import OPPOSITE, Caption, Desc, Sample, SceneObject, Style, _changed, _matching, _place, build_caption, relation

RELATIONS = tuple(OPPOSITE)
CASES = ("same_colour", "colour_not_named")


def make_relational_sample(seed: int, width: int = 128, height: int = 128, config: RenderConfig = TRAIN,
                           lang: str | None = None, case: str | None = None, rel: str | None = None,
                           landmark_first: bool | None = None) -> Sample:  # fmt: skip
    """A relational scene with its caption, deterministic by its arguments. ``case``,
    ``rel``, ``lang`` and (Chinese) ``landmark_first`` are drawn when None."""
    if width < 32 or height < 32:
        raise ValueError(f"scenes need at least 32x32 pixels (got {width}x{height})")
    if lang not in (None, "en", "zh"):
        raise ValueError(f"lang must be 'en', 'zh' or None (got {lang!r})")
    if case not in (None, *CASES):
        raise ValueError(f"case must be one of {', '.join(CASES)} or None (got {case!r})")
    if rel not in (None, *RELATIONS):
        raise ValueError(f"rel must be one of {', '.join(RELATIONS)} or None (got {rel!r})")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, width, height,
                                 zlib.crc32(("relational-" + config.name).encode())])  # fmt: skip
    short = min(width, height)
    lang = lang or ("zh" if rng.random() < config.p_zh else "en")
    case = case or CASES[int(rng.integers(2))]
    rel = rel or RELATIONS[int(rng.integers(4))]
    landmark_first = bool(rng.random() < 0.5) if landmark_first is None else landmark_first
    for _attempt in range(400):
        shape, landmark_shape, third = (SHAPES[i] for i in rng.permutation(8)[:3])
        colour = COLOURS[int(rng.integers(8))]
        n = int(rng.integers(3, 5))
        two_distractors = n == 4 and rng.random() < 0.5
        attrs = [(colour, shape), (COLOURS[int(rng.integers(8))], landmark_shape)]
        for _ in range(2 if two_distractors else 1):
            other = colour if case == "same_colour" else COLOURS[(COLOURS.index(colour) + 1 + int(rng.integers(7))) % 8]
            attrs.append((other, shape))
        if n == 4 and not two_distractors:
            attrs.append((COLOURS[int(rng.integers(8))], third))
        sizes = [SIZES[int(rng.integers(2))] for _ in attrs]
        radii = [sample_interval(rng, config.small_radius if z == "small" else config.large_radius) * short for z in sizes]
        centers = _place(rng, len(attrs), radii, width, height)
        if centers is None:
            continue
        objects = [
            SceneObject(s, c, z, PALETTE[c][config.shades][rng.integers(len(PALETTE[c][config.shades]))], ctr, r,
                        sample_interval(rng, config.rotation))
            for (c, s), z, r, ctr in zip(attrs, sizes, radii, centers)
        ]  # fmt: skip
        same_shape = [k for k, o in enumerate(objects) if o.shape == shape]
        rels = {k: relation(objects[k], objects[1], short) for k in same_shape}
        if rels[0] != rel or any(rels[k] is None or rels[k] == rel for k in same_shape[1:]):
            continue
        break
    else:
        raise RuntimeError(f"could not lay out a relational scene for seed {seed} at {width}x{height}")
    named = case == "same_colour" and rng.random() < 0.5
    descs = [Desc(colour if named else None, shape), Desc(objects[1].colour if named else None, landmark_shape)]
    style = Style(article="the", big=bool(rng.random() < 0.5), to_the=bool(rng.random() < 0.3), landmark_first=landmark_first)
    caption = build_caption(lang, descs, [0, 1], rel, style)

    canvas = render_background(rng, width, height, config)
    for o in objects:
        o.mask, o.box = draw_shape(canvas, o.shape, o.rgb, o.center, o.radius, o.rotation)
    image = finish(canvas, rng, config)
    negatives = _negatives(rng, lang, descs, rel, style, objects, caption, short)
    return Sample(image, objects, caption, negatives, seed, distractors=same_shape[1:], case=case)


def holds_for(desc: Desc, rel: str, landmark: int, objects, short_side: float) -> list[int]:
    """The objects that fit ``desc`` and stand in ``rel`` to the landmark."""
    return [k for k in _matching(desc, objects) if k != landmark and relation(objects[k], objects[landmark], short_side) == rel]


def _negatives(rng, lang, descs, rel, style, objects, caption, short) -> list[Caption]:
    out = []
    neither = [r for r in RELATIONS if r != rel and not holds_for(descs[0], r, 1, objects, short)]
    if neither:
        neg = build_caption(lang, descs, [0, 1], neither[int(rng.integers(len(neither)))], style)
        neg.neg_kind, neg.changed = "relation", _changed(caption, neg)
        out.append(neg)
    d = descs[0]
    options = {"shape": [Desc(d.colour, s) for s in SHAPES if not any(o.shape == s for o in objects)]}
    if d.colour is not None:
        options["colour"] = [Desc(c, d.shape) for c in COLOURS if not _matching(Desc(c, d.shape), objects)]
    for kind, cands in options.items():
        if cands:
            neg = build_caption(lang, [cands[int(rng.integers(len(cands)))], descs[1]], [0, 1], rel, style)
            neg.neg_kind, neg.changed = kind, _changed(caption, neg)
            out.append(neg)
    return out
