"""Legends drawn into pictures: a font that has Chinese, and colour bars in a picture's own colours.

:func:`colour_bar` draws the ramp a picture was coloured with (``pictures.RAMP`` for 0..max,
``pictures.DIVERGING`` for -limit..+limit), its end values and what it measures;
:func:`with_colour_bar` puts one under a picture.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmattn.api import pictures

#: fonts with Chinese glyphs, tried in order (Debian/Ubuntu Noto CJK, macOS, Windows)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
BAR_HEIGHT = 12
INK = (30, 30, 30)


@cache
def font(size: int = 14) -> ImageFont.ImageFont:
    """A font with Chinese glyphs at ``size`` px (the Simplified Chinese face of a .ttc), or
    PIL's default (Latin only) where none is installed."""
    for path in CJK_FONTS:
        if Path(path).is_file():
            for index in range(8):
                try:
                    f = ImageFont.truetype(path, size, index=index)
                except OSError:
                    break
                if "SC" in " ".join(f.getname()) or path.endswith(("PingFang.ttc", "msyh.ttc")):
                    return f
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def ramp(signed: bool) -> np.ndarray:
    """(256, 3) uint8: the colours a picture uses (diverging for signed values)."""
    return pictures.DIVERGING if signed else pictures.RAMP


def _fmt(x: float) -> str:
    a = abs(x)
    return "0" if x == 0 else f"{x:.2g}" if a < 0.01 else f"{x:.2f}" if a < 10 else f"{x:.1f}" if a < 100 else f"{x:.0f}"


def colour_bar(width: int, low: float, high: float, label: str, *, signed: bool = False, size: int = 13,
               middle: bool = False) -> Image.Image:  # fmt: skip
    """A horizontal colour bar ``width`` px wide: the ramp from ``low`` to ``high`` (a tick at 0
    for a signed bar, or at the middle value with ``middle``), the end values under it and
    ``label`` above it."""
    f = font(size)
    pad = max(6, size // 2)
    lines = _wrap(label, f, width - 2 * pad, ImageDraw.Draw(Image.new("RGB", (1, 1))))
    top = (size + 4) * len(lines) + 2
    h = top + BAR_HEIGHT + size + 8
    out = Image.new("RGB", (width, h), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        d.text((pad, 1 + i * (size + 4)), line, fill=INK, font=f)
    x0, x1 = pad, width - pad
    strip = np.repeat(ramp(signed)[None], BAR_HEIGHT, 0)  # (h, 256, 3)
    bar = Image.fromarray(strip).resize((max(1, x1 - x0), BAR_HEIGHT), Image.BILINEAR)
    out.paste(bar, (x0, top))
    d.rectangle([x0, top, x1 - 1, top + BAR_HEIGHT - 1], outline=(120, 120, 120))
    ticks = [(x0, _fmt(low), "l"), (x1, _fmt(high), "r")]
    if middle:
        ticks.append(((x0 + x1) / 2, _fmt((low + high) / 2), "m"))
    elif signed and low < 0 < high:
        ticks.append((x0 + (x1 - x0) * (-low) / (high - low), "0", "m"))
    for x, s, anchor in ticks:
        w = d.textlength(s, font=f)
        tx = x if anchor == "l" else x - w if anchor == "r" else x - w / 2
        d.line([(x, top + BAR_HEIGHT), (x, top + BAR_HEIGHT + 3)], fill=INK)
        d.text((tx, top + BAR_HEIGHT + 3), s, fill=INK, font=f)
    return out


def with_colour_bar(picture: Image.Image, low: float, high: float, label: str, *, signed: bool = False, middle: bool = False,
                    size: int = 13, above: bool = False) -> Image.Image:  # fmt: skip
    """``picture`` with :func:`colour_bar` under it (or ``above`` it: a gallery writes its
    caption over a picture's bottom), as wide as the picture (at least 180 px); ``size``: the
    font's pixels (make it larger for pictures the page shows smaller than they are)."""
    bar = colour_bar(max(picture.width, 180), low, high, label, signed=signed, middle=middle, size=size)
    out = Image.new("RGB", (max(picture.width, bar.width), picture.height + bar.height), (255, 255, 255))
    out.paste(picture.convert("RGB"), (0, bar.height if above else 0))
    out.paste(bar, (0, 0 if above else picture.height))
    return out


def outline_patches(picture: Image.Image, grid: tuple[int, int], patches: list[tuple[int, int]], colour=(0, 255, 255)) -> Image.Image:
    """``picture`` with the model's patch grid drawn faintly and each (row, col) of ``patches`` outlined."""
    im = pictures.draw_patch_grid(picture, grid, patches[0] if patches else None)
    if len(patches) > 1:
        d = ImageDraw.Draw(im)
        gh, gw = grid
        W, H = im.size
        w = max(2, min(W, H) // 120)
        for r, c in patches[1:]:
            box = [round(c * W / gw), round(r * H / gh), round((c + 1) * W / gw) - 1, round((r + 1) * H / gh) - 1]
            d.rectangle(box, outline=(0, 0, 0), width=w + 2)
            d.rectangle(box, outline=colour, width=w)
    return im


def labelled_box(picture: Image.Image, box, label: str, size: int = 15) -> Image.Image:
    """Draw ``box`` (x0, y0, x1, y1, x1/y1 exclusive) on ``picture`` in place: white with a
    dark rim (readable over any word colour), ``label`` on a dark plate above it (inside the
    picture: below the top edge when there is no room above)."""
    if box is None:
        return picture
    d = ImageDraw.Draw(picture)
    x0, y0, x1, y1 = box[0], box[1], max(box[0], box[2] - 1), max(box[1], box[3] - 1)
    w = max(2, min(picture.size) // 120)
    d.rectangle([x0, y0, x1, y1], outline=(20, 20, 20), width=w + 2)
    d.rectangle([x0 + 1, y0 + 1, x1 - 1, y1 - 1], outline=(255, 255, 255), width=w)
    f = font(size)
    tw = d.textlength(label, font=f) + 8
    ty = y0 - size - 6 if y0 >= size + 6 else y1 + 2 if y1 + size + 6 <= picture.height else y0 + 2
    tx = min(max(0, x0), max(0, picture.width - tw))
    d.rectangle([tx, ty, tx + tw, ty + size + 5], fill=(20, 20, 20))
    d.text((tx + 4, ty + 1), label, fill=(255, 255, 255), font=f)
    return picture


def diverging_over(image: Image.Image, grid_map: np.ndarray, low: float, high: float, *, height: int | None = None,
                   alpha: float = 0.8) -> Image.Image:  # fmt: skip
    """A (gh, gw) map on the diverging ramp from ``low`` (blue) through the middle (white) to
    ``high`` (red), one block per patch, over ``image`` at ``alpha`` everywhere (so that a map
    whose values all lie in 0.74..1 shows its structure, not one brown)."""
    if height is not None:
        image = pictures.resize_to_height(image, height)
    m = np.asarray(grid_map, float)
    mid, half = (low + high) / 2, (high - low) / 2 or 1.0
    rgb = pictures.colorize_signed((m - mid) / half, 1.0)
    heat = np.asarray(Image.fromarray(rgb).resize(image.size, Image.NEAREST), np.float32)
    base = np.asarray(image.convert("RGB"), np.float32)
    return Image.fromarray((base * (1 - alpha) + heat * alpha).clip(0, 255).astype(np.uint8))


def titled(picture: Image.Image, title: str, size: int = 15, top: int = 0) -> Image.Image:
    """``picture`` with ``title`` written above it (``top`` blank pixels above the title)."""
    f = font(size)
    h = size + 10 + top
    out = Image.new("RGB", (picture.width, picture.height + h), (255, 255, 255))
    ImageDraw.Draw(out).text((4, 3 + top), title, fill=INK, font=f)
    out.paste(picture.convert("RGB"), (0, h))
    return out


def side_by_side(pictures_: list[Image.Image], gap: int = 12) -> Image.Image:
    """Pictures in one row, top-aligned, on white."""
    w = sum(p.width for p in pictures_) + gap * (len(pictures_) - 1)
    h = max(p.height for p in pictures_)
    out = Image.new("RGB", (w, h), (255, 255, 255))
    x = 0
    for p in pictures_:
        out.paste(p.convert("RGB"), (x, 0))
        x += p.width + gap
    return out


def word_legend(width: int, items: list[tuple[str, str]], note: str, size: int = 14) -> Image.Image:
    """A legend ``width`` px wide: a swatch in each word's colour with its label ((label, "#rrggbb")
    pairs), wrapped over as many lines as needed, then ``note`` (wrapped)."""
    f = font(size)
    line_h = size + 10
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = 6
    for label, colour in items:
        w = 26 + probe.textlength(label, font=f) + 16
        if rows[-1] and x + w > width:
            rows.append([])
            x = 6
        rows[-1].append((label, colour, x))
        x += w
    note_lines = _wrap(note, f, width - 12, probe)
    out = Image.new("RGB", (width, 6 + line_h * (len(rows) + len(note_lines))), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        y = 4 + r * line_h
        for label, colour, x in row:
            d.rectangle([x, y + 2, x + 18, y + size], fill=colour, outline=(20, 20, 20), width=2)
            d.text((x + 24, y), label, fill=INK, font=f)
    for i, line in enumerate(note_lines):
        d.text((6, 4 + (len(rows) + i) * line_h), line, fill=(70, 70, 70), font=f)
    return out


def _wrap(text: str, f, width: int, d: ImageDraw.ImageDraw) -> list[str]:
    """``text`` broken into lines that fit ``width`` px: at spaces, and between any two Chinese
    characters (Chinese has no spaces to break at)."""
    import re

    tokens = re.findall(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]|[^\s\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+|\s+", text)
    lines, line = [], ""
    for tok in tokens:
        cand = line + tok
        if line.strip() and d.textlength(cand.rstrip(), font=f) > width:
            lines.append(line.rstrip())
            line = tok.lstrip()
        else:
            line = cand
    return [x for x in lines + [line.rstrip()] if x]
