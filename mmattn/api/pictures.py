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


#: rows blended at once by overlay_map: a 4000-pixel-wide band is about 12 MB of temporaries
OVERLAY_ROWS = 256


def overlay_map(image: Image.Image, m: np.ndarray, box=None, alpha: float = 0.6) -> Image.Image:
    """Blend a (H, W) map in [0, 1] over ``image`` (same size): strong values are opaque,
    weak ones let the image through; draw ``box`` (x0, y0, x1, y1) if given."""
    base = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    out = np.empty_like(base)
    for r in range(0, base.shape[0], OVERLAY_ROWS):  # a band of rows at a time: small temporaries
        rows = slice(r, r + OVERLAY_ROWS)
        m64 = np.clip(np.asarray(m[rows], np.float64), 0, 1)
        heat = RAMP[(m64 * 255).astype(np.uint8)]  # colorize(m): the same ramp entry (picked in float64, as there)
        mm, b = m64.astype(np.float32), base[rows]
        out[rows] = np.rint(b + (alpha * mm)[..., None] * (heat.astype(np.float32) - b)).clip(0, 255)  # b (1 - a m) + heat a m
    im = Image.fromarray(out)
    if box is not None:
        ImageDraw.Draw(im).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(0, 255, 255), width=max(1, min(im.size) // 100))
    return im


# ---- additions for the demo (app.py) ---------------------------------------------------
# Diverging ramp for signed values (Q, K, scores): blue (negative) -> white (0) -> red (positive).
_DIV_STOPS = np.array([[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]], float)
DIVERGING = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_DIV_STOPS)), _DIV_STOPS[:, c]) for c in range(3)], 1).astype(np.uint8)


def colorize_signed(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """(H, W) signed values -> (H, W, 3) uint8 on the diverging ramp, 0 = white,
    +-``limit`` (default: the largest |value|) = full red / blue."""
    a = np.asarray(values, float)
    lim = float(np.abs(a).max()) if limit is None else float(limit)
    lim = lim if lim > 0 and np.isfinite(lim) else 1.0
    idx = np.clip((a / lim + 1) / 2, 0, 1) * 255
    return DIVERGING[idx.astype(np.uint8)]


def resize_to_height(image: Image.Image, height: int, max_width: int | None = None) -> Image.Image:
    """``image`` scaled (up or down, aspect kept) to ``height`` pixels tall, narrower if it
    would exceed ``max_width``. Used so that a picture is never shown larger than its pixels."""
    w, h = image.size
    s = height / h
    if max_width is not None and w * s > max_width:
        s = max_width / w
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == image.size:
        return image.copy()
    return image.resize(size, Image.LANCZOS if s < 1 else Image.BICUBIC)


def matrix_picture(matrix: np.ndarray, *, signed: bool = False, limit: float | None = None, vmax: float | None = None,
                   max_side: int = 480, min_side: int = 120, grid_every: tuple[int, int] | None = None) -> Image.Image:  # fmt: skip
    """A matrix as a heat-map picture with crisp cells: each axis gets an integer number of
    pixels per entry so that the longer side is about ``max_side`` and the shorter at least
    ``min_side`` (cells may be rectangles). ``signed`` uses the diverging ramp (0 = white,
    +-``limit``); otherwise 0..``vmax`` (default: the max) on the sequential ramp.
    ``grid_every=(rows, cols)`` draws thin separators every so many entries (e.g. heads)."""
    a = np.atleast_2d(np.asarray(matrix, float))
    R, C = a.shape
    cw = max(1, max_side // max(C, 1))
    ch = max(1, max_side // max(R, 1))
    c = min(cw, ch)  # square cells fitting max_side ...
    cw = ch = c
    if R * ch < min_side:  # ... stretched along an axis that would be too thin
        ch = max(ch, -(-min_side // R))
    if C * cw < min_side:
        cw = max(cw, -(-min_side // C))
    rgb = colorize_signed(a, limit) if signed else colorize(a, 0.0, (float(a.max()) if vmax is None else vmax) or 1.0)
    img = np.repeat(np.repeat(rgb, ch, 0), cw, 1)
    if grid_every is not None:
        gr_, gc = grid_every
        if gr_:
            for r in range(gr_, R, gr_):
                img[r * ch - 1 : r * ch + 1] = 40
        if gc:
            for col in range(gc, C, gc):
                img[:, col * cw - 1 : col * cw + 1] = 40
    return Image.fromarray(img)


def grid_map_overlay(image: Image.Image, grid_map: np.ndarray, *, vmax: float | None = None, signed: bool = False,
                     limit: float | None = None, alpha: float = 0.85, height: int | None = None) -> Image.Image:  # fmt: skip
    """A (gh, gw) map drawn as coloured blocks (one per patch, no smoothing) over ``image``
    (resized to ``height`` first if given): 0..``vmax`` on the sequential ramp, or with
    ``signed`` -``limit``..``limit`` on the diverging one (defaults: the map's own extremes).
    Strong values are opaque (up to ``alpha``), weak ones let the image through."""
    if height is not None:
        image = resize_to_height(image, height)
    m = np.asarray(grid_map, float)
    if signed:
        lim = float(np.abs(m).max()) if limit is None else float(limit)
        lim = lim if lim > 0 and np.isfinite(lim) else 1.0
        rgb, strength = colorize_signed(m, lim), np.clip(np.abs(m) / lim, 0, 1)
    else:
        top = (float(m.max()) if vmax is None else float(vmax)) or 1.0
        rgb, strength = colorize(m, 0.0, top), np.clip(m / top, 0, 1)
    size = image.size
    heat = np.asarray(Image.fromarray(rgb).resize(size, Image.NEAREST), np.float32)
    a = np.asarray(Image.fromarray((strength * 255).astype(np.uint8)).resize(size, Image.NEAREST), np.float32)[..., None] / 255
    base = np.asarray(image.convert("RGB"), np.float32)
    out = base * (1 - alpha * a) + heat * (alpha * a)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def draw_patch_grid(image: Image.Image, grid: tuple[int, int], highlight: tuple[int, int] | None = None) -> Image.Image:
    """``image`` with the model's patch grid drawn faintly, and patch ``highlight`` = (row, col) outlined."""
    im = image.convert("RGB").copy()
    d = ImageDraw.Draw(im, "RGBA")
    gh, gw = grid
    W, H = im.size
    for c in range(1, gw):
        x = round(c * W / gw)
        d.line([(x, 0), (x, H)], fill=(255, 255, 255, 70))
    for r in range(1, gh):
        y = round(r * H / gh)
        d.line([(0, y), (W, y)], fill=(255, 255, 255, 70))
    if highlight is not None:
        r, c = highlight
        box = [round(c * W / gw), round(r * H / gh), round((c + 1) * W / gw) - 1, round((r + 1) * H / gh) - 1]
        w = max(2, min(W, H) // 120)
        d.rectangle(box, outline=(0, 0, 0, 255), width=w + 2)
        d.rectangle(box, outline=(0, 255, 255, 255), width=w)
    return im


def labelled_grid(cells: list[list[Image.Image]], row_labels: list[str], col_labels: list[str], *,
                  pad: int = 4, background=(255, 255, 255), font=None) -> Image.Image:  # fmt: skip
    """Compose pictures into a table with row / column labels (rows x columns). With the
    built-in font (``font=None``) labels must be ASCII; pass a font with CJK glyphs for
    Chinese labels (:func:`mmattn.teach.drawing.font`)."""
    from PIL import ImageFont

    font = font or ImageFont.load_default(size=14)
    R, C = len(cells), max((len(r) for r in cells), default=0)
    cw = max((im.width for row in cells for im in row), default=1)
    chh = max((im.height for row in cells for im in row), default=1)
    left = max([int(font.getlength(s)) for s in row_labels] + [0]) + 2 * pad
    top = max(20, int(getattr(font, "size", 14)) + 8) + pad  # the column labels' line
    out = Image.new("RGB", (left + C * (cw + pad) + pad, top + R * (chh + pad) + pad), background)
    d = ImageDraw.Draw(out)
    for j, s in enumerate(col_labels[:C]):
        x = left + j * (cw + pad) + (cw - int(font.getlength(s))) // 2
        d.text((x, pad), s, fill=(30, 30, 30), font=font)
    for i, row in enumerate(cells):
        y = top + i * (chh + pad)
        if i < len(row_labels):
            d.text((pad, y + chh // 2 - int(getattr(font, "size", 14)) // 2 - 2), row_labels[i], fill=(30, 30, 30), font=font)
        for j, im in enumerate(row):
            out.paste(im, (left + j * (cw + pad), y))
    return out
