"""A second, independent renderer of shapes-world scenes in other styles, and synthetic
photographs, for the world check's tests and bench/worldcheck.py.

Scenes: 1-4 flat shapes in the eight colour families, each in a shade of its own (lighter,
darker, more or less saturated), anti-aliased (drawn at 4x and reduced), at any rotation, on
plain, gradient, noisy or textured grey backgrounds, with sensor-like noise drawn per
channel. Photographs: smooth colour gradients, colour noise, 1/f ("natural image
statistics") colour fields, and blurred colour blobs with shading.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FAMILIES = {"red": 0.0, "orange": 0.08, "yellow": 0.15, "green": 0.33, "cyan": 0.5, "blue": 0.63, "purple": 0.77, "pink": 0.9}
SUPER = 4  # anti-aliasing: draw at 4x, reduce


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def ring(n, radius, offset=0.0):
        return [(cx + radius * math.cos(rot + offset + 2 * math.pi * k / n), cy + radius * math.sin(rot + offset + 2 * math.pi * k / n)) for k in range(n)]

    if shape == "square":
        return ring(4, r, math.pi / 4)
    if shape == "triangle":
        return ring(3, r, -math.pi / 2)
    if shape == "hexagon":
        return ring(6, r)
    if shape == "diamond":
        return [(cx + dx * math.cos(rot) - dy * math.sin(rot), cy + dx * math.sin(rot) + dy * math.cos(rot))
                for dx, dy in ((0, -r), (0.6 * r, 0), (0, r), (-0.6 * r, 0))]  # fmt: skip
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = rot - math.pi / 2 + math.pi * k / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    if shape == "cross":
        w = 0.33 * r
        base = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        return [(cx + dx * math.cos(rot) - dy * math.sin(rot), cy + dx * math.sin(rot) + dy * math.cos(rot)) for dx, dy in base]
    raise ValueError(shape)


SHAPES = ("circle", "square", "triangle", "hexagon", "diamond", "star", "cross")


def _shade(rng, family: str) -> tuple[int, int, int]:
    h = (FAMILIES[family] + rng.uniform(-0.025, 0.025)) % 1.0
    s = rng.uniform(0.65, 1.0)
    v = rng.uniform(0.6, 1.0)
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def _background(rng, w: int, h: int, kind: str) -> np.ndarray:
    base = rng.uniform(60, 200)
    tint = rng.uniform(-5, 5, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "plain":
        g = np.full((h, w), base, np.float32)
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy) / max(w, h)
        g = base + rng.uniform(15, 40) * (t - t.mean())
    elif kind == "noise":
        g = base + rng.normal(0, rng.uniform(4, 10), (h, w))
    else:  # texture: smooth blobs of grey (cloudy paper), or fine stripes
        small = rng.normal(0, 1, (max(2, h // 12), max(2, w // 12)))
        blob = np.asarray(Image.fromarray(small.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC))
        g = base + rng.uniform(6, 14) * blob / max(1e-6, blob.std())
    return np.clip(g[..., None] + tint, 0, 255)


def other_style_scene(seed: int, width: int = 160, height: int = 120, sensor_noise: float | None = None) -> Image.Image:
    """A shapes scene drawn by this renderer (deterministic by its arguments)."""
    rng = np.random.default_rng([seed, width, height, 7])
    kind = ("plain", "gradient", "noise", "texture")[int(rng.integers(4))]
    bg = _background(rng, width, height, kind)
    big = Image.fromarray(bg.astype(np.uint8)).resize((width * SUPER, height * SUPER), Image.NEAREST)
    draw = ImageDraw.Draw(big)
    short = min(width, height)
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        for _try in range(40):
            r = rng.uniform(0.08, 0.2) * short
            cx, cy = rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1)
            if all(math.dist((cx, cy), (x, y)) > r + q + 2 for x, y, q in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        colour = _shade(rng, list(FAMILIES)[int(rng.integers(8))])
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        S = SUPER
        if shape == "circle":
            draw.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=colour)
        else:
            draw.polygon([(x * S, y * S) for x, y in _polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi))], fill=colour)
    img = np.asarray(big.reduce(SUPER), np.float32)  # anti-aliased edges
    sigma = rng.uniform(1.0, 4.0) if sensor_noise is None else sensor_noise
    img = img + rng.normal(0, sigma, img.shape)  # per channel: a camera sensor's noise has colour
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))


def synthetic_photo(seed: int, width: int = 256, height: int = 192) -> Image.Image:
    """A picture with a photograph's statistics, of one of four kinds (by seed)."""
    rng = np.random.default_rng([seed, width, height, 11])
    kind = seed % 4
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:  # a smooth colour gradient (sky, studio backdrop)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        a = rng.uniform(0, 2 * math.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy) / max(width, height)
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == 1:  # colour noise over a coloured mean
        img = rng.uniform(40, 200, 3) + rng.normal(0, rng.uniform(15, 50), (height, width, 3))
    elif kind == 2:  # 1/f spectrum in each channel, channels correlated (natural-image statistics)
        fy = np.fft.fftfreq(height)[:, None]
        fx = np.fft.fftfreq(width)[None, :]
        f = np.sqrt(fx**2 + fy**2)
        f[0, 0] = 1.0
        base = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(0, 1, (height, width))) / f))
        img = np.stack([base * rng.uniform(0.6, 1.4) + np.real(np.fft.ifft2(np.fft.fft2(rng.normal(0, 1, (height, width))) / f)) * 0.4
                        for _ in range(3)], -1)  # fmt: skip
        img = (img - img.mean()) / max(1e-6, img.std()) * rng.uniform(30, 60) + rng.uniform(80, 170, 3)
    else:  # blurred colour blobs with lighting (objects under a lamp)
        im = Image.new("RGB", (width, height), tuple(int(v) for v in rng.uniform(40, 200, 3)))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(4, 12))):
            x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 60)
            d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(3, 10)))
        light = 0.6 + 0.6 * (xx / width)[..., None]
        img = np.asarray(im, np.float32) * light + rng.normal(0, 3, (height, width, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
