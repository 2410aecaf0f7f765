"""mmattn demo: see bidirectional text-image cross-attention on your own image and caption.

    python app.py                        # http://0.0.0.0:7860 (GRADIO_SERVER_NAME / _PORT to change)
    MMATTN_MODEL=path/to/ckpt python app.py
    MMATTN_MODEL=openai/clip-vit-base-patch16 python app.py   # real photos: the CLIP backend (README)

Tabs: Ground (each word's map over the image), Image -> text (click a region: which words
it attends to), Heads & layers (one word in every layer and head, both directions), Step by
step (Q, K, Q·Kᵀ, /√d, softmax, weighted sum of V, recomputed with the model's own weights),
Positions (sinusoidal encodings, 1-D and 2-D).

Public API (gradio_client; note the leading slash):
    /ground     (image, caption, method, layer, heads, show_boxes) -> annotated image, per-word table, match, notice, JSON
    /words_at   (image, caption, x, y, method, layer, heads)       -> word weights (label), JSON
    /heads      (image, caption, word)                              -> text->image grid, image->text grid, JSON
    /steps      (image, caption, word, layer, head, direction)      -> stage pictures, explanation (Markdown), per-head pictures, JSON
    /positions  (image, n, dim, positions, row, col)                -> PE, PE·PEᵀ, curves, dimensions, 2-D map, JSON

All tensor work happens in the ``mmattn`` package (``mmattn.explain`` for the step-by-step
and positional views); this file only validates inputs, resizes pictures and lays out the UI.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import html
import importlib.abc
import importlib.machinery
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network at start-up

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

Image.MAX_IMAGE_PIXELS = 40_000_000  # Pillow refuses (2x this) / warns before decoding decompression bombs


class _SkipGradioStubs(importlib.abc.MetaPathFinder):
    """Gradio 6 rewrites the ``.pyi`` type stubs of its ~80 component classes at every
    import (``gradio.component_meta.create_or_modify_pyi``: parse each class's source file,
    render a template, compare it with the ``.pyi`` its wheel already ships). That was
    1.0 s of this app's 5 s start-up on 2 cores (``import gradio``: 2.5 s -> 1.5 s), for
    files that only type checkers read. This finder loads ``gradio.component_meta`` as
    usual, then makes that one function a no-op before any component class is built.
    Nothing else changes; if gradio was imported already, or renames the function, it
    does nothing."""

    def find_spec(self, name, path=None, target=None):
        if name != "gradio.component_meta":
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_skip_stubs(module):
                exec_module(module)
                if callable(getattr(module, "create_or_modify_pyi", None)):
                    module.create_or_modify_pyi = lambda *args, **kwargs: None

            spec.loader.exec_module = exec_then_skip_stubs
        return spec


if "gradio" not in sys.modules:
    sys.meta_path.insert(0, _SkipGradioStubs())

import gradio as gr  # noqa: E402
from gradio import processing_utils  # noqa: E402

from mmattn import explain, viz  # noqa: E402
from mmattn.grounding import DEFAULT_LAYER, METHODS, Grounder, resolve_checkpoint  # noqa: E402
from mmattn.image import load_image  # noqa: E402
from mmattn.tokenizer import MAX_TOKENS  # noqa: E402

log = logging.getLogger("mmattn.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
MAX_PIXELS = 16_000_000  #: larger uploads are refused with a message (checked before decoding)
MAX_CAPTION_CHARS = 1000  #: longer captions are refused; up to this they are cut to MAX_TOKENS tokens with a notice
WORK_SIDE = 512  #: bigger images are downscaled to this before grounding (the model sees 128 px anyway)
BOX_HEIGHT = 400  #: height of the image boxes on the page
VIEW_HEIGHT = 448  #: pictures are sent at least this tall, so the browser never upscales them (click bug)
VIEW_MAX_WIDTH = 1344
THUMB = 132  #: height of the small maps in the grids
MASK_ALPHA = 0.6  #: opacity of a map at 1.0 on the shared scale (the strongest value of any word)
MASK_FLOOR = 0.05  #: values below this (on the shared scale) are not drawn
PNG_LEVEL = 1  #: zlib level of the mask PNGs: level 1 is twice as fast as gradio's default and barely larger
JPEG_QUALITY = 90  #: the picture under the maps is a JPEG (WebP, gradio's default, takes 30x longer to encode)
RELATION_SHOWN = 1.0  #: relation probe scores this far from 0 are explained in the notice (one-object captions stay near 0)

# ---- the model, once ------------------------------------------------------------------
# MMATTN_MODEL selects another checkpoint folder, MMATTN_PRECISION=bfloat16 the faster arithmetic
GROUNDER = Grounder.from_pretrained(precision=os.getenv("MMATTN_PRECISION", "float32"))
CFG = GROUNDER.model.config
L, H = GROUNDER.num_layers, GROUNDER.num_heads
LAYER0 = DEFAULT_LAYER % L
MODEL_SOURCE = f"{os.environ['MMATTN_MODEL']} (MMATTN_MODEL)" if os.environ.get("MMATTN_MODEL") else "assets/model (shipped)"
if GROUNDER.backend != "mmattn":  # e.g. MMATTN_MODEL=openai/clip-vit-base-patch16: "CLIP backend, zero-shot fusion"
    MODEL_SOURCE += f", {GROUNDER.backend}"
MODEL_INFO = (
    f"**Model** `{MODEL_SOURCE.replace('`', '')}`: "
    f"{L} fusion layers × {H} heads, width {CFG.dim} (head width {CFG.dim // H}), images resized to "
    f"{CFG.image_size} px with {CFG.patch_size} px patches, captions up to {MAX_TOKENS - 2} tokens."
)
HEAD_CHOICES = ["mean", "max", *map(str, range(H))]
LANGUAGES = "English or Chinese" if GROUNDER.backend == "mmattn" else "English"  # CLIP's tokenizer is English-only


# ---- gradio's output cache: atomic writes ----------------------------------------------
def _install_atomic_image_cache() -> None:
    """Gradio writes output images to a content-addressed path with a plain ``write_bytes``
    on every request, so two identical concurrent requests can rewrite a file while it is
    being served (truncated downloads, "Too much data for declared Content-Length"). Write
    to a temporary file and ``os.replace`` it into place, and skip existing files."""
    if getattr(processing_utils.save_pil_to_cache, "_mmattn_atomic", False):
        return

    def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        fmt = {"jpg": "jpeg"}.get(format.lower(), format.lower())
        if fmt in ("png", "jpeg") and not img.info:  # our own pictures (no metadata to keep): faster settings
            with io.BytesIO() as buf:
                img.save(buf, fmt, **({"compress_level": PNG_LEVEL} if fmt == "png" else {"quality": JPEG_QUALITY}))
                data = buf.getvalue()
        else:
            data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        if not (path.is_file() and path.stat().st_size == len(data)):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return str(path)

    save_pil_to_cache._mmattn_atomic = True  # type: ignore[attr-defined]
    processing_utils.save_pil_to_cache = save_pil_to_cache


_install_atomic_image_cache()


def _annotated_postprocess(self: gr.AnnotatedImage, value):
    """``gr.AnnotatedImage.postprocess`` for our values (a PIL image and float masks), in uint8.

    Gradio's own builds a float64 RGBA array per mask (about 8 MB for a 448-px picture, per
    word, per request), which costs time and leaves the allocator with fragmented memory
    under concurrent requests. Same files for the browser: the label's colour (red if none,
    which the page hue-rotates per label) with the mask as alpha."""
    from gradio.components.annotated_image import AnnotatedImageData, Annotation
    from gradio.data_classes import FileData

    if value is None:
        return None
    base, annotations = value
    base_path = processing_utils.save_pil_to_cache(base, cache_dir=self.GRADIO_CACHE, format=self.format)
    sections = []
    for mask, label in annotations:
        colour = (self.color_map or {}).get(label, "#ff0000").lstrip("#")
        rgba = np.empty((*mask.shape, 4), np.uint8)
        rgba[..., :3] = [int(colour[i : i + 2], 16) for i in (0, 2, 4)]
        rgba[..., 3] = np.clip(mask * 255, 0, 255).astype(np.uint8)
        path = processing_utils.save_pil_to_cache(Image.fromarray(rgba, "RGBA"), cache_dir=self.GRADIO_CACHE, format="png")
        sections.append(Annotation(image=FileData(path=os.path.abspath(path)), label=label))
    return AnnotatedImageData(image=FileData(path=os.path.abspath(base_path)), annotations=sections)


def _glibc():
    """glibc, to tune its allocator; None off glibc (macOS, musl) or with MMATTN_MALLOC_TUNING=0."""
    if os.environ.get("MMATTN_MALLOC_TUNING", "1") != "1":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


LIBC = _glibc()
if LIBC is not None:
    # Cap the per-thread malloc arenas at 2: with one arena per worker thread, freed request
    # buffers stay mapped in many half-empty arenas and resident memory creeps up under
    # concurrent users.
    LIBC.mallopt(-8, 2)  # M_ARENA_MAX


def _give_back_memory() -> None:
    """Return the previous requests' freed buffers (maps, masks, pictures: megabytes each) to
    the system, so that resident memory tracks what is in use rather than the worst burst."""
    if LIBC is not None:
        LIBC.malloc_trim(0)


# ---- inputs ----------------------------------------------------------------------------
def guard_uploads(component: gr.Image) -> gr.Image:
    """Make a ``gr.Image(type="pil")`` turn empty, unreadable, truncated and huge uploads into
    clear messages (a plain gr.Image fails with a generic error before the handler runs, and
    would decode a 12 KB, 100-megapixel PNG). Done on the instance: a gr.Image subclass
    would make gradio write an ``app.pyi`` stub next to this file."""
    original = component.preprocess

    def preprocess(payload):
        if payload is None:
            return None
        path = getattr(payload, "path", None)
        try:
            if path:
                if os.path.getsize(path) == 0:
                    raise gr.Error("The uploaded file is empty (0 bytes). Upload a PNG or JPEG image.", title="Empty file")
                with Image.open(path) as im:  # reads the header only
                    w, h = im.size
                _check_size(w, h)
            image = original(payload)
            if isinstance(image, Image.Image):
                _check_size(*image.size)
                image.load()  # decode now: a truncated file fails here, not later
            return image
        except gr.Error:
            raise
        except Image.DecompressionBombError as e:
            raise gr.Error(f"The image is far too large ({e}). Upload an image under {MAX_PIXELS // 1_000_000} megapixels.",
                           title="Image too large") from e  # fmt: skip
        except Exception as e:  # UnidentifiedImageError, OSError (truncated), ...
            raise gr.Error("Could not read the uploaded file as an image (it is not an image, or it is damaged or "
                           "truncated). Upload a PNG or JPEG file.", title="Not an image") from e  # fmt: skip

    component.preprocess = preprocess
    return component


def _check_size(w: int, h: int) -> None:
    if w <= 0 or h <= 0:
        raise gr.Error("The image has no pixels. Upload a PNG or JPEG image.", title="Empty image")
    if w * h > MAX_PIXELS:
        raise gr.Error(f"The image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
                       f"{MAX_PIXELS // 1_000_000} megapixels. Downscale it and upload it again "
                       f"(the model looks at {CFG.image_size} px anyway).", title="Image too large")  # fmt: skip


def _image(image) -> Image.Image:
    if image is None:
        raise gr.Error("No image: upload an image (PNG or JPEG) or click one of the examples first.", title="No image")
    if not isinstance(image, Image.Image):
        raise gr.Error("Could not read the image. Upload a PNG or JPEG file.", title="Not an image")
    _check_size(*image.size)
    try:
        return load_image(image)
    except (ValueError, TypeError, OSError) as e:
        raise gr.Error(f"Could not read the image ({e}). Upload a PNG or JPEG file.", title="Not an image") from e


def _caption(caption) -> str:
    if caption is None or not isinstance(caption, str) or not caption.strip():
        raise gr.Error("The caption is empty: type a few words that describe the image, e.g. 'a red circle left of "
                       "a blue square' or '红色的圆'.", title="Empty caption")  # fmt: skip
    if len(caption) > MAX_CAPTION_CHARS:
        raise gr.Error(f"The caption is {len(caption):,} characters long; the limit is {MAX_CAPTION_CHARS:,} (the "
                       f"model reads at most {MAX_TOKENS - 2} tokens). Type one short sentence.", title="Caption too long")  # fmt: skip
    if not any(ch.isalnum() for ch in caption):
        raise gr.Error("The caption has no words, only punctuation or symbols: type a few words that describe the image.",
                       title="No words")  # fmt: skip
    return caption


def _controls(method, layer, heads) -> dict:
    method = method or "attention"
    if method not in METHODS:
        raise gr.Error(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    layer = LAYER0 if layer is None or layer == "" else layer
    try:
        layer = int(layer)
    except (TypeError, ValueError):
        raise gr.Error(f"Layer must be a number 0..{L - 1} (got {layer!r}).") from None
    if not 0 <= layer < L:
        raise gr.Error(f"Layer {layer} does not exist: this model has {L} fusion layers (0..{L - 1}).")
    heads = "mean" if heads is None or heads == "" else heads
    if isinstance(heads, str) and heads.strip().isdigit():
        heads = int(heads)
    if not (heads in ("mean", "max") or (isinstance(heads, int) and 0 <= heads < H)):
        raise gr.Error(f"Heads must be 'mean', 'max' or a head number 0..{H - 1} (got {heads!r}).")
    return {"method": method, "layer": layer, "heads": heads}


def _friendly(fn):
    """Turn the library's ValueError/TypeError (written for users) into gr.Error messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _give_back_memory()
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise gr.Error(str(e)) from e

    return wrapper


def _quiet(fn, n_outputs: int):
    """For UI refreshes chained after another event: on any problem leave outputs as they are."""

    def wrapper(*args):
        try:
            return fn(*args)
        except Exception:  # the user already saw the first event's error
            return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))

    return wrapper


# ---- shared work ---------------------------------------------------------------------------
def _work(src: Image.Image) -> Image.Image:
    """What we ground: the image itself, or a 512-px version of a big one."""
    if max(src.size) <= WORK_SIDE:
        return src
    s = WORK_SIDE / max(src.size)
    return src.resize((max(1, round(src.width * s)), max(1, round(src.height * s))), Image.LANCZOS)


def _view(work: Image.Image) -> Image.Image:
    """The picture shown on the page: at least VIEW_HEIGHT tall, so the browser only ever
    shrinks it (its click coordinates are wrong on upscaled pictures)."""
    return viz.resize_to_height(work, VIEW_HEIGHT, VIEW_MAX_WIDTH)


def _scale_box(box, frm: tuple[int, int], to: tuple[int, int]):
    if box is None:
        return None
    sx, sy = to[0] / frm[0], to[1] / frm[1]
    return [int(round(box[0] * sx)), int(round(box[1] * sy)), int(round(box[2] * sx)), int(round(box[3] * sy))]


def _labels(words: list[str]) -> list[str]:
    return [f"{i}:{w}" for i, w in enumerate(words)]


def _notice(r) -> str:
    parts = []
    if r.notice:
        parts.append(r.notice[0].upper() + r.notice[1:] + ".")
    if abs(r.relation_score) >= RELATION_SHOWN:  # the relation probes' dot product, (object - subject) . direction
        verdict = "agree with" if r.relation_score > 0 else "contradict"
        parts.append(f"Relation check: where the words' maps put the two objects, they {verdict} the relation word "
                     f"((object − subject) · direction adds {r.relation_score:+.1f} to the match logit).")
    if r.unknown_words:
        parts.append("Not in the model's vocabulary (never marked grounded): " + ", ".join(dict.fromkeys(r.unknown_words)) + ".")
    return " ".join(parts) or "OK: every word is in the model's vocabulary."


# ---- Ground ------------------------------------------------------------------------------
@_friendly
def ground(image, caption, method="attention", layer=LAYER0, heads="mean", show_boxes=True):
    """Ground every word of the caption in the image: per-word maps (one colour per word),
    per-word table, match score, notice, JSON. Boxes are in the input image's pixels."""
    src, caption, kw = _image(image), _caption(caption), _controls(method, layer, heads)
    work = _work(src)
    r = GROUNDER.ground(work, caption, **kw)
    view = _view(work)
    maps = explain.maps_at_size(r.patch_maps, r.grid, (view.height, view.width))
    annotations = []
    for i, label in enumerate(_labels(r.words)):
        m = np.clip(maps[i], 0.0, 1.0)
        m[m < MASK_FLOOR] = 0.0
        m = np.round(m * MASK_ALPHA * 32) / 32  # the image stays visible; 32 levels halve the PNG encoding time
        box = _scale_box(r.boxes[i], work.size, view.size)
        if show_boxes and box is not None:
            outline = Image.new("L", view.size, 0)
            ImageDraw.Draw(outline).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=255, width=3)
            m = np.maximum(m, np.asarray(outline, np.float32) / 255)
        annotations.append((m.astype(np.float32), label))
    data = r.to_json()
    data["boxes"] = [_scale_box(b, work.size, src.size) for b in r.boxes]
    data["image_size"] = list(src.size)
    data["model_input_size"] = [r.grid[1] * CFG.patch_size, r.grid[0] * CFG.patch_size]
    table = [[i, w, "yes" if g else "no", round(s, 3), round(p, 3), "" if b is None else f"{tuple(b)}"]
             for i, (w, g, s, p, b) in enumerate(zip(r.words, r.grounded, r.grounded_scores, data["peaks"], data["boxes"], strict=False))]  # fmt: skip
    match = {"caption matches the image": r.match_score, "caption does not match": 1 - r.match_score}
    return (view, annotations), table, match, _notice(r), data


def ground_example(image, caption):
    return ground(image, caption)


# ---- Image -> text -----------------------------------------------------------------------
def _words_at(src: Image.Image, caption: str, fx: float, fy: float, kw: dict):
    """Words that the patch at fraction (fx, fy) of the image attends to."""
    work = _work(src)
    r = GROUNDER.ground(work, caption, **kw)
    x, y = min(fx * work.width, work.width - 1e-3), min(fy * work.height, work.height - 1e-3)
    pairs = r.words_at(x, y)
    p = r.patch_at(x, y)
    gw = r.grid[1]
    other = max(0.0, 1.0 - sum(v for _, v in pairs))
    label = {lab: v for lab, (_, v) in zip(_labels(r.words), pairs, strict=False)}
    label["(other tokens: [CLS], [SEP], punctuation)"] = other
    data = {"x": round(fx * src.width, 2), "y": round(fy * src.height, 2), "patch": [p // gw, p % gw], "grid": list(r.grid),
            "words": [{"index": i, "word": w, "weight": round(v, 6)} for i, (w, v) in enumerate(pairs)],
            "other_tokens": round(other, 6), "method": r.method, "layer": r.layer, "heads": r.heads}  # fmt: skip
    return label, data, r.grid, (p // gw, p % gw), work


@_friendly
def words_at(image, caption, x, y, method="attention", layer=LAYER0, heads="mean"):
    """Image -> text at pixel (x, y) of the input image: the weight the patch there gives to each word."""
    src, caption, kw = _image(image), _caption(caption), _controls(method, layer, heads)
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise gr.Error("x and y must be numbers: pixel coordinates in the input image.") from None
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < src.width and 0 <= y < src.height):
        raise gr.Error(f"Pixel ({x:g}, {y:g}) is outside the {src.width}×{src.height} image: x must be 0..{src.width - 1}, "
                       f"y 0..{src.height - 1}.")  # fmt: skip
    label, data, *_ = _words_at(src, caption, x / src.width, y / src.height, kw)
    return label, data


@_friendly
def click_words(image, caption, method, layer, heads, evt: gr.SelectData):
    """A click on the picture in the Image -> text tab (coordinates in the shown picture)."""
    src, caption, kw = _image(image), _caption(caption), _controls(method, layer, heads)
    if evt is None or evt.index is None or len(evt.index) != 2:
        raise gr.Error("Click a point on the picture.")
    view = _view(_work(src))
    fx = (float(evt.index[0]) + 0.5) / view.width
    fy = (float(evt.index[1]) + 0.5) / view.height
    label, data, grid, patch, work = _words_at(src, caption, min(fx, 1.0), min(fy, 1.0), kw)
    return label, data, viz.draw_patch_grid(view, grid, patch)


# ---- Heads & layers ----------------------------------------------------------------------------
@_friendly
def heads_view(image, caption, word=None):
    """One word in every (layer, head): text -> image (where the word looks) and
    image -> text (the weight every patch gives to the word). One colour scale per grid."""
    src, caption = _image(image), _caption(caption)
    work = _work(src)
    lh = explain.layer_head_maps(GROUNDER, work, caption, word)
    thumb = viz.resize_to_height(work, THUMB)

    def grid(maps):
        vmax = float(maps.max()) or 1.0
        cells = [[viz.grid_map_overlay(thumb, m, vmax=vmax) for m in [*maps[layer], maps[layer].mean(0)]] for layer in range(len(maps))]
        cols = [f"head {h}" for h in range(maps.shape[1])] + ["mean"]
        return viz.labelled_grid(cells, [f"layer {layer}" for layer in range(len(maps))], cols), vmax

    t2i, vt = grid(lh.text_to_image)
    i2t, vi = grid(lh.image_to_text)
    info = {"word": lh.word, "word_index": lh.word_index, "words": lh.words, "grid": list(lh.grid),
            "text_to_image_max": round(vt, 6), "image_to_text_max": round(vi, 6),
            "text_to_image": np.round(lh.text_to_image, 5).tolist(), "image_to_text": np.round(lh.image_to_text, 5).tolist()}  # fmt: skip
    return t2i, i2t, info


# ---- Step by step -----------------------------------------------------------------------------------
def _shape(a) -> str:
    return "×".join(map(str, a.shape))


def _md(text: str) -> str:
    """User text made inert for gr.Markdown: HTML escaped, Markdown punctuation backslashed."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~" else ch for ch in html.escape(text, quote=True))


@_friendly
def steps_view(image, caption, word=None, layer=LAYER0, head=0, direction="text_to_image"):
    """One head's cross-attention, stage by stage, recomputed from the layer's inputs."""
    src, caption = _image(image), _caption(caption)
    try:
        layer, head = int(layer), int(head)
    except (TypeError, ValueError):
        raise gr.Error(f"Layer must be 0..{L - 1} and head 0..{H - 1}.") from None
    if direction not in explain.DIRECTIONS:
        raise gr.Error(f"Direction must be one of {', '.join(explain.DIRECTIONS)}.")
    work = _work(src)
    s = explain.attention_steps(GROUNDER, work, caption, layer, head, direction)
    w = explain.resolve_word(s.words, word)
    word_name = s.words[w]
    t2i = direction == "text_to_image"
    qn, kn = ("T tokens", "P patches") if t2i else ("P patches", "T tokens")
    lim = float(np.abs(s.scores).max())
    thumb_h = 180
    Lq, Lk, hd, T = s.q.shape[0], s.k.shape[0], s.head_dim, len(s.tokens)
    rows = [  # (picture, short caption, shapes, meaning)
        (viz.matrix_picture(s.q, signed=True), f"Q {_shape(s.q)}", f"Q = x·W_q (head {head})", f"{_shape(s.q)}",
         f"one row per query ({qn}): what it looks for"),
        (viz.matrix_picture(s.k.T, signed=True), f"Kᵀ {_shape(s.k.T)}", "K = context·W_k, shown as Kᵀ", f"{_shape(s.k)} → Kᵀ {_shape(s.k.T)}",
         f"one column per key ({kn}): the title on each book's spine"),
        (viz.matrix_picture(s.scores, signed=True, limit=lim), f"S = Q·Kᵀ {_shape(s.scores)}", "1. match: S = Q·Kᵀ",
         f"{_shape(s.q)} · {hd}×{Lk} → {_shape(s.scores)}", "every query–key dot product at once (blue < 0 < red)"),
        (viz.matrix_picture(s.scaled, signed=True, limit=lim), f"S/√{hd} {_shape(s.scaled)}", f"2. scale: S / √{hd} = S / {np.sqrt(hd):.2f}",
         f"{_shape(s.scaled)}", "same colours as S, so it looks fainter: keeps softmax out of saturation"),
        (viz.matrix_picture(s.weights), f"softmax {_shape(s.weights)}", "2. softmax, per row", f"{_shape(s.weights)}",
         f"each row sums to 1 (black 0 → yellow = the largest weight); max abs difference from the model's own weights: {s.max_weight_error:.1e}"),
    ]  # fmt: skip
    if s.reads_values:
        rows += [
        (viz.matrix_picture(s.v, signed=True), f"V {_shape(s.v)}", "V = context·W_v", f"{_shape(s.v)}", "the content of each book"),
        (viz.matrix_picture(s.head_output, signed=True), f"Z = A·V {_shape(s.head_output)}", "3. read: Z = softmax(S/√d)·V",
         f"{_shape(s.weights)} · {_shape(s.v)} → {_shape(s.head_output)}", "each row is a weighted sum of the rows of V"),
        (viz.matrix_picture(s.concat, signed=True, grid_every=(0, hd)), f"concat {_shape(s.concat)}", f"concatenate the {s.num_heads} heads",
         f"{s.num_heads} × ({Lq}×{hd}) → {_shape(s.concat)}", "each head's Z side by side (dark lines separate heads)"),
        (viz.matrix_picture(s.output, signed=True), f"out_proj {_shape(s.output)}", "mix: out_proj", f"{_shape(s.concat)} · {s.dim}×{s.dim} → {_shape(s.output)}",
         f"one linear layer combines the heads' evidence; max abs difference from the model's output: {s.max_output_error:.1e}"),
        ]  # fmt: skip
    pics = [(pic, cap) for pic, cap, *_ in rows]
    table = "| stage | shapes | what it is |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for _, _, a, b, c in rows)
    # the chosen word through the stages, on the image
    toks = s.word_tokens[w]
    for name, title in (("scores", "Q·Kᵀ"), ("scaled", "÷√d"), ("weights", "softmax")):
        a = getattr(s, name)
        m = (a[toks].mean(0) if t2i else (a[:, toks].sum(1) if name == "weights" else a[:, toks].mean(1))).reshape(s.grid)
        signed = name != "weights"
        pic = viz.grid_map_overlay(work, m, signed=signed, limit=lim if signed else None, height=thumb_h)
        pics.append((pic, f"{word_name}: {title}"))
    how = "its row of S, S/√d and the softmax" if t2i else "its column: every patch's score for it, and the weight every patch gives it"
    md = (
        f"**Layer {layer}, head {head}, {'text → image' if t2i else 'image → text'}**: {Lq} queries, {Lk} keys, head width "
        f"d = {hd} (= {s.dim} / {s.num_heads} heads); the caption has T = {T} tokens with [CLS] and [SEP], the image "
        f"P = {s.grid[0]}×{s.grid[1]} = {s.grid[0] * s.grid[1]} patches. The last three pictures follow the word "
        f"**{_md(word_name)}** through the stages on the patch grid ({how}).\n\n{table}"
    )
    if not s.reads_values:
        md += ("\n\n*No stage 3 here:* in the last fusion layer nothing reads the image stream any more (the match "
               "and grounded heads read the text), so this direction computes only where each patch looks: no V, no "
               "output. Pick an earlier layer to see the weighted sum with V.")
    # one head against several (always text -> image: where the word looks)
    hm = explain.head_maps(GROUNDER, work, caption, w, layer)
    vmax = float(max(hm.heads.max(), hm.mean.max())) or 1.0
    per_head = [(viz.grid_map_overlay(work, m, vmax=vmax, height=thumb_h), f"head {h}") for h, m in enumerate(hm.heads)]
    md += (
        f"\n\nThe heads below (text → image, layer {layer}): peak weight and entropy of each head's map "
        f"(a flat map has {np.log2(hm.heads[0].size):.2f} bits): "
        + ", ".join(f"head {h}: {p:.3f} / {e:.2f} bits" for h, (p, e) in enumerate(zip(hm.peaks, hm.entropy, strict=False)))
        + "."
    )
    per_head.append((viz.grid_map_overlay(work, hm.mean, vmax=vmax, height=thumb_h), f"mean of {len(hm.heads)} heads"))
    summary = s.summary()
    summary.update(word=word_name, word_index=w, head_peaks=hm.peaks, head_entropy_bits=hm.entropy)
    return pics, md, per_head, summary


# ---- Positions --------------------------------------------------------------------------------
def _parse_positions(text, n: int) -> list[int] | None:
    if text is None or not str(text).strip():
        return None
    try:
        pos = [int(p) for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    except ValueError:
        raise gr.Error(f"Positions must be whole numbers separated by commas, e.g. '0, 1, 10' (got {str(text)[:40]!r}).") from None
    if len(pos) > 8:
        raise gr.Error("Pick at most 8 positions to draw.")
    return pos


@_friendly
def positions_view(image=None, n=MAX_TOKENS, dim=None, positions="", row=None, col=None):
    """Sinusoidal positional encodings: PE matrix, PE·PEᵀ, a few positions as curves, a few
    dimensions across positions, and the 2-D encoding of the image's patch grid."""
    import pandas as pd

    try:
        n = int(n)
        dim = int(dim) if dim not in (None, "") else min(CFG.dim, 256)
    except (TypeError, ValueError):
        raise gr.Error("The number of positions and the dimension must be whole numbers.") from None
    p = explain.positional_1d(n, dim, _parse_positions(positions, n))
    if image is not None:
        work = _work(_image(image))
        grid = explain.model_grid(GROUNDER, work)
    else:
        work, grid = None, explain.model_grid(GROUNDER)
    row = grid[0] // 2 if row in (None, "") else int(row)
    col = grid[1] // 2 if col in (None, "") else int(col)
    g = explain.grid_similarity(grid, row, col, dim=dim if dim % 4 == 0 else dim + 2, grounder=GROUNDER)
    curves = pd.DataFrame([{"dimension": d, "value": float(v), "position": f"pos {pos}"}
                           for pos, vec in zip(p.positions, p.curves, strict=False) for d, v in enumerate(vec)])  # fmt: skip
    dims = sorted({0, 1, dim // 2, dim - 2, dim - 1})
    lines = pd.DataFrame([{"position": i, "value": float(p.pe[i, d]), "dimension": f"dim {d} ({'sin' if d % 2 == 0 else 'cos'})"}
                          for d in dims for i in range(n)])  # fmt: skip
    base = work if work is not None else Image.new("RGB", (grid[1] * CFG.patch_size, grid[0] * CFG.patch_size), (128, 128, 128))
    sim_pic = viz.draw_patch_grid(viz.grid_map_overlay(base, g.similarity, signed=True, limit=1.0, height=320), grid, (row, col))
    info = {"n": n, "dim": dim, "positions": p.positions, "diagonal_spread": p.diagonal_spread, "grid": list(grid),
            "patch": [row, col], "grid_encoding": g.source, "grid_encoding_dim": g.dim,
            "grid_similarity": np.round(g.similarity, 4).tolist()}  # fmt: skip
    return (viz.matrix_picture(p.pe, signed=True, limit=1.0), viz.matrix_picture(p.similarity, signed=True),
            curves, lines, sim_pic, info)  # fmt: skip


# ---- after a grounding: refresh the other tabs (UI only) ------------------------------------
def refresh(image, caption):
    src, caption = _image(image), _caption(caption)
    work = _work(src)
    view = _view(work)
    r = GROUNDER.ground(work, caption)
    grid = r.grid
    labels = _labels(r.words)
    # start the word menus on the word most confidently located in the image
    first = labels[int(np.argmax(r.grounded_scores))] if labels else None
    return (viz.draw_patch_grid(view, grid), gr.Dropdown(choices=labels, value=first), gr.Dropdown(choices=labels, value=first),
            gr.Slider(maximum=grid[0] - 1, value=grid[0] // 2), gr.Slider(maximum=grid[1] - 1, value=grid[1] // 2), None, None)  # fmt: skip


# ---- examples ----------------------------------------------------------------------------------
def _model_fingerprint() -> str:
    """Changes whenever the checkpoint files change (path, sizes, modification times)."""
    folder = Path(resolve_checkpoint(None))
    parts = [str(folder.resolve())]
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        f = folder / name
        if f.is_file():
            st = f.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def load_examples() -> list[list[str]]:
    """[[path, caption], ...] from assets/examples (generated on first use if missing)."""
    import json

    captions = EXAMPLES_DIR / "captions.json"
    if not captions.is_file():
        try:
            import sys

            sys.path.insert(0, str(ROOT / "assets"))
            from make_examples import make_examples  # noqa: PLC0415

            make_examples(EXAMPLES_DIR)
        except Exception as e:  # the scene generator may be missing: run without examples
            log.warning("no examples (%s: %s)", e.__class__.__name__, e)
            return []
    try:
        table = json.loads(captions.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("unreadable %s: %s", captions, e)
        return []
    return [[str(EXAMPLES_DIR / f), c] for f, c in table.items() if (EXAMPLES_DIR / f).is_file()]


# ---- the page -------------------------------------------------------------------------------------
CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#title h1 {margin-bottom: 0.2em;}
#model_info {font-size: 0.9em; opacity: 0.85;}
.explain {font-size: 0.92em;}
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="purple",
                       font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "sans-serif"],
                       font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])  # fmt: skip
#: keyword arguments for demo.launch() (tests use them too, so the page looks the same)
LAUNCH_KWARGS = {
    "max_file_size": "10mb",
    "show_error": False,
    "theme": THEME,
    "css": CSS,
    "footer_links": ["api", "gradio"],
}

with gr.Blocks(title="mmattn: text ↔ image cross-attention") as demo:
    gr.Markdown("# mmattn: where does each word look?\nBidirectional text–image cross-attention: **text queries image** "
                "(each word gets a map over the image's patches) and **image queries text** (each patch gets a "
                f"distribution over the words). {LANGUAGES} captions.", elem_id="title")  # fmt: skip
    gr.Markdown(MODEL_INFO, elem_id="model_info")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            in_img = guard_uploads(gr.Image(type="pil", label="Image", elem_id="in_img", height=300, sources=["upload", "clipboard"]))
            in_txt = gr.Textbox(label=f"Caption ({LANGUAGES})", elem_id="in_txt", lines=2, max_lines=4,
                                placeholder="a red circle left of a blue square")  # fmt: skip
            with gr.Accordion("Settings", open=True):
                method = gr.Radio(list(METHODS), value="attention", label="Method",
                                  info="attention: one layer's weights · rollout: all layers combined · gradcam: weights × gradient of the match score")  # fmt: skip
                layer = gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label="Fusion layer")
                heads = gr.Radio(HEAD_CHOICES, value="mean", label="Heads", info="mean / max over heads, or one head")
                boxes = gr.Checkbox(value=True, label="Show boxes of grounded words")
            btn = gr.Button("Ground", variant="primary", elem_id="submit")
            examples_box = gr.Column()
        with gr.Column(scale=7):
            with gr.Tabs():
                with gr.Tab("Ground", id="ground"):
                    gr.Markdown("Each word's map on **one scale** shared by all words: a word that looks everywhere stays faint. "
                                "Hover a word in the legend to see only its map.", elem_classes="explain")  # fmt: skip
                    ann = gr.AnnotatedImage(label="Where each word looks", elem_id="out_ann", height=BOX_HEIGHT, format="jpeg")
                    ann.postprocess = functools.partial(_annotated_postprocess, ann)  # uint8 masks, see above
                    with gr.Row():
                        match = gr.Label(label="Match", elem_id="match", num_top_classes=2)
                        notice = gr.Textbox(label="Notice", elem_id="notice", interactive=False, lines=2)
                    table = gr.Dataframe(headers=["#", "word", "grounded", "p(grounded)", "peak", "box (x0, y0, x1, y1)"],
                                         datatype=["number", "str", "str", "number", "number", "str"], interactive=False,
                                         label="Per word", elem_id="table", wrap=True)  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        data = gr.JSON(label="Result", elem_id="data")
                with gr.Tab("Image → text", id="i2t"):
                    gr.Markdown("**Click a region**: the patch there queries the caption; the bars are the weights it gives "
                                "to each word (the rest goes to [CLS], [SEP] and punctuation). Run *Ground* first.",
                                elem_classes="explain")  # fmt: skip
                    with gr.Row(equal_height=False):
                        click_img = gr.Image(type="pil", label="Click a region", elem_id="click_img", interactive=False,
                                             height=BOX_HEIGHT, buttons=[], scale=3)  # fmt: skip
                        with gr.Column(scale=2, min_width=220):
                            click_words_out = gr.Label(
                                label="Words this patch attends to",
                                elem_id="click_words",
                                num_top_classes=12,
                                show_heading=False,
                            )
                            with gr.Row():
                                x_in = gr.Number(label="x (input image pixels)", value=0, precision=1, minimum=0)
                                y_in = gr.Number(label="y", value=0, precision=1, minimum=0)
                            xy_btn = gr.Button("Words at (x, y)", elem_id="xy_btn")
                    with gr.Accordion("JSON", open=False):
                        click_data = gr.JSON(label="Patch", elem_id="click_data")
                with gr.Tab("Heads & layers", id="heads"):
                    gr.Markdown("One word in every fusion layer (rows) and head (columns), both directions. Heads specialise; "
                                "the mean combines them. One colour scale per grid (brightest = the largest value in it).",
                                elem_classes="explain")  # fmt: skip
                    with gr.Row():
                        heads_word = gr.Dropdown(choices=[], label="Word", allow_custom_value=True, elem_id="heads_word")
                        heads_btn = gr.Button("Show", elem_id="heads_btn")
                    gr.Markdown("**Text → image**: where the word looks (its attention row over the patches).")
                    heads_t2i = gr.Image(label="Text → image", show_label=False, type="pil", interactive=False, buttons=["fullscreen"],
                                         elem_id="heads_t2i")  # fmt: skip
                    gr.Markdown("**Image → text**: the weight every patch gives to the word (each patch's weights over "
                                "all tokens sum to 1).")  # fmt: skip
                    heads_i2t = gr.Image(label="Image → text", show_label=False, type="pil", interactive=False, buttons=["fullscreen"],
                                         elem_id="heads_i2t")  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        heads_data = gr.JSON(label="Maps")
                with gr.Tab("Step by step", id="steps"):
                    gr.Markdown("Scaled dot-product attention of **one head**, recomputed with the model's own weights from the "
                                "layer's inputs: **1. match** (S = Q·Kᵀ), **2. normalise** (÷√d, softmax per row), **3. read** "
                                "(weighted sum of V); then the heads are concatenated and mixed by out_proj. Text → image: Q = "
                                "words, K/V = patches; image → text: the other way round.", elem_classes="explain")  # fmt: skip
                    with gr.Row():
                        steps_word = gr.Dropdown(choices=[], label="Word", allow_custom_value=True, elem_id="steps_word")
                        steps_layer = gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label="Layer")
                        steps_head = gr.Radio([(str(h), h) for h in range(H)], value=0, label="Head")
                        steps_dir = gr.Radio([("text → image", "text_to_image"), ("image → text", "image_to_text")],
                                             value="text_to_image", label="Direction")  # fmt: skip
                    steps_btn = gr.Button("Show", elem_id="steps_btn")
                    steps_gal = gr.Gallery(label="Stages", columns=4, height="auto", object_fit="contain", elem_id="steps_gal")
                    steps_md = gr.Markdown(elem_id="steps_md", elem_classes="explain")
                    gr.Markdown("**One head against several**: the word's map in every head of the layer, and their mean "
                                "(one shared colour scale).", elem_classes="explain")  # fmt: skip
                    heads_gal = gr.Gallery(label="Heads", columns=H + 1, height=260, object_fit="contain", elem_id="heads_gal")
                    with gr.Accordion("JSON", open=False):
                        steps_data = gr.JSON(label="Shapes and checks")
                with gr.Tab("Positions", id="positions"):
                    gr.Markdown("Attention alone ignores order and place. Sinusoids PE(pos, 2i) = sin(pos/10000^(2i/d)), "
                                "PE(pos, 2i+1) = cos(…) give each position a unique vector in [-1, 1]; PE·PEᵀ depends only "
                                "on |i − j| (constant diagonals). Images use 2-D: half the channels encode the row, half "
                                "the column.", elem_classes="explain")  # fmt: skip
                    with gr.Row():
                        pos_n = gr.Slider(2, 128, value=MAX_TOKENS, step=1, label="positions n")
                        pos_dim = gr.Slider(4, 256, value=min(CFG.dim, 256), step=4, label="dimension d")
                        pos_list = gr.Textbox(value="", label="positions to draw", placeholder="e.g. 0, 1, 10 (empty: a few)")
                    with gr.Row():
                        pos_row = gr.Slider(0, 63, value=0, step=1, label="patch row")
                        pos_col = gr.Slider(0, 63, value=0, step=1, label="patch column")
                        pos_btn = gr.Button("Show", elem_id="pos_btn")
                    with gr.Row():
                        pe_img = gr.Image(label="PE matrix (rows: positions, columns: dimensions)", type="pil", interactive=False)
                        sim_img = gr.Image(label="PE·PEᵀ (constant diagonals)", type="pil", interactive=False)
                    with gr.Row():
                        curves = gr.LinePlot(x="dimension", y="value", color="position", label="A few positions' vectors", height=260)
                        dims_plot = gr.LinePlot(x="position", y="value", color="dimension",
                                                label="A few dimensions across positions: low ones flicker, high ones drift", height=260)  # fmt: skip
                    grid_img = gr.Image(label="2-D encoding: cosine similarity of every patch to the outlined one", type="pil",
                                        interactive=False, height=BOX_HEIGHT)  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        pos_data = gr.JSON(label="Positions")

    ground_in = [in_img, in_txt, method, layer, heads, boxes]
    ground_out = [ann, table, match, notice, data]
    with examples_box:
        EXAMPLES = load_examples()
        if EXAMPLES:
            # one cache folder per model, so a retrained model never shows stale cached results
            os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(Path(".gradio") / "cached_examples" / _model_fingerprint()))
            gr.Examples(EXAMPLES, [in_img, in_txt], ground_out, fn=ground_example, cache_examples=True, cache_mode="lazy",
                        label="Examples (shown with the default settings)", examples_per_page=6, elem_id="examples")  # fmt: skip

    btn.click(ground, ground_in, ground_out, api_name="ground", concurrency_id="model")
    in_txt.submit(ground, ground_in, ground_out, api_visibility="private", concurrency_id="model")

    # public endpoints for the other views
    xy_btn.click(words_at, [in_img, in_txt, x_in, y_in, method, layer, heads], [click_words_out, click_data],
                 api_name="words_at", concurrency_id="model")  # fmt: skip
    heads_in, heads_out = [in_img, in_txt, heads_word], [heads_t2i, heads_i2t, heads_data]
    heads_btn.click(heads_view, heads_in, heads_out, api_name="heads", concurrency_id="model")
    steps_in = [in_img, in_txt, steps_word, steps_layer, steps_head, steps_dir]
    steps_out = [steps_gal, steps_md, heads_gal, steps_data]
    steps_btn.click(steps_view, steps_in, steps_out, api_name="steps", concurrency_id="model")
    pos_in = [in_img, pos_n, pos_dim, pos_list, pos_row, pos_col]
    pos_out = [pe_img, sim_img, curves, dims_plot, grid_img, pos_data]
    pos_btn.click(positions_view, pos_in, pos_out, api_name="positions", concurrency_id="model")

    # UI only: clicks, and keeping the other tabs in step with the current input
    click_img.select(click_words, [in_img, in_txt, method, layer, heads], [click_words_out, click_data, click_img],
                     api_visibility="private", concurrency_id="model")  # fmt: skip
    (
        ann.change(
            _quiet(refresh, 7),
            [in_img, in_txt],
            [click_img, heads_word, steps_word, pos_row, pos_col, click_words_out, click_data],
            api_visibility="private",
        )  # fmt: skip
        .then(_quiet(heads_view, 3), heads_in, heads_out, api_visibility="private", concurrency_id="model")
        .then(_quiet(steps_view, 4), steps_in, steps_out, api_visibility="private", concurrency_id="model")
        .then(_quiet(positions_view, 6), pos_in, pos_out, api_visibility="private", concurrency_id="model")
    )
    heads_word.input(heads_view, heads_in, heads_out, api_visibility="private", concurrency_id="model")
    for c in (steps_word, steps_layer, steps_head, steps_dir):
        c.input(steps_view, steps_in, steps_out, api_visibility="private", concurrency_id="model")
    for c in (pos_n, pos_dim, pos_row, pos_col):
        c.release(positions_view, pos_in, pos_out, api_visibility="private", concurrency_id="model")
    pos_list.submit(positions_view, pos_in, pos_out, api_visibility="private", concurrency_id="model")
    demo.load(_quiet(positions_view, 6), pos_in, pos_out, api_visibility="private")

demo.queue(max_size=64, default_concurrency_limit=2)

if __name__ == "__main__":
    demo.launch(server_name=os.getenv("GRADIO_SERVER_NAME", "0.0.0.0"), **LAUNCH_KWARGS)
