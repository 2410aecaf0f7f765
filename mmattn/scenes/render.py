"""Rasterisation of the procedural "shapes world": palette, shapes, backgrounds.

Everything is drawn into a float32 canvas of shape (H, W, 3) with values in
[0, 255] and converted to a PIL RGB image at the end.

Shapes are described by signed distance functions (SDFs, in pixels, negative
inside) evaluated once per pixel centre, only inside the object's bounding
box. Anti-aliased coverage is ``clip(0.5 - sdf, 0, 1)`` (a one-pixel-wide
linear ramp across the edge), so the object mask ``coverage >= 0.5`` is exactly
``sdf <= 0``.

Every shape fits inside the circle of radius ``radius`` around its centre (its
circumradius), which is what scene layout uses to keep objects apart.

The two presets :data:`TRAIN` and :data:`SHIFTED` (a :class:`RenderConfig`)
control which colour shades, rotations, backgrounds, noise levels and sizes are
sampled.
"""

from __future__ import annotations

import colorsys
import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart", "cross", "diamond", "hexagon",
)
COLOURS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink",
)
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("plain", "noisy", "gradient", "textured")

#: Size classes as circumradius / shorter image side. The gap between them
#: keeps "small" and "large" separable at a glance.
SIZE_CLASSES: dict[str, tuple[float, float]] = {
    "small": (0.08, 0.11),
    "large": (0.16, 0.22),
}

#: Smallest supported image side in pixels (below this small shapes vanish).
MIN_SIDE = 32

# Shades per colour as (hue in degrees, saturation, value). Hues stay well
# inside each colour's band: red ~0, orange ~28, yellow ~53, green ~125,
# cyan ~186, blue ~225, purple ~278, pink ~326 (pink is also lighter / less
# saturated than red and purple). The first N_TRAIN_SHADES are the "train"
# shades, the rest are "heldout".
_SHADES_HSV: dict[str, tuple[tuple[float, float, float], ...]] = {
    "red": ((0, .88, .86), (358, .90, .70), (2, .82, .96), (0, .92, .62),
            (357, .80, .78), (3, .95, .90)),
    "orange": ((28, .95, .98), (25, .92, .90), (31, .88, 1.0), (27, .96, .84),
               (30, .80, .96), (26, 1.0, .93)),
    "yellow": ((53, .92, .98), (55, .85, .93), (51, .95, 1.0), (54, .80, .88),
               (56, .95, .90), (52, .75, 1.0)),
    "green": ((125, .78, .72), (120, .85, .58), (130, .70, .82), (118, .70, .66),
              (128, .90, .64), (122, .60, .78)),
    "cyan": ((186, .95, .86), (183, .85, .80), (189, .80, .93), (185, 1.0, .74),
             (187, .70, .90), (184, .92, .96)),
    "blue": ((225, .85, .88), (222, .90, .75), (228, .75, .96), (224, .95, .65),
             (226, .70, .85), (221, .95, .92)),
    "purple": ((278, .72, .72), (275, .80, .60), (281, .65, .82), (277, .85, .66),
               (279, .60, .76), (276, .90, .70)),
    "pink": ((326, .52, 1.0), (323, .58, .95), (329, .45, .98), (325, .62, .98),
             (328, .50, .93), (322, .55, 1.0)),
}
N_TRAIN_SHADES = 4


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


#: colour name -> {"train": shades, "heldout": shades}, each an RGB tuple.
PALETTE: dict[str, dict[str, tuple[tuple[int, int, int], ...]]] = {
    name: {
        "train": tuple(_hsv_to_rgb(*hsv) for hsv in hsvs[:N_TRAIN_SHADES]),
        "heldout": tuple(_hsv_to_rgb(*hsv) for hsv in hsvs[N_TRAIN_SHADES:]),
    }
    for name, hsvs in _SHADES_HSV.items()
}

Intervals = tuple[tuple[float, float], ...]

#: Training rotations (degrees) all around the circle, with 8 bands left out: within 15
#: degrees of a multiple of 45, so a shape is seen at every orientation class but never
#: at, e.g., 17-28 degrees (those make the held-out bands of SHIFTED).
ROTATIONS: Intervals = tuple((k * 45.0 - 15.0, k * 45.0 + 15.0) for k in range(8))
HELD_OUT_ROTATIONS: Intervals = tuple((k * 45.0 + 17.0, k * 45.0 + 28.0) for k in range(8))


@dataclass(frozen=True)
class RenderConfig:
    """How scenes are sampled and drawn. Ranges are tuples of closed intervals
    ``((lo, hi), ...)``; a value is drawn from one interval chosen with
    probability proportional to its length.

    Attributes:
        name: label for logs / reports.
        shades: "train" or "heldout" palette shades.
        rotation: rotation intervals in degrees.
        backgrounds: background kinds allowed (subset of BACKGROUNDS).
        gray: background base gray level intervals (0..255).
        tint: max per-channel tint of the background (keeps it low-saturation).
        bg_contrast: gray-level contrast of gradient / textured backgrounds.
        texture_period: stripe / check period as a fraction of the shorter side.
        bg_noise: std of the gray noise of "noisy" backgrounds.
        pixel_noise: std of the gray noise added to the whole image.
        small_radius, large_radius: circumradius intervals as a fraction of
            the shorter image side; must lie inside SIZE_CLASSES.
        min_objects, max_objects: objects per scene (1..4).
        p_shared: probability that a scene holds a distractor sharing the
            colour or the shape of a mentioned object.
        p_size_distractor: given a distractor, probability that it shares
            colour AND shape (differing only in size, so the caption must
            say the size).
        p_relation: probability of a two-object relational caption when the
            scene has at least two objects.
        p_size_word: probability of naming the size when not needed.
        p_zh: probability of a Chinese caption when ``lang`` is None.
    """

    name: str = "train"
    shades: str = "train"
    rotation: Intervals = ROTATIONS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    gray: Intervals = ((70.0, 190.0),)
    tint: float = 6.0
    bg_contrast: Intervals = ((12.0, 35.0),)
    texture_period: Intervals = ((0.06, 0.12),)
    bg_noise: Intervals = ((4.0, 9.0),)
    pixel_noise: Intervals = ((0.0, 2.0),)
    small_radius: Intervals = ((0.085, 0.105),)
    large_radius: Intervals = ((0.17, 0.21),)
    min_objects: int = 1
    max_objects: int = 4
    p_shared: float = 0.5
    p_size_distractor: float = 0.15
    p_relation: float = 0.5
    p_size_word: float = 0.3
    p_zh: float = 0.5

    def __post_init__(self) -> None:
        if self.shades not in ("train", "heldout"):
            raise ValueError(f"shades must be 'train' or 'heldout', got {self.shades!r}")
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if bad or not self.backgrounds:
            raise ValueError(f"backgrounds must be a non-empty subset of {BACKGROUNDS}, "
                             f"got {self.backgrounds!r}")
        for size, ranges in (("small", self.small_radius), ("large", self.large_radius)):
            lo, hi = SIZE_CLASSES[size]
            for a, b in ranges:
                if not lo <= a <= b <= hi:
                    raise ValueError(f"{size}_radius interval {(a, b)} is outside the "
                                     f"size class {(lo, hi)}")
        if not 1 <= self.min_objects <= self.max_objects <= 4:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 4, got "
                             f"{self.min_objects}, {self.max_objects}")
        for field_name in ("p_shared", "p_size_distractor", "p_relation",
                           "p_size_word", "p_zh"):
            p = getattr(self, field_name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{field_name} must be in [0, 1], got {p}")
        if self.p_shared > 0 and self.max_objects < 2:
            raise ValueError(f"p_shared={self.p_shared} needs max_objects >= 2")
        for field_name in ("rotation", "gray", "bg_contrast", "texture_period",
                           "bg_noise", "pixel_noise", "small_radius", "large_radius"):
            ranges = getattr(self, field_name)
            if not ranges or any(a > b for a, b in ranges):
                raise ValueError(f"{field_name} must be non-empty (lo, hi) intervals, "
                                 f"got {ranges!r}")


#: Training distribution.
TRAIN = RenderConfig()

#: Rendered differently from TRAIN but just as unambiguous: held-out shades,
#: rotations in the bands training leaves out, darker / lighter backgrounds with other
#: texture periods and more noise, sizes near the edges of each size class.
SHIFTED = RenderConfig(
    name="shifted",
    shades="heldout",
    rotation=HELD_OUT_ROTATIONS,
    gray=((35.0, 62.0), (198.0, 222.0)),
    tint=10.0,
    bg_contrast=((25.0, 45.0),),
    texture_period=((0.03, 0.045), (0.16, 0.22)),
    bg_noise=((10.0, 15.0),),
    pixel_noise=((3.0, 5.0),),
    small_radius=((0.08, 0.084), (0.106, 0.11)),
    large_radius=((0.16, 0.166), (0.214, 0.22)),
)


def sample_interval(rng: np.random.Generator, intervals: Intervals) -> float:
    """Draw uniformly from a union of intervals (weighted by length)."""
    if len(intervals) == 1:
        lo, hi = intervals[0]
        return lo + (hi - lo) * rng.random()
    lengths = np.array([hi - lo for lo, hi in intervals], dtype=np.float64)
    total = lengths.sum()
    k = int(rng.integers(len(intervals))) if total <= 0 else int(
        rng.choice(len(intervals), p=lengths / total))
    lo, hi = intervals[k]
    return lo + (hi - lo) * rng.random()


# ---------------------------------------------------------------------------
# Noise bank: drawing fresh Gaussian noise for every image costs more than the
# rest of the scene, so crops of one fixed bank are used instead.

_BANK_SIDE = 512
_noise_bank: np.ndarray | None = None


def _noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Unit-variance gray noise, shape (height, width), float32."""
    global _noise_bank
    if _noise_bank is None:
        _noise_bank = np.random.default_rng(1234).standard_normal(
            (_BANK_SIDE, _BANK_SIDE), dtype=np.float32)
    bank = _noise_bank
    if height > _BANK_SIDE or width > _BANK_SIDE:
        bank = np.pad(bank, ((0, max(0, height - _BANK_SIDE)), (0, max(0, width - _BANK_SIDE))),
                      mode="wrap")
    oy = int(rng.integers(bank.shape[0] - height + 1))
    ox = int(rng.integers(bank.shape[1] - width + 1))
    crop = bank[oy:oy + height, ox:ox + width]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return crop if rng.random() < 0.5 else -crop


# ---------------------------------------------------------------------------
# Backgrounds

def render_background(rng: np.random.Generator, width: int, height: int,
                      config: RenderConfig, kind: str | None = None) -> np.ndarray:
    """A low-saturation background canvas, shape (height, width, 3) float32.

    ``kind`` is one of BACKGROUNDS; None draws one from ``config.backgrounds``.
    """
    if kind is None:
        kind = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    base = sample_interval(rng, config.gray)
    tint = rng.uniform(-config.tint, config.tint, 3).astype(np.float32)
    colour = (base + tint).astype(np.float32)
    if kind == "plain":
        return np.broadcast_to(colour, (height, width, 3)).copy()
    if kind == "noisy":
        gray = _noise(rng, height, width) * np.float32(sample_interval(rng, config.bg_noise))
        return gray[:, :, None] + colour
    # Gradient / texture contrast goes towards mid-gray so levels stay in range.
    contrast = sample_interval(rng, config.bg_contrast) * (1.0 if base < 128 else -1.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    if kind == "gradient":
        c, s = math.cos(angle), math.sin(angle)
        proj = xs * np.float32(c) + ys * np.float32(s)
        lo, hi = proj.min(), proj.max()
        ramp = (proj - lo) * np.float32(contrast / max(hi - lo, 1e-6))
        return ramp[:, :, None] + colour
    # textured: anti-aliased stripes or checks (triangle wave clipped to +-1).
    period = max(3.0, sample_interval(rng, config.texture_period) * min(width, height))
    c, s = math.cos(angle), math.sin(angle)

    def square_wave(phase: np.ndarray) -> np.ndarray:
        tri = np.abs(phase - np.floor(phase) - 0.5) * np.float32(2 * period) - np.float32(period / 2)
        return np.clip(tri, -0.5, 0.5)  # in [-0.5, 0.5], 1 px ramp at edges

    pu = (xs * np.float32(c) + ys * np.float32(s)) * np.float32(1 / period)
    wave = square_wave(pu)
    if rng.random() < 0.5:  # checks
        pv = (ys * np.float32(c) - xs * np.float32(s)) * np.float32(1 / period)
        wave = wave * square_wave(pv) * np.float32(2.0)
    return (wave * np.float32(contrast) + np.float32(contrast / 2))[:, :, None] + colour


# ---------------------------------------------------------------------------
# Shapes: signed distance functions in pixels; (u, v) are pixel offsets from
# the centre in the object's rotated frame (v points down), r its circumradius.

_S3 = math.sqrt(3.0)
_STAR_K1 = (0.809016994375, -0.587785252292)
_STAR_INNER = 0.5  # inner / outer radius of the star


def _sdf_circle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return np.sqrt(u * u + v * v) - r


def _sdf_square(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) - r * math.sqrt(0.5)


def _sdf_triangle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # Equilateral, pointing up; edge normals at 90, -30, 210 degrees (y down).
    au = np.abs(u) * np.float32(_S3 / 2)
    return np.maximum(v, au - v * np.float32(0.5)) - np.float32(r / 2)


def _sdf_diamond(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # Rhombus, half-height r, half-width 0.62 r (clearly not a rotated square).
    h, w = r, 0.62 * r
    n = math.hypot(h, w)
    return (np.abs(u) * np.float32(h / n) + np.abs(v) * np.float32(w / n)) - np.float32(w * h / n)


def _sdf_hexagon(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # Pointy sides left/right, flat top and bottom.
    au, av = np.abs(u), np.abs(v)
    return np.maximum(av, au * np.float32(_S3 / 2) + av * np.float32(0.5)) - np.float32(r * _S3 / 2)


def _sdf_cross(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # Plus sign: arms of half-length L and half-thickness t, corner at distance r.
    t_ratio = 0.34
    L = r / math.sqrt(1 + t_ratio ** 2)
    t = t_ratio * L
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - L, av - t), np.maximum(au - t, av - L))


def _sdf_heart(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # A square rotated 45 degrees (point down) plus two discs on its upper
    # edges; side s chosen so the farthest point lies at ~0.95 r.
    s = r / 0.96
    vv = v - np.float32(0.0735 * s)
    au = np.abs(u)
    a = (au + vv) * np.float32(math.sqrt(0.5))
    b = (vv - au) * np.float32(math.sqrt(0.5))
    d_square = np.maximum(np.abs(a), np.abs(b)) - np.float32(s / 2)
    cu, cv = s / (2 * math.sqrt(2)), -s / (2 * math.sqrt(2))
    du, dv = au - np.float32(cu), vv - np.float32(cv)
    d_disc = np.sqrt(du * du + dv * dv) - np.float32(s / 2)
    return np.minimum(d_square, d_disc)


def _sdf_star(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    # Five-pointed star (Inigo Quilez's exact sdStar5), one tip up.
    k1x, k1y = _STAR_K1
    px, py = np.abs(u), -v  # y up for the formula
    d = np.maximum(px * np.float32(k1x) + py * np.float32(k1y), 0) * 2
    px, py = px - d * np.float32(k1x), py - d * np.float32(k1y)
    d = np.maximum(px * np.float32(-k1x) + py * np.float32(k1y), 0) * 2
    px, py = np.abs(px + d * np.float32(k1x)), py - d * np.float32(k1y)
    py = py - np.float32(r)
    bax, bay = _STAR_INNER * -k1y, _STAR_INNER * k1x - 1.0
    h = np.clip((px * np.float32(bax) + py * np.float32(bay)) * np.float32(1.0 / (bax * bax + bay * bay)),
                0.0, r)
    ex, ey = px - np.float32(bax) * h, py - np.float32(bay) * h
    return np.sqrt(ex * ex + ey * ey) * np.sign(py * np.float32(bax) - px * np.float32(bay))


_SDFS = {
    "circle": _sdf_circle, "square": _sdf_square, "triangle": _sdf_triangle,
    "star": _sdf_star, "heart": _sdf_heart, "cross": _sdf_cross,
    "diamond": _sdf_diamond, "hexagon": _sdf_hexagon,
}


def shape_sdf(shape: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of ``shape`` with circumradius
    ``radius`` at offsets (u, v) from its centre in its own frame (v down)."""
    try:
        fn = _SDFS[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}") from None
    return fn(u, v, radius)


def draw_shape(canvas: np.ndarray, shape: str, rgb: tuple[int, int, int],
               center: tuple[float, float], radius: float, rotation: float,
               ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Alpha-blend an anti-aliased shape into ``canvas`` (H, W, 3) float32, in place.

    Args:
        center: (cx, cy) in pixels (pixel (i, j) covers [j, j+1) x [i, i+1)).
        radius: circumradius in pixels.
        rotation: degrees, counter-clockwise as seen on screen.

    Returns:
        mask: (H, W) bool, pixels with coverage >= 0.5.
        box: tight (x0, y0, x1, y1) of the mask, x1 / y1 exclusive.

    Raises:
        ValueError: if the shape covers no pixel (too small / off canvas).
    """
    height, width = canvas.shape[:2]
    cx, cy = center
    x0, x1 = max(0, int(math.floor(cx - radius - 1))), min(width, int(math.ceil(cx + radius + 1)))
    y0, y1 = max(0, int(math.floor(cy - radius - 1))), min(height, int(math.ceil(cy + radius + 1)))
    mask = np.zeros((height, width), dtype=bool)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"{shape} at {center} with radius {radius} is off the canvas")
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5 - cx)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5 - cy)
    # Screen rotation by +theta (counter-clockwise, y down): sample the shape
    # at the inverse-rotated offsets.
    th = math.radians(rotation)
    c, s = np.float32(math.cos(th)), np.float32(math.sin(th))
    u = xs * c - ys * s
    v = xs * s + ys * c
    sdf = shape_sdf(shape, u, v, float(radius))
    local = sdf <= 0
    rows, cols = np.flatnonzero(local.any(axis=1)), np.flatnonzero(local.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"{shape} with radius {radius:.2f}px covers no pixel")
    cover = np.clip(np.float32(0.5) - sdf, 0.0, 1.0)[:, :, None]
    region = canvas[y0:y1, x0:x1]
    region += cover * (np.asarray(rgb, dtype=np.float32) - region)
    mask[y0:y1, x0:x1] = local
    box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
    return mask, box


def finish(canvas: np.ndarray, rng: np.random.Generator, config: RenderConfig) -> Image.Image:
    """Add the global pixel noise of ``config`` and convert (H, W, 3) float32 to RGB."""
    sigma = sample_interval(rng, config.pixel_noise)
    if sigma > 0:
        canvas = canvas + (_noise(rng, *canvas.shape[:2]) * np.float32(sigma))[:, :, None]
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), mode="RGB")
