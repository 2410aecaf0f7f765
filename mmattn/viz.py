"""Pictures: attention maps over images, matrices as heat maps (used by the API and the app)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# A perceptual-ish colour ramp (dark purple -> orange -> yellow), 256 entries.
_STOPS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]], float)
RAMP = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c]) for c in range(3)], 1).astype(np.uint8)


def colorize(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 through the colour ramp (values clipped to [vmin, vmax])."""
    span = vmax - vmin if vmax > vmin else 1.0
    idx = np.clip((np.asarray(values, float) - vmin) / span, 0, 1) * 255
    return RAMP[idx.astype(np.uint8)]


def overlay_map(image: Image.Image, m: np.ndarray, box=None, alpha: float = 0.6) -> Image.Image:
    """Blend a (H, W) map in [0, 1] over ``image`` (same size): strong values are opaque,
    weak ones let the image through; draw ``box`` (x0, y0, x1, y1) if given."""
    base = np.asarray(image.convert("RGB"), np.float32)
    m = np.clip(m, 0, 1)[..., None]
    heat = colorize(m[..., 0]).astype(np.float32)
    out = base * (1 - alpha * m) + heat * (alpha * m)
    im = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    if box is not None:
        ImageDraw.Draw(im).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(0, 255, 255), width=max(1, min(im.size) // 100))
    return im


def heatmap_image(matrix: np.ndarray, cell: int = 8, symmetric: bool = False) -> Image.Image:
    """A matrix as a picture, ``cell`` pixels per entry (diverging scale if ``symmetric``)."""
    a = np.asarray(matrix, float)
    if symmetric:
        lim = float(np.abs(a).max()) or 1.0
        lo, hi = -lim, lim
    else:
        lo, hi = float(a.min()), float(a.max())
    rgb = colorize(a, lo, hi)
    return Image.fromarray(rgb).resize((a.shape[1] * cell, a.shape[0] * cell), Image.NEAREST)
