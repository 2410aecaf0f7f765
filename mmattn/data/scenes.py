"""Scene sampling: objects, layout, captions and verified counterfactuals.

:func:`make_sample` turns a seed into a :class:`Sample`: an RGB image of 1-4
non-overlapping shapes, a caption whose referring expressions are unique in
the scene, and counterfactual captions verified to be false.

Relations (one definition, :func:`relation_between`): with
``dx = cx_B - cx_A`` and ``dy = cy_B - cy_A`` (image y points down),

* A "left of" B   iff ``dx >= r_A + r_B`` and ``|dx| >= 1.5 |dy|``
* A "right of" B  iff ``-dx >= r_A + r_B`` and ``|dx| >= 1.5 |dy|``
* A "above" B     iff ``dy >= r_A + r_B`` and ``|dy| >= 1.5 |dx|``
* A "below" B     iff ``-dy >= r_A + r_B`` and ``|dy| >= 1.5 |dx|``

i.e. the dominant axis is clearly dominant and the two circumscribed circles
do not even overlap in projection on it; otherwise there is no relation.
A counterfactual relation is only accepted when it fails the lenient test
:func:`relation_plausible` (A merely on the named side of B) for every pair of
objects the phrases could describe.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from .captions import (
    LANGS, OPPOSITE, Caption, Phrase, Style, changed_span, realise, sample_style,
)
from .render import (
    COLOURS, MIN_SIDE, PALETTE, SHAPES, SIZES, TRAIN, RenderConfig, draw_shape, finish,
    render_background, sample_interval,
)

logger = logging.getLogger(__name__)

RELATION_RATIO = 1.5
NEG_KINDS: tuple[str, ...] = ("colour", "shape", "size", "relation")
_LAYOUT_TRIES = 40
_CANDIDATES = 64


@dataclass
class SceneObject:
    """One shape in a scene. ``center`` is (cx, cy) in pixels, ``radius`` the
    circumradius in pixels, ``rotation`` in degrees (counter-clockwise),
    ``box`` the tight (x0, y0, x1, y1) box of ``mask`` (x1, y1 exclusive),
    ``mask`` (H, W) bool = pixels with anti-aliased coverage >= 0.5."""

    shape: str
    colour: str
    size: str  # "small" | "large"
    rgb: tuple[int, int, int]
    center: tuple[float, float]
    radius: float
    rotation: float
    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass
class Sample:
    """An image, its objects, a true caption and false counterfactuals.

    ``seed`` reproduces the sample with :func:`make_sample` (given the same
    size / config / lang); ``index`` is the dataset index when produced by
    ``ShapesDataset`` (None otherwise).
    """

    image: Image.Image
    objects: list[SceneObject]
    caption: Caption
    negatives: list[Caption]
    seed: int
    index: int | None = None
    config_name: str = ""

    @property
    def mentioned(self) -> list[int]:
        """Indices of the objects the caption refers to, in caption order."""
        return [p.ref for p in self.caption.phrases]

    @property
    def ambiguous(self) -> bool:
        """True if another object shares the colour or the shape of a
        mentioned object (so attributes must be bound to their noun)."""
        for i in self.mentioned:
            a = self.objects[i]
            for j, b in enumerate(self.objects):
                if j != i and (a.colour == b.colour or a.shape == b.shape):
                    return True
        return False


# ---------------------------------------------------------------------------
# Semantics

def relation_between(a: SceneObject, b: SceneObject) -> str | None:
    """The clear relation "a <relation> b" (see module docstring) or None."""
    return _relation(a.center, a.radius, b.center, b.radius)


def _relation(ca: tuple[float, float], ra: float, cb: tuple[float, float],
              rb: float) -> str | None:
    dx = cb[0] - ca[0]
    dy = cb[1] - ca[1]
    margin = ra + rb
    if abs(dx) >= RELATION_RATIO * abs(dy) and abs(dx) >= margin:
        return "left of" if dx > 0 else "right of"
    if abs(dy) >= RELATION_RATIO * abs(dx) and abs(dy) >= margin:
        return "above" if dy > 0 else "below"
    return None


def relation_plausible(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Lenient test: ``a`` lies at all on the named side of ``b``."""
    dx = b.center[0] - a.center[0]
    dy = b.center[1] - a.center[1]
    return {"left of": dx > 0, "right of": dx < 0, "above": dy > 0, "below": dy < 0}[relation]


def matches(obj: SceneObject, phrase: Phrase) -> bool:
    """Does ``obj`` fit the phrase's colour, shape and (if given) size?"""
    return (obj.colour == phrase.colour and obj.shape == phrase.shape
            and (phrase.size is None or obj.size == phrase.size))


def referents(objects: list[SceneObject], phrase: Phrase) -> list[int]:
    """Indices of all objects matching ``phrase``."""
    return [i for i, o in enumerate(objects) if matches(o, phrase)]


def caption_true(objects: list[SceneObject], phrases: tuple[Phrase, ...],
                 relation: str | None, strict: bool = True) -> bool:
    """Whether some object (pair) satisfies the meaning. ``strict`` uses
    :func:`relation_between`, otherwise :func:`relation_plausible`."""
    if relation is None:
        return bool(referents(objects, phrases[0]))
    for i in referents(objects, phrases[0]):
        for j in referents(objects, phrases[1]):
            if i == j:
                continue
            a, b = objects[i], objects[j]
            ok = relation_between(a, b) == relation if strict else relation_plausible(a, b, relation)
            if ok:
                return True
    return False


# ---------------------------------------------------------------------------
# Attribute planning

@dataclass
class _Plan:
    attrs: list[list[str]]  # [colour, shape, size] per object
    mentioned: list[int]    # plan indices of the mentioned objects, caption order
    target: int | None      # mentioned object the distractor shares with
    relational: bool
    required: int           # attrs[:required] are mentioned / distractor; rest fillers


def _choice(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _plan(rng: np.random.Generator, config: RenderConfig) -> _Plan:
    shared = config.max_objects >= 2 and rng.random() < config.p_shared
    relational = config.max_objects >= 2 and rng.random() < config.p_relation
    if relational and config.max_objects < 2 + shared:
        relational = False
    n_mentioned = 2 if relational else 1
    lo = max(config.min_objects, n_mentioned + int(shared))
    n = int(rng.integers(lo, config.max_objects + 1))

    attrs = [[_choice(rng, COLOURS), _choice(rng, SHAPES), _choice(rng, SIZES)]]
    if relational:
        while True:
            c, s = _choice(rng, COLOURS), _choice(rng, SHAPES)
            if (c != attrs[0][0] and s != attrs[0][1]) or (shared and (c, s) != tuple(attrs[0][:2])):
                break
        attrs.append([c, s, _choice(rng, SIZES)])
    mentioned = list(range(n_mentioned))
    taken = {tuple(a[:2]) for a in attrs}
    target = None
    if shared:
        target = int(rng.integers(n_mentioned))
        tc, ts, tsize = attrs[target]
        u = rng.random()
        if u < config.p_size_distractor:
            attrs.append([tc, ts, "small" if tsize == "large" else "large"])
        else:
            while True:
                d = [tc, _choice(rng, SHAPES)] if u < 0.5 + config.p_size_distractor / 2 \
                    else [_choice(rng, COLOURS), ts]
                if tuple(d) not in taken:
                    break
            attrs.append(d + [_choice(rng, SIZES)])
    used_colours = {attrs[i][0] for i in mentioned}
    used_shapes = {attrs[i][1] for i in mentioned}
    while len(attrs) < n:
        c, s = _choice(rng, COLOURS), _choice(rng, SHAPES)
        if (c, s) in taken:
            continue
        if not shared and (c in used_colours or s in used_shapes):
            continue
        attrs.append([c, s, _choice(rng, SIZES)])
    return _Plan(attrs, mentioned, target, relational, n_mentioned + int(shared))


def _place(rng: np.random.Generator, radii: np.ndarray, width: int, height: int,
           gap: float, spread: bool = False) -> np.ndarray | None:
    """Centres (n, 2) for circles of ``radii`` inside the image, pairwise at
    least ``gap`` apart (edge to edge); None if rejection sampling fails.

    Largest first; each takes the first valid random candidate, or with
    ``spread`` the candidate farthest from the others (packs tight scenes)."""
    centers = np.zeros((len(radii), 2))
    done: list[int] = []
    for k in np.argsort(-radii, kind="stable"):
        r = radii[k]
        lo = np.array([r + 1.0, r + 1.0])
        hi = np.array([width - r - 1.0, height - r - 1.0])
        if np.any(hi < lo):
            return None
        cand = lo + (hi - lo) * rng.random((_CANDIDATES, 2))
        if spread:  # also try the four extreme positions
            cand = np.vstack([cand, [lo, hi, [lo[0], hi[1]], [hi[0], lo[1]]]])
        if done:
            diff = cand[:, None, :] - centers[done][None, :, :]  # (C, placed, 2)
            need = (radii[done] + (r + gap)) ** 2
            ok = np.all(np.einsum("cpk,cpk->cp", diff, diff) >= need, axis=1)
            hits = np.flatnonzero(ok)
            if hits.size == 0:
                return None
            if spread:
                slack = np.min(np.sqrt(np.einsum("cpk,cpk->cp", diff, diff)) - np.sqrt(need), axis=1)
                centers[k] = cand[int(np.argmax(slack))]
            else:
                centers[k] = cand[hits[0]]
        elif spread:  # start in a corner
            centers[k] = np.where(rng.random(2) < 0.5, lo, hi)
        else:
            centers[k] = cand[0]
        done.append(int(k))
    return centers


def _layout(rng: np.random.Generator, plan: _Plan, radii: np.ndarray, width: int,
            height: int, gap: float) -> np.ndarray | None:
    """Centres for the plan's objects, retrying until the mentioned pair of a
    relational plan has a clear relation. If only that fails, the plan is
    demoted to a single phrase (the distractor's target if any). None if no
    layout fits at all."""
    centers = None
    for attempt in range(_LAYOUT_TRIES):
        trial = _place(rng, radii, width, height, gap, spread=attempt >= _LAYOUT_TRIES // 2)
        if trial is None:
            continue
        centers = trial
        if not plan.relational:
            return centers
        i, j = plan.mentioned
        if _relation(centers[i], radii[i], centers[j], radii[j]) is not None:
            return centers
    if centers is not None:
        logger.debug("no clear relation, falling back to a single phrase")
        plan.mentioned = [plan.target if plan.target is not None else plan.mentioned[0]]
        plan.relational = False
    return centers


# ---------------------------------------------------------------------------
# Counterfactuals

def _counterfactuals(rng: np.random.Generator, caption: Caption, style: Style,
                     objects: list[SceneObject]) -> list[Caption]:
    """One verified-false variant per kind where possible (colour, shape,
    size, relation, in that order), each drawn uniformly among the false
    single-edit variants of that kind."""
    phrases, relation = caption.phrases, caption.relation
    edits: dict[str, list[tuple[int, str, str]]] = {k: [] for k in NEG_KINDS}
    for k, p in enumerate(phrases):
        edits["colour"] += [(k, "colour", c) for c in COLOURS if c != p.colour]
        edits["shape"] += [(k, "shape", s) for s in SHAPES if s != p.shape]
        if p.size is not None:
            edits["size"].append((k, "size", "small" if p.size == "large" else "large"))
    if relation is not None:
        edits["relation"].append((-1, "relation", OPPOSITE[relation]))

    negatives = []
    for kind in NEG_KINDS:
        options = edits[kind]
        for j in rng.permutation(len(options)) if len(options) > 1 else range(len(options)):
            k, attr, value = options[j]
            if attr == "relation":
                new_phrases, new_relation = phrases, value
            else:
                changed = replace(phrases[k], **{attr: value})
                new_phrases, new_relation = phrases[:k] + (changed,) + phrases[k + 1:], relation
            if caption_true(objects, new_phrases, new_relation, strict=False):
                continue
            neg = realise(caption.lang, new_phrases, new_relation, style)
            neg.neg_kind = kind
            neg.changed = changed_span(caption, neg)
            negatives.append(neg)
            break
    return negatives


# ---------------------------------------------------------------------------

def make_sample(seed: int, width: int = 128, height: int = 128,
                config: RenderConfig = TRAIN, lang: str | None = None) -> Sample:
    """Generate one scene, deterministically from (seed, width, height, config, lang).

    ``lang`` None draws "zh" with probability ``config.p_zh``. The language is
    drawn even when given, so the same seed yields the same image (and the
    same meaning) in both languages.

    Returns:
        Sample with ``image`` (width x height RGB), objects, caption, negatives.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"width and height must be >= {MIN_SIDE}, got {width}x{height}")
    if lang is not None and lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGS} or None")
    rng = np.random.default_rng(int(seed))
    drawn_lang = "zh" if rng.random() < config.p_zh else "en"
    lang = lang or drawn_lang
    style = sample_style(rng)
    side = min(width, height)
    gap = max(2.0, 0.03 * side)

    plan = _plan(rng, config)
    radii = np.array([sample_interval(rng, config.small_radius if a[2] == "small"
                                      else config.large_radius) * side for a in plan.attrs])
    centers = _layout(rng, plan, radii, width, height, gap)
    while centers is None and len(plan.attrs) > plan.required:
        # Too crowded (rare): drop a filler object and try again.
        logger.debug("seed %d: dropping a filler object to fit the layout", seed)
        plan.attrs.pop()
        radii = radii[:-1]
        centers = _layout(rng, plan, radii, width, height, gap)
    if centers is None:  # not seen for supported sizes; stay explicit
        raise RuntimeError(f"could not lay out {len(radii)} objects in {width}x{height} "
                           f"(seed {seed})")
    n = len(plan.attrs)

    order = rng.permutation(n)  # object list order carries no information
    new_index = {int(old): new for new, old in enumerate(order)}
    canvas = render_background(rng, width, height, config)
    objects: list[SceneObject] = []
    for old in order:
        colour, shape, size = plan.attrs[old]
        shades = PALETTE[colour][config.shades]
        rgb = shades[int(rng.integers(len(shades)))]
        rotation = float(sample_interval(rng, config.rotation))
        center = (float(centers[old, 0]), float(centers[old, 1]))
        mask, box = draw_shape(canvas, shape, rgb, center, float(radii[old]), rotation)
        objects.append(SceneObject(shape, colour, size, rgb, center, float(radii[old]),
                                   rotation, box, mask))
    image = finish(canvas, rng, config)

    phrases = []
    for old in plan.mentioned:
        i = new_index[old]
        o = objects[i]
        twins = sum(1 for p in objects if p.colour == o.colour and p.shape == o.shape)
        say_size = twins > 1 or rng.random() < config.p_size_word
        phrases.append(Phrase(i, o.colour, o.shape, o.size if say_size else None))
    relation = None
    if plan.relational:
        relation = relation_between(objects[phrases[0].ref], objects[phrases[1].ref])
    caption = realise(lang, tuple(phrases), relation, style)
    negatives = _counterfactuals(rng, caption, style, objects)
    return Sample(image=image, objects=objects, caption=caption, negatives=negatives,
                  seed=int(seed), config_name=config.name)
