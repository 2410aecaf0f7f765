"""Shapes-world scenes with captions whose every word knows what it refers to.

A :class:`Sample` is an image of 1–4 non-overlapping shapes, a true caption (English or
Chinese) and counterfactual captions that are false for the scene. Every caption word
carries the index of the object it refers to (or None) and its kind: "colour", "shape",
"size", "relation" or "function".

Relations are defined by :func:`relation`: A is "left of" B when B's centre is to the right
of A's, horizontally more than 1.3x as far apart as vertically, and at least 8% of the
shorter image side apart (likewise "above" / "below" on the vertical axis; y grows down).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

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

ZH_COLOURS = {"red": "红色", "orange": "橙色", "yellow": "黄色", "green": "绿色", "cyan": "青色", "blue": "蓝色", "purple": "紫色", "pink": "粉色"}
ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形", "heart": "心形", "cross": "十字形", "diamond": "菱形", "hexagon": "六边形"}
ZH_SIZES = {"small": "小", "large": "大"}
ZH_RELATIONS = {"left": "左边", "right": "右边", "above": "上面", "below": "下面"}
EN_RELATIONS = {"left": ("left", "of"), "right": ("right", "of"), "above": ("above",), "below": ("below",)}
ZH_FUNCTION_WORDS = ("的", "在", "一个")  #: the function words the Chinese grammar writes
#: every word a Chinese caption of the shapes world is made of (a caption is these words
#: written without spaces; :func:`mmattn.models.tokenizer.split_words` finds them again)
ZH_WORDS = frozenset([*ZH_COLOURS.values(), *ZH_SHAPES.values(), *ZH_SIZES.values(), *ZH_RELATIONS.values(), *ZH_FUNCTION_WORDS])
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
RELATION_MARGIN = 0.08  #: minimum centre distance on the dominant axis, as a fraction of the shorter side
RELATION_DOMINANCE = 1.3  #: the dominant axis must be this many times the other


@dataclass
class SceneObject:
    shape: str
    colour: str
    size: str  #: "small" | "large"
    rgb: tuple[int, int, int]
    center: tuple[float, float]  #: (cx, cy) pixels
    radius: float  #: circumradius, pixels
    rotation: float  #: degrees
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  #: x0, y0, x1, y1 (exclusive)
    mask: np.ndarray | None = field(default=None, repr=False)  #: (H, W) bool


@dataclass
class Word:
    text: str
    ref: int | None  #: index into Sample.objects, or None
    kind: str  #: "colour" | "shape" | "size" | "relation" | "function"


@dataclass
class Caption:
    lang: str  #: "en" | "zh"
    words: list[Word]
    relation: str | None = None  #: "left" | "right" | "above" | "below" for two-object captions
    changed: list[int] = field(default_factory=list)  #: word indices changed (negatives only)
    neg_kind: str | None = None  #: "colour" | "shape" | "size" | "relation" for negatives

    @property
    def text(self) -> str:
        return (" " if self.lang == "en" else "").join(w.text for w in self.words)


@dataclass
class Sample:
    image: Image.Image
    objects: list[SceneObject]
    caption: Caption
    negatives: list[Caption]
    seed: int
    #: relational scenes (:mod:`mmattn.scenes.relational`): the objects that share the
    #: referent's description and that only the relation tells apart from it
    distractors: list[int] = field(default_factory=list)
    case: str | None = None  #: relational scenes: "same_colour" or "colour_not_named"

    @property
    def mentioned(self) -> list[int]:
        return sorted({w.ref for w in self.caption.words if w.ref is not None})

    @property
    def ambiguous(self) -> bool:
        """Another object shares the colour or the shape of a mentioned object."""
        ment = self.mentioned
        return any(
            o.colour == self.objects[k].colour or o.shape == self.objects[k].shape
            for k in ment for j, o in enumerate(self.objects) if j not in ment
        )  # fmt: skip


def relation(a: SceneObject, b: SceneObject, short_side: float) -> str | None:
    """The relation of A to B ("left": A is left of B), or None when it is not clear."""
    dx, dy = b.center[0] - a.center[0], b.center[1] - a.center[1]
    ax, ay = abs(dx), abs(dy)
    margin = RELATION_MARGIN * short_side
    if ax >= RELATION_DOMINANCE * ay and ax >= margin:
        return "left" if dx > 0 else "right"
    if ay >= RELATION_DOMINANCE * ax and ay >= margin:
        return "above" if dy > 0 else "below"
    return None


# ---- descriptions and captions ---------------------------------------------------------
@dataclass(frozen=True)
class Desc:
    """What a caption says of one object: shape, and optionally colour (None: not named,
    as in "the circle left of the square") and size."""

    colour: str | None
    shape: str
    size: str | None = None

    def matches(self, o: SceneObject) -> bool:
        return (self.colour is None or o.colour == self.colour) and o.shape == self.shape and (self.size is None or o.size == self.size)


def _matching(desc: Desc, objects) -> list[int]:
    return [i for i, o in enumerate(objects) if desc.matches(o)]


def _en_np(d: Desc, ref: int | None, article: str, big: bool) -> list[Word]:
    words = [Word(article, None, "function")]
    if d.size:
        words.append(Word("big" if d.size == "large" and big else d.size, ref, "size"))
    if d.colour is not None:
        words.append(Word(d.colour, ref, "colour"))
    return words + [Word(d.shape, ref, "shape")]


def _zh_np(d: Desc, ref: int | None) -> list[Word]:
    words = [Word(ZH_SIZES[d.size], ref, "size"), Word("的", None, "function")] if d.size else []
    words += [Word(ZH_COLOURS[d.colour], ref, "colour")] if d.colour is not None else []
    return words + [Word(ZH_SHAPES[d.shape], ref, "shape")]


@dataclass(frozen=True)
class Style:
    """Free choices of wording, fixed per sample so negatives differ only where changed."""

    article: str = "a"
    big: bool = False
    to_the: bool = False
    #: Chinese relational captions in the order "Y左边的X" (the landmark first) instead of "X在Y的左边"
    landmark_first: bool = False


def build_caption(lang: str, descs: list[Desc], refs: list[int | None], rel: str | None, style: Style) -> Caption:
    """Words of a one-object caption (``rel`` None) or "A rel B" caption."""
    if lang == "en":
        if rel is None:
            return Caption("en", _en_np(descs[0], refs[0], style.article, style.big))
        words = _en_np(descs[0], refs[0], "the", style.big)
        if style.to_the and rel in ("left", "right"):
            words += [Word("to", None, "function"), Word("the", None, "function")]
        words += [Word(w, None, "relation" if w != "of" else "function") for w in EN_RELATIONS[rel]]
        words += _en_np(descs[1], refs[1], "the", style.big)
        return Caption("en", words, relation=rel)
    if rel is None:
        return Caption("zh", [Word("一个", None, "function")] + _zh_np(descs[0], refs[0]))
    relation_words = [Word(ZH_RELATIONS[rel], None, "relation")]
    if style.landmark_first:  # 正方形左边的圆形: the landmark, the relation, 的, the referent
        words = _zh_np(descs[1], refs[1]) + relation_words + [Word("的", None, "function")] + _zh_np(descs[0], refs[0])
        return Caption("zh", words, relation=rel)
    words = _zh_np(descs[0], refs[0]) + [Word("在", None, "function")] + _zh_np(descs[1], refs[1])
    words += [Word("的", None, "function")] + relation_words
    return Caption("zh", words, relation=rel)


def _changed(pos: Caption, neg: Caption) -> list[int]:
    """Indices of the negative's words that differ from the positive (aligned from both ends)."""
    a, b = [w.text for w in pos.words], [w.text for w in neg.words]
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    return list(range(i, len(b) - j))


# ---- scenes ------------------------------------------------------------------------------
def _place(rng, n: int, radii: list[float], width: int, height: int) -> list[tuple[float, float]] | None:
    centers: list[tuple[float, float]] = []
    for r in radii[:n]:
        for _ in range(60):
            if width - 2 * r - 2 <= 0 or height - 2 * r - 2 <= 0:
                return None
            c = (rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1))
            if all(math.dist(c, c2) > r + r2 + 2 for c2, r2 in zip(centers, radii)):
                centers.append(c)
                break
        else:
            return None
    return centers


def _attributes(rng, n: int, config: RenderConfig, relational: bool) -> list[tuple[str, str, str]]:
    """Colour, shape, size of n objects; objects 0 (and 1 when relational) are mentioned."""
    attrs = []
    for _ in range(n):
        attrs.append((COLOURS[rng.integers(8)], SHAPES[rng.integers(8)], SIZES[rng.integers(2)]))
    m = 2 if relational else 1
    if n > m and rng.random() < config.p_shared:  # a distractor sharing colour or shape with a mentioned object
        k = int(rng.integers(m))
        c, s, z = attrs[k]
        if rng.random() < config.p_size_distractor:
            attrs[m] = (c, s, "small" if z == "large" else "large")
        elif rng.random() < 0.5:
            attrs[m] = (c, SHAPES[(SHAPES.index(s) + 1 + rng.integers(7)) % 8], attrs[m][2])
        else:
            attrs[m] = (COLOURS[(COLOURS.index(c) + 1 + rng.integers(7)) % 8], s, attrs[m][2])
    return attrs


def _unique_desc(rng, k: int, objects, config: RenderConfig) -> Desc | None:
    o = objects[k]
    plain = Desc(o.colour, o.shape)
    if _matching(plain, objects) == [k] and rng.random() >= config.p_size_word:
        return plain
    sized = Desc(o.colour, o.shape, o.size)
    return sized if _matching(sized, objects) == [k] else None


def make_sample(seed: int, width: int = 128, height: int = 128, config: RenderConfig = TRAIN, lang: str | None = None) -> Sample:
    """A scene with captions, deterministic by (seed, width, height, config, lang)."""
    if width < 32 or height < 32:
        raise ValueError(f"scenes need at least 32x32 pixels (got {width}x{height})")
    if lang not in (None, "en", "zh"):
        raise ValueError(f"lang must be 'en', 'zh' or None (got {lang!r})")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, width, height, zlib.crc32(config.name.encode())])
    short = min(width, height)
    lang = lang or ("zh" if rng.random() < config.p_zh else "en")
    for _attempt in range(50):
        n = int(rng.integers(config.min_objects, config.max_objects + 1))
        relational = n >= 2 and rng.random() < config.p_relation
        attrs = _attributes(rng, n, config, relational)
        radii = [sample_interval(rng, config.small_radius if z == "small" else config.large_radius) * short for _, _, z in attrs]
        centers = _place(rng, n, radii, width, height)
        if centers is None:
            continue
        objects = [
            SceneObject(s, c, z, PALETTE[c][config.shades][rng.integers(len(PALETTE[c][config.shades]))], ctr, r,
                        sample_interval(rng, config.rotation))
            for (c, s, z), r, ctr in zip(attrs, radii, centers)
        ]  # fmt: skip
        refs = [0, 1] if relational else [0]
        descs = [_unique_desc(rng, k, objects, config) for k in refs]
        if any(d is None for d in descs):
            continue
        rel = relation(objects[0], objects[1], short) if relational else None
        if relational and rel is None:
            continue
        break
    else:
        raise RuntimeError(f"could not lay out a scene for seed {seed} at {width}x{height}")
    style = Style(article=("a", "the")[rng.integers(2)], big=bool(rng.random() < 0.5), to_the=bool(rng.random() < 0.3))
    caption = build_caption(lang, descs, refs, rel, style)

    canvas = render_background(rng, width, height, config)
    for o in objects:
        o.mask, o.box = draw_shape(canvas, o.shape, o.rgb, o.center, o.radius, o.rotation)
    image = finish(canvas, rng, config)
    # masks are disjoint: objects are placed apart by their circumradii
    negatives = _negatives(rng, lang, descs, refs, rel, style, objects, caption)
    return Sample(image, objects, caption, negatives, seed)


def _negatives(rng, lang, descs, refs, rel, style, objects, caption) -> list[Caption]:
    """One counterfactual per kind where possible, each verified false for the scene."""
    out = []
    k = int(rng.integers(len(descs)))  # which mentioned object gets the change

    def false_desc(d: Desc) -> bool:
        return not _matching(d, objects)

    d = descs[k]
    options = {
        "colour": [Desc(c, d.shape, d.size) for c in COLOURS if c != d.colour],
        "shape": [Desc(d.colour, s, d.size) for s in SHAPES if s != d.shape],
        "size": [Desc(d.colour, d.shape, "small" if d.size == "large" else "large")] if d.size else [],
    }
    for kind, cands in options.items():
        cands = [c for c in cands if false_desc(c)]
        if not cands:
            continue
        new = list(descs)
        new[k] = cands[int(rng.integers(len(cands)))]
        neg = build_caption(lang, new, refs, rel, style)
        neg.neg_kind, neg.changed = kind, _changed(caption, neg)
        out.append(neg)
    if rel is not None:
        neg = build_caption(lang, descs, refs, OPPOSITE[rel], style)
        neg.neg_kind, neg.changed = "relation", _changed(caption, neg)
        out.append(neg)
    return out


def caption_corpus() -> list[str]:
    """Captions covering every word of the grammar in both languages (for the tokenizer)."""
    out = []
    for i, c in enumerate(COLOURS):
        for j, s in enumerate(SHAPES):
            for z in (None, "small", "large"):
                d = Desc(c, s, z)
                other = Desc(COLOURS[(i + 3) % 8], SHAPES[(j + 5) % 8], z)
                for big in (False, True):
                    for lang in ("en", "zh"):
                        out.append(build_caption(lang, [d], [0], None, Style("a", big)).text)
                        out.append(build_caption(lang, [d], [0], None, Style("the", big)).text)
                        for rel in OPPOSITE:
                            out.append(build_caption(lang, [d, other], [0, 1], rel, Style("the", big, to_the=True)).text)
    return sorted(set(out))
