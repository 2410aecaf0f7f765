"""The page's checks of what a user sends (image, caption, controls, coordinates), each failure
a :class:`~mmattn.demo.errors.UserError` naming the bad value in the user's language.

The caption's own rules (vocabulary, language) are the processor's: ``check_caption``."""

from __future__ import annotations

from PIL import Image

from mmattn.api.image import load_image
from mmattn.demo.errors import UserError, from_library, refuse
from mmattn.models.tokenizer import MAX_TOKENS
from mmattn.teach import recompute
from mmattn.teach.text import t

MAX_PIXELS = 16_000_000  #: larger uploads are refused with a message (checked before decoding)
MAX_ASPECT = 16  #: images whose sides differ more than this are refused (the model would see a strip of patches)
MAX_CAPTION_CHARS = 1000  #: longer captions are refused; up to this they are cut to MAX_TOKENS tokens with a notice
WORK_SIDE = 512  #: bigger images are downscaled to this before grounding (the model sees 128 px anyway)
MAX_POSITIONS = 8  #: positions drawn as curves at most


def check_size(w: int, h: int, lang: str = "en") -> None:
    """An image of w × h pixels can be grounded (not empty, not huge, not a thin strip)."""
    if w <= 0 or h <= 0:
        raise refuse("empty_image", lang, "empty_image")
    if w * h > MAX_PIXELS:
        raise refuse("image_too_large", lang, "image_too_large", w=w, h=h, mp=w * h / 1e6, limit=MAX_PIXELS // 1_000_000)
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise refuse("image_too_thin", lang, "image_too_thin", w=w, h=h, aspect=MAX_ASPECT)


def image(value, lang: str = "en") -> Image.Image:
    """The uploaded image as RGB, or a UserError."""
    if value is None:
        raise refuse("no_image", lang, "no_image")
    if not isinstance(value, Image.Image):
        raise refuse("not_an_image", lang, "not_an_image", why="")
    check_size(*value.size, lang=lang)
    try:
        return load_image(value)
    except (ValueError, TypeError, OSError) as e:
        raise refuse("not_an_image", lang, "not_an_image", why=f" ({e})") from e


def work_image(src: Image.Image) -> Image.Image:
    """What we ground: the image itself, or a WORK_SIDE-px version of a big one."""
    if max(src.size) <= WORK_SIDE:
        return src
    s = WORK_SIDE / max(src.size)
    return src.resize((max(1, round(src.width * s)), max(1, round(src.height * s))), Image.LANCZOS)


def caption(value, processor, lang: str = "en") -> str:
    """The caption, checked by the page (empty, too long, no words) and by ``processor``."""
    if value is None or not isinstance(value, str) or not value.strip():
        raise refuse("empty_caption", lang, "empty_caption")
    if len(value) > MAX_CAPTION_CHARS:
        raise refuse("caption_too_long", lang, "caption_too_long", n=len(value), limit=MAX_CAPTION_CHARS, tokens=MAX_TOKENS - 2)
    if not any(ch.isalnum() for ch in value):
        raise refuse("no_words", lang, "no_words")
    try:
        return processor.check_caption(value)
    except (TypeError, ValueError) as e:
        raise from_library(e, lang) from None


def whole(value, name: str, lo: int, hi: int, default: int, lang: str = "en") -> int:
    """``value`` as a whole number lo..hi (``default`` when empty)."""
    if value is None or value == "":
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise refuse("whole_number", lang, name=t(f"name_{name}", lang), lo=lo, hi=hi, got=repr(str(value)[:20])) from None
    if not f.is_integer() or not lo <= f <= hi:
        raise refuse("whole_number", lang, name=t(f"name_{name}", lang), lo=lo, hi=hi, got=repr(value))
    return int(f)


def controls(methods: list[str], L: int, H: int, method, layer, heads, lang: str = "en") -> dict:
    """The Ground controls: a method the model offers, a layer 0..L-1, "mean", "max" or a head 0..H-1."""
    method = method or "attention"
    if method not in methods:
        raise refuse("method", lang, got=repr(str(method)[:30]), choices=", ".join(methods))
    layer = whole(layer, "layer", 0, L - 1, L - 1, lang)
    heads = "mean" if heads is None or heads == "" else heads
    if isinstance(heads, str) and heads.strip().isdigit():
        heads = int(heads)
    if not (heads in ("mean", "max") or (isinstance(heads, int) and not isinstance(heads, bool) and 0 <= heads < H)):
        raise refuse("heads", lang, hi=H - 1, got=repr(str(heads)[:20]))
    return {"method": method, "layer": layer, "heads": heads}


def direction(value, lang: str = "en") -> str:
    if value not in recompute.DIRECTIONS:
        raise refuse("direction", lang, choices=", ".join(recompute.DIRECTIONS), got=repr(str(value)[:30]))
    return value


def pixel(x, y, size: tuple[int, int], lang: str = "en") -> tuple[float, float]:
    """Pixel (x, y) of an image of ``size`` as fractions of its width and height."""
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise refuse("xy_numbers", lang) from None
    w, h = size
    if not (0 <= x < w and 0 <= y < h):  # x, y are not rounded before this check
        raise refuse("xy_outside", lang, x=f"{x:g}", y=f"{y:g}", w=w, h=h, w1=w - 1, h1=h - 1)
    return x / w, y / h


def temperature(value, lang: str = "en") -> float:
    try:
        t = float(value if value not in (None, "") else 1.0)
    except (TypeError, ValueError):
        raise refuse("temperature_number", lang, got=repr(str(value)[:20])) from None
    if not 0.05 <= t <= 20:
        raise refuse("temperature_range", lang, got=f"{t:g}")
    return t


def positions(text, lang: str = "en") -> list[int] | None:
    """"0, 1, 10" -> [0, 1, 10] (None when empty)."""
    if text is None or not str(text).strip():
        return None
    try:
        pos = [int(p) for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    except ValueError:
        raise refuse("positions", lang, got=repr(str(text)[:40])) from None
    if len(pos) > MAX_POSITIONS:
        raise refuse("too_many_positions", lang, n=MAX_POSITIONS)
    return pos


def api_guards(methods: list[str], L: int, H: int) -> list[tuple[str, str, str]]:
    """(component, name, what it expects) of every API input whose wrongly typed value gets a
    message naming it (``patches/gradio_inputs.guard``)."""
    return [("in_txt", "The caption", "text"), ("x_in", "x", "a number"), ("y_in", "y", "a number"),
            ("method", "The method", f"one of {', '.join(methods)}"), ("layer", "The layer", f"a number 0..{L - 1}"),
            ("heads", "Heads", f"'mean', 'max' or 0..{H - 1}"), ("boxes", "show_boxes", "true or false"),
            ("heads_word", "The word", "a word of the caption or its index"), ("steps_word", "The word", "a word of the caption or its index"),
            ("steps_layer", "The layer", f"0..{L - 1}"), ("steps_head", "The head", f"0..{H - 1}"),
            ("steps_dir", "The direction", "text_to_image or image_to_text"), ("pos_n", "n", "a number 2..128"),
            ("pos_dim", "The dimension", "a number 4..256"), ("pos_list", "The positions", "numbers separated by commas"),
            ("pos_row", "The patch row", "a number"), ("pos_col", "The patch column", "a number")]  # fmt: skip


__all__ = ["UserError", "api_guards", "caption", "check_size", "controls", "direction", "image", "pixel", "positions", "temperature", "whole",
           "work_image"]  # fmt: skip
