"""mmattn demo: see bidirectional text-image cross-attention on your own image and caption.

    python app.py                        # http://0.0.0.0:7860 (GRADIO_SERVER_NAME / _PORT to change)
    MMATTN_MODEL=path/to/ckpt python app.py

Tabs: Ground (each word's map over the image), Image -> text (click a region: which words
it attends to), Heads & layers, Step by step (Q, Kᵀ, Q·Kᵀ, ÷√d, softmax, ·V, heads,
out_proj, recomputed with the model's own weights, as interactive figures), Positions (and
the positions-off experiment). In English or Chinese (mmattn/teach/text_en.py, text_zh.py).

One question, one forward pass: a Ground click traces the model once
(``mmattn.tracecache.TraceCache``); every tab, click, word, layer, head and direction is then
a reading of that trace (``mmattn.views``). Grad-CAM adds one backward pass.

Public API (gradio_client; note the leading slash; every endpoint ends with ``model``, the
label of a model in the page's picker, default the one served at start-up):
    /ground     (image, caption, method, layer, heads, show_boxes, model) -> picture, per-word table, match, notes, JSON
    /words_at   (image, caption, x, y, method, layer, heads, model)       -> word weights (label), JSON
    /heads      (image, caption, word, model)                              -> text->image grid, image->text grid, JSON
    /steps      (image, caption, word, layer, head, direction, model)      -> stage pictures, explanation, per-head pictures, JSON
    /positions  (image, n, dim, positions, row, col, model)                -> PE figure, PE·PEᵀ figure, dimensions, 2-D map, JSON

This file holds the layout and the wiring: inputs are checked here, pictures and tables come
from ``mmattn.views``, and workarounds of gradio and glibc live in ``patches/``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network at start-up

from patches import gradio_stubs, malloc  # noqa: E402

gradio_stubs.install()  # before gradio is imported
malloc.install()

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from mmattn.api.grounder import BACKWARD_METHODS, DEFAULT_MODEL, Grounder  # noqa: E402
from mmattn.api.image import load_image  # noqa: E402
from mmattn.backends import catalog  # noqa: E402
from mmattn.backends.catalog import ModelChoice  # noqa: E402
from mmattn.backends.shapes.vocabulary import model_world  # noqa: E402
from mmattn.demo.tracecache import TraceCache, image_digest  # noqa: E402
from mmattn.io import files  # noqa: E402
from mmattn.io.checkpoint import CheckpointError  # noqa: E402
from mmattn.models.tokenizer import MAX_TOKENS  # noqa: E402
from mmattn.teach import figures, recompute, text, views  # noqa: E402, F401 -- figures: plotly imported at start-up, not on the first click
from patches import gradio_cache, gradio_inputs, gradio_uploads  # noqa: E402

gradio_cache.install()
Image.MAX_IMAGE_PIXELS = 40_000_000  # Pillow refuses (2x this) / warns before decoding decompression bombs
log = logging.getLogger("mmattn.app")
T = gr.I18n(**text.translations())  #: the page's words, English and Chinese (mmattn/teach/text_en.py, text_zh.py)

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
MAX_PIXELS = 16_000_000  #: larger uploads are refused with a message (checked before decoding)
MAX_ASPECT = 16  #: images whose sides differ more than this are refused (the model would see a strip of patches)
MAX_CAPTION_CHARS = 1000  #: longer captions are refused; up to this they are cut to MAX_TOKENS tokens with a notice
WORK_SIDE = 512  #: bigger images are downscaled to this before grounding (the model sees 128 px anyway)
BOX_HEIGHT = 400  #: height of the image boxes on the page
CACHE_SIZE = 32  #: traces kept (one per image content, caption and Grad-CAM or not)

# ---- the models -------------------------------------------------------------------------
@dataclass
class Model:
    """A loaded model with what the page says about it, and its trace cache."""

    choice: ModelChoice
    grounder: Grounder
    cache: TraceCache

    @property
    def L(self) -> int:
        return self.grounder.num_layers

    @property
    def H(self) -> int:
        return self.grounder.num_heads

    @property
    def methods(self) -> list[str]:
        return list(self.grounder.methods)

    @property
    def languages(self) -> str:
        return " or ".join({"en": "English", "zh": "Chinese"}.get(x, x) for x in self.grounder.processor.languages)

    @property
    def info(self) -> str:
        g, p = self.grounder, self.grounder.processor
        cfg = g.model.config
        return (f"**Model** `{self.choice.label.replace('`', '')}` ({g.backend}): {self.L} fusion layers × {self.H} heads, "
                f"width {cfg.dim}, images resized to {p.image_size} px with {p.patch_size} px patches, captions in "
                f"{self.languages} up to {p.max_tokens - 2} tokens.")  # fmt: skip

    @property
    def world(self) -> str:
        """What the model knows, in English and Chinese (the shapes world), or what it is for."""
        if not self.grounder.checks_world:
            return f"A photo backend ({self.grounder.backend}): it reads {self.languages} captions about photographs."
        w = model_world(self.grounder.tokenizer)
        return w.describe("en") + "\n\n" + w.describe("zh")


class Models:
    """The models the page offers (``mmattn.catalog``): the default one loaded at start-up,
    others loaded when picked (at most ``keep`` of them at once, the least recently used
    dropped), each failure a one-line message."""

    def __init__(self, default: Model, choices: list[ModelChoice], keep: int = 2):
        self.default, self.keep = default, keep
        self.choices = {c.label: c for c in choices} | {default.choice.label: default.choice}
        self.loaded: dict[str, Model] = {default.choice.label: default}
        self.lock = threading.Lock()

    def get(self, label) -> Model:
        label = label or self.default.choice.label
        with self.lock:
            if label in self.loaded:
                self.loaded[label] = self.loaded.pop(label)  # most recently used last
                return self.loaded[label]
            if label not in self.choices:
                raise user_error(f"Unknown model {str(label)[:60]!r}: choose one of {', '.join(self.choices)}.", title="Model")
            choice = self.choices[label]
        try:
            g = catalog.load(choice, precision=PRECISION)
        except CheckpointError as e:
            raise user_error(f"{choice.label} is unavailable: {e}", title="Model unavailable") from None
        model = Model(choice, g, TraceCache(g, CACHE_SIZE))
        with self.lock:
            self.loaded[label] = model
            extra = [k for k in self.loaded if k != self.default.choice.label]
            for k in extra[: max(0, len(extra) - self.keep)]:
                del self.loaded[k]
        return model


# MMATTN_MODEL selects the default model (a folder or hub id), MMATTN_MODELS more to offer
# (comma-separated), MMATTN_PRECISION the arithmetic (default auto)
PRECISION = os.getenv("MMATTN_PRECISION", "auto")
STARTUP_PROBLEM = ""  #: why MMATTN_MODEL is not the model served, if it could not be loaded
_requested = os.environ.get("MMATTN_MODEL")
try:
    _choice = catalog.describe(_requested) if _requested else catalog.describe(str(DEFAULT_MODEL))
    GROUNDER = catalog.load(_choice, precision=PRECISION)
except CheckpointError as e:  # the app keeps serving: the shipped model, and the page says why
    STARTUP_PROBLEM = f"MMATTN_MODEL={_requested} is unavailable ({e}); serving the shipped model instead."
    log.warning(STARTUP_PROBLEM)
    _choice = catalog.describe(str(DEFAULT_MODEL))
    GROUNDER = catalog.load(_choice, precision=PRECISION)
DEFAULT = Model(_choice, GROUNDER, TraceCache(GROUNDER, CACHE_SIZE))
_extra = [m.strip() for m in os.environ.get("MMATTN_MODELS", "").split(",") if m.strip()] + ([_requested] if _requested else [])
MODELS = Models(DEFAULT, catalog.model_choices(_extra))
CACHE = DEFAULT.cache
L, H = DEFAULT.L, DEFAULT.H
LAYER0 = L - 1
METHODS = DEFAULT.methods
MODEL_INFO = DEFAULT.info


# ---- inputs ----------------------------------------------------------------------------
def user_error(message: str, title: str = "Error") -> gr.Error:
    """An error in what the user sent: shown for 5 s, one log line, no traceback."""
    log.info("refused (%s): %s", title, message)
    return gr.Error(message, title=title, duration=5, print_exception=False)


def _check_size(w: int, h: int) -> None:
    if w <= 0 or h <= 0:
        raise user_error("The image has no pixels. Upload a PNG or JPEG image.", title="Empty image")
    if w * h > MAX_PIXELS:
        raise user_error(f"The image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
                       f"{MAX_PIXELS // 1_000_000} megapixels. Downscale it and upload it again "
                       "(the model looks at a few hundred pixels anyway).", title="Image too large")  # fmt: skip
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise user_error(f"The image is {w}×{h} pixels: one side is more than {MAX_ASPECT} times the other, so the model "
                       "would see a thin strip. Crop it closer to a square and upload it again.", title="Image too thin")  # fmt: skip


def _image(image) -> Image.Image:
    if image is None:
        raise user_error("No image: upload an image (PNG or JPEG) or click one of the examples first.", title="No image")
    if not isinstance(image, Image.Image):
        raise user_error("Could not read the image. Upload a PNG or JPEG file.", title="Not an image")
    _check_size(*image.size)
    try:
        return load_image(image)
    except (ValueError, TypeError, OSError) as e:
        raise user_error(f"Could not read the image ({e}). Upload a PNG or JPEG file.", title="Not an image") from e


def _caption(caption, m: Model) -> str:
    if caption is None or not isinstance(caption, str) or not caption.strip():
        raise user_error("The caption is empty: type a few words that describe the image, e.g. 'a red circle left of "
                       "a blue square' or '红色的圆'.", title="Empty caption")  # fmt: skip
    if len(caption) > MAX_CAPTION_CHARS:
        raise user_error(f"The caption is {len(caption):,} characters long; the limit is {MAX_CAPTION_CHARS:,} (the "
                       f"model reads at most {MAX_TOKENS - 2} tokens). Type one short sentence.", title="Caption too long")  # fmt: skip
    if not any(ch.isalnum() for ch in caption):
        raise user_error("The caption has no words, only punctuation or symbols: type a few words that describe the image.",
                         title="No words")  # fmt: skip
    try:
        return m.grounder.processor.check_caption(caption)
    except (TypeError, ValueError) as e:
        raise user_error(str(e)[0].upper() + str(e)[1:] + ".", title="Caption") from None


def _int(value, name: str, lo: int, hi: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise user_error(f"{name} must be a whole number {lo}..{hi} (got {str(value)[:20]!r}).") from None
    if not f.is_integer() or not lo <= f <= hi:
        raise user_error(f"{name} must be a whole number {lo}..{hi} (got {value!r}).")
    return int(f)


def _controls(m: Model, method, layer, heads) -> dict:
    method = method or "attention"
    if method not in m.methods:
        raise user_error(f"Method {str(method)[:30]!r} is not offered by this model: choose one of {', '.join(m.methods)}.")
    L, H = m.L, m.H
    layer = _int(layer, "Layer", 0, L - 1, L - 1)
    heads = "mean" if heads is None or heads == "" else heads
    if isinstance(heads, str) and heads.strip().isdigit():
        heads = int(heads)
    if not (heads in ("mean", "max") or (isinstance(heads, int) and not isinstance(heads, bool) and 0 <= heads < H)):
        raise user_error(f"Heads must be 'mean', 'max' or a head number 0..{H - 1} (got {str(heads)[:20]!r}).")
    return {"method": method, "layer": layer, "heads": heads}


def _work(src: Image.Image) -> Image.Image:
    """What we ground: the image itself, or a 512-px version of a big one."""
    if max(src.size) <= WORK_SIDE:
        return src
    s = WORK_SIDE / max(src.size)
    return src.resize((max(1, round(src.width * s)), max(1, round(src.height * s))), Image.LANCZOS)


# ---- one question, one trace ------------------------------------------------------------------
@dataclass
class Question:
    """What the page asked last (kept per browser session): the image as grounded, its digest,
    the upload's size and the caption. Every view reads its trace from the cache."""

    work: Image.Image
    digest: str
    source_size: tuple[int, int]
    caption: str
    model: str  #: the model's label (mmattn.catalog)
    lang: str = "en"  #: the language of the words made on the server ("en" or "zh": the browser's)


def page_language(request) -> str:
    """"zh" when the browser asks for Chinese first (Accept-Language), else "en"."""
    headers = getattr(request, "headers", None) or {}
    first = str(headers.get("accept-language", "")).split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def ask(image, caption, model=None, request=None) -> Question:
    m = MODELS.get(model)
    src, caption = _image(image), _caption(caption, m)
    work = _work(src)
    return Question(work, image_digest(work), src.size, caption, m.choice.label, page_language(request))


def model_of(q: Question) -> Model:
    return MODELS.get(q.model)


def trace_of(q: Question, method: str = "attention"):
    """The trace of question ``q``: from its model's cache, or one forward pass (plus a
    backward pass for Grad-CAM and LeGrad)."""
    return model_of(q).cache.get(q.work, q.caption, gradients=method in BACKWARD_METHODS, digest=q.digest)[1]


def _friendly(fn):
    """API handlers: the library's ValueError / TypeError (written for users) become gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        malloc.give_back()
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            raise user_error(str(e)) from None

    return wrapper


def _keep_on_error(n_outputs: int):
    """Page handlers: on a user error keep every output as it is and say why in the status
    line (one log line, no traceback); the last output of the handler is the status."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            malloc.give_back()
            try:
                return (*fn(*args), "")
            except (gr.Error, ValueError, TypeError) as e:
                msg = getattr(e, "message", None) or str(e)
                if not isinstance(e, gr.Error):
                    log.info("refused (%s): %s", fn.__name__, msg)
                return (*(gr.skip() for _ in range(n_outputs)), f"⚠️ {views.md_text(msg)}")

        return wrapper

    return deco


# ---- downloads: the numbers of a view as JSON ------------------------------------------------------
EXPORTS = Path(tempfile.gettempdir()) / f"mmattn-exports-{os.getpid()}"
EXPORT_AGE = 600  #: seconds a download file is kept


def export(numbers: dict, stem: str) -> str:
    """``numbers`` as a JSON file to download (named by its content; files older than
    EXPORT_AGE are removed, so the folder stays small)."""
    body = json.dumps(numbers, ensure_ascii=False, indent=1)
    path = EXPORTS / f"{stem}-{hashlib.sha1(body.encode()).hexdigest()[:12]}.json"
    if not path.is_file():
        EXPORTS.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in EXPORTS.glob("*.json"):
            if now - old.stat().st_mtime > EXPORT_AGE:
                old.unlink(missing_ok=True)
        files.write_text(path, body)
    return str(path)


def export_or_none(numbers, stem: str):
    return export(numbers, stem) if numbers else None


# ---- Ground ------------------------------------------------------------------------------
def _ground_outputs(q: Question, method, layer, heads, show_boxes, shown=None):
    kw = _controls(model_of(q), method, layer, heads)
    v = views.ground_view(trace_of(q, kw["method"]), **kw, show_boxes=bool(show_boxes), shown=shown, source_size=q.source_size,
                          lang=q.lang)  # fmt: skip
    match = {text.t("describes", q.lang): v.match_score, text.t("does_not", q.lang): 1 - v.match_score}
    return v, match


def _table(v, lang: str):
    """The per-word table with its headers in ``lang`` (a DataFrame: gradio sends its headers along)."""
    import pandas as pd

    return pd.DataFrame(views.word_table(v.words, v.out_of_world, lang), columns=text.t("headers", lang))


@_friendly
def ground(image, caption, method="attention", layer=LAYER0, heads="mean", show_boxes=True, model=None, request: gr.Request = None):
    """Ground every word of the caption in the image: the picture (one colour per word), the
    per-word table, the match score, a notice and the JSON. Boxes are in the input image's pixels."""
    q = ask(image, caption, model, request)
    v, match = _ground_outputs(q, method, layer, heads, show_boxes)
    return v.picture, _table(v, q.lang), match, v.notice, v.data


@_keep_on_error(10)
def ground_page(image, caption, method, layer, heads, show_boxes, model, request: gr.Request = None):
    q = ask(image, caption, model, request)
    v, match = _ground_outputs(q, method, layer, heads, show_boxes)
    shown = [w.label for w in v.words if w.index in set(views.default_shown([w.grounded for w in v.words], v.out_of_world))]
    pick = gr.CheckboxGroup(choices=[w.label for w in v.words], value=shown)
    kw = _controls(model_of(q), method, layer, heads)
    numbers = {**trace_of(q, kw["method"]).grounding(**kw).to_json(maps=True), **v.data}  # the patch maps too
    return (v.picture, views.legend_html(v.words, [w.index for w in v.words if w.label in shown], q.lang), pick, match, v.notice,
            _table(v, q.lang), v.data, q, _word_css(v.words), export(numbers, "grounding"))  # fmt: skip


@_keep_on_error(3)
def redraw(q, method, layer, heads, show_boxes, picked):
    """The Ground picture again for other words, method, layer or heads: no forward pass
    (Grad-CAM's first use adds one forward and one backward pass)."""
    if q is None:
        raise user_error("Run Ground first.")
    idx = [int(str(p).split(":", 1)[0]) for p in picked or []]
    v, match = _ground_outputs(q, method, layer, heads, show_boxes, shown=idx)
    return v.picture, views.legend_html(v.words, idx, q.lang), match


def _word_css(rows) -> str:
    """Each word's colour on its box in the word picker (so the picker is the legend too)."""
    rules = "".join(f"#pick label:nth-of-type({w.index + 1}){{border-left:6px solid {w.colour} !important;}}" for w in rows)
    return f"<style>{rules}</style>"


# ---- Image -> text -----------------------------------------------------------------------
def _patch_words(q: Question, fx: float, fy: float, method, layer, heads):
    kw = _controls(model_of(q), method, layer, heads)
    pw = views.patch_words(trace_of(q), fx, fy, layer=kw["layer"], heads=kw["heads"], source_size=q.source_size)
    return dict(pw.weights), pw  # the words only: what is left goes to tokens that are not words (said apart)


def _other(pw, lang: str) -> str:
    return text.t("other_tokens", lang, p=pw.other)


def _xy(q: Question, x, y) -> tuple[float, float]:
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise user_error("x and y must be numbers: pixel coordinates in the input image.") from None
    w, h = q.source_size
    if not (0 <= x < w and 0 <= y < h):  # x, y are not rounded before this check
        raise user_error(f"Pixel ({x:g}, {y:g}) is outside the {w}×{h} image: x must be 0..{w - 1}, y 0..{h - 1}.")
    return x / w, y / h


@_friendly
def words_at(image, caption, x, y, method="attention", layer=LAYER0, heads="mean", model=None):
    """Image -> text at pixel (x, y) of the input image: the weight the patch there gives to each word."""
    q = ask(image, caption, model)
    label, pw = _patch_words(q, *_xy(q, x, y), method, layer, heads)
    return label, pw.data


@_keep_on_error(6)
def words_at_page(q, x, y, method, layer, heads):
    if q is None:
        raise user_error("Run Ground first.")
    label, pw = _patch_words(q, *_xy(q, x, y), method, layer, heads)
    return label, pw.data, pw.picture, x, y, _other(pw, q.lang)


@_keep_on_error(6)
def click_words(q, method, layer, heads, evt: gr.SelectData):
    """A click on the picture in the Image -> text tab (coordinates in the shown picture)."""
    if q is None:
        raise user_error("Run Ground first, then click on the picture.")
    if evt is None or evt.index is None or len(evt.index) != 2:
        raise user_error("Click a point on the picture.")
    view = views.view_size(q.work.size)
    fx, fy = (float(evt.index[0]) + 0.5) / view[0], (float(evt.index[1]) + 0.5) / view[1]
    if not (0 <= fx <= 1 and 0 <= fy <= 1):
        raise user_error("That click was outside the picture: click on the image itself.")
    label, pw = _patch_words(q, fx, fy, method, layer, heads)
    w, h = q.source_size
    return label, pw.data, pw.picture, round(fx * w, 1), round(fy * h, 1), _other(pw, q.lang)


# ---- Heads & layers, Step by step ----------------------------------------------------------------
@_friendly
def heads_view(image, caption, word=None, model=None):
    """One word in every (layer, head): text -> image (where the word looks) and
    image -> text (the weight every patch gives to the word). One colour scale per grid."""
    return views.heads_view(trace_of(ask(image, caption, model)), word)


def _steps(q: Question, word, layer, head, direction):
    m = model_of(q)
    layer, head = _int(layer, "Layer", 0, m.L - 1, m.L - 1), _int(head, "Head", 0, m.H - 1, 0)
    if direction not in recompute.DIRECTIONS:
        raise user_error(f"Direction must be one of {', '.join(recompute.DIRECTIONS)} (got {str(direction)[:30]!r}).")
    return views.steps_view(m.grounder, trace_of(q), word, layer, head, direction, q.lang)


@_friendly
def steps_view(image, caption, word=None, layer=LAYER0, head=0, direction="text_to_image", model=None):
    """One head's cross-attention, stage by stage, recomputed from the layer's inputs."""
    s = _steps(ask(image, caption, model), word, layer, head, direction)
    return s.stages, s.text, s.heads, s.data


@_keep_on_error(3)
def heads_page(q, word):
    if q is None:
        raise user_error("Run Ground first.")
    return views.heads_view(trace_of(q), word, q.lang)


def _temperature(value) -> float:
    try:
        t = float(value if value not in (None, "") else 1.0)
    except (TypeError, ValueError):
        raise user_error(f"The temperature must be a number (got {str(value)[:20]!r}).") from None
    if not 0.05 <= t <= 20:
        raise user_error(f"The temperature must be between 0.05 and 20 (got {t:g}).")
    return t


@_keep_on_error(7)
def steps_page(q, word, layer, head, direction, stage, temperature):
    """The Step by step tab: the stage pictures and table, and the interactive figures."""
    if q is None:
        raise user_error("Run Ground first.")
    s = _steps(q, word, layer, head, direction)
    fig, sentence, scaling = views.step_figures(s.steps, stage, s.word, _temperature(temperature), q.lang)
    return s.stages, s.text, s.heads, s.data, fig, sentence, scaling


@_keep_on_error(3)
def step_figures_page(q, word, layer, head, direction, stage, temperature):
    """Another stage or temperature, or the tab opened: the figures only (the numbers are kept
    in the trace). Before any question there is nothing to draw."""
    if q is None:
        return gr.skip(), gr.skip(), gr.skip()
    s = _steps(q, word, layer, head, direction)
    return views.step_figures(s.steps, stage, s.word, _temperature(temperature), q.lang)


# ---- Positions --------------------------------------------------------------------------------
def _parse_positions(text) -> list[int] | None:
    if text is None or not str(text).strip():
        return None
    try:
        pos = [int(p) for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    except ValueError:
        raise user_error(f"Positions must be whole numbers separated by commas, e.g. '0, 1, 10' (got {str(text)[:40]!r}).") from None
    if len(pos) > 8:
        raise user_error("Pick at most 8 positions to draw.")
    return pos


def _positions(m: Model, work: Image.Image | None, n, dim, positions, row, col, clamp: bool = False, lang: str = "en",
               draw: bool = True):  # fmt: skip

    n = _int(n, "The number of positions", 1, 1024, MAX_TOKENS)
    g = m.grounder
    dim = _int(dim, "The dimension", 2, 1024, min(g.model.config.dim, 256))
    grid = recompute.model_grid(g, work)
    row = None if row in (None, "") else _int(row, "The patch row", 0, 10_000, 0)
    col = None if col in (None, "") else _int(col, "The patch column", 0, 10_000, 0)
    if clamp:  # the page's sliders may still hold a bigger image's grid
        row, col = None if row is None else min(row, grid[0] - 1), None if col is None else min(col, grid[1] - 1)
    p = views.positions_view(g, work, n, dim, _parse_positions(positions), row, col, lang, figures=draw)
    return p.pe, p.similarity, p.dims, p.grid_picture, p.data


@_friendly
def positions_view(image=None, n=MAX_TOKENS, dim=None, positions="", row=None, col=None, model=None):
    """Sinusoidal positional encodings: PE matrix, PE·PEᵀ, a few positions as curves, a few
    dimensions across positions, and the 2-D encoding of the image's patch grid."""
    work = _work(_image(image)) if image is not None else None
    return _positions(MODELS.get(model), work, n, dim, positions, row, col)


@_keep_on_error(5)
def positions_page(q, n, dim, positions, row, col, request: gr.Request = None):
    m = model_of(q) if q is not None else DEFAULT
    lang = q.lang if q is not None else page_language(request)
    return _positions(m, q.work if q is not None else None, n, dim, positions, row, col, clamp=True, lang=lang)


@_keep_on_error(2)
def positions_off_page(q):
    """The question again without positional encodings: one more forward pass, asked for."""
    if q is None:
        raise user_error("Run Ground first: the experiment grounds your own caption and picture again.")
    m = model_of(q)
    picture, text, _ = views.positions_off_view(m.grounder, trace_of(q), q.lang)
    return picture, text


# ---- after a grounding: every other tab from the same trace (no forward pass) ---------------------
TAB_IDS = ("ground", "i2t", "heads", "steps", "positions")  #: the tabs, in the page's order


def active_tab(evt: gr.SelectData) -> str:
    """Which tab the page shows (its interactive figures are drawn only there: Plotly's
    drawing of four figures in hidden tabs took 150 ms of the browser's time per Ground click)."""
    i = evt.index if evt is not None else 0
    return TAB_IDS[i] if isinstance(i, int) and 0 <= i < len(TAB_IDS) else "ground"


def fill_tabs(q, word, layer, head, direction, stage, temperature, n, dim, positions, tab="ground"):
    """The other tabs for the new question, read from its trace; the interactive figures of
    Step by step and Positions only if that tab is shown (otherwise when it is opened)."""
    if q is None:
        return tuple(gr.skip() for _ in range(19))
    t = trace_of(q)
    labels = views.labels(t.words)
    first = labels[max(range(len(labels)), key=lambda i: t.grounded_scores[i])] if labels else None
    t2i, i2t, hdata = views.heads_view(t, first, q.lang)
    s = _steps(q, first, layer, head, direction)
    fig = sentence = scaling = None  # drawn when the tab is opened
    if tab == "steps":
        fig, sentence, scaling = views.step_figures(s.steps, stage, s.word, _temperature(temperature), q.lang)
    grid = t.grid
    pe, sim, dims, grid_pic, pdata = _positions(model_of(q), q.work, n, dim, positions, grid[0] // 2, grid[1] // 2, lang=q.lang,
                                                draw=tab == "positions")  # fmt: skip
    click = views.patch_words(t, 0.5, 0.5).picture  # the picture with its patch grid, to click on
    return (click, None, gr.Dropdown(choices=labels, value=first), t2i, i2t, hdata, gr.Dropdown(choices=labels, value=first),
            s.stages, s.text, s.heads, s.data, fig, sentence, scaling, gr.Slider(maximum=grid[0] - 1, value=grid[0] // 2),
            gr.Slider(maximum=grid[1] - 1, value=grid[1] // 2), pe, sim, grid_pic)  # fmt: skip


# ---- the model picker ----------------------------------------------------------------------------
def caption_label(m: Model) -> str:
    """The caption box's label, in English and Chinese: the languages the model reads."""
    key = {("en", "zh"): "caption_en_zh", ("zh", "en"): "caption_zh_en"}.get(tuple(m.grounder.processor.languages), "caption_en")
    return f"{text.t(key, 'en')} · {text.t(key, 'zh')}"


def head_choices(H: int) -> list[str]:
    return ["mean", "max", *map(str, range(H))]


def _model_info(m: Model) -> str:
    return m.info + (f"\n\n⚠️ {views.md_text(STARTUP_PROBLEM)}" if STARTUP_PROBLEM else "")


def switch_model(label):
    """The page's controls for another model; if it cannot be loaded, one line says why and
    the page goes back to the default model."""
    malloc.give_back()
    problem = ""
    try:
        m = MODELS.get(label)
    except gr.Error as e:  # back to the default model, whose controls the page then shows
        m, problem = DEFAULT, f"⚠️ {views.md_text(e.message)}"
    layers = [(str(i), i) for i in range(m.L)]
    return (_model_info(m), m.world, gr.Textbox(label=caption_label(m)), gr.Radio(choices=m.methods, value="attention"),
            gr.Radio(choices=layers, value=m.L - 1), gr.Radio(choices=head_choices(m.H), value="mean"), gr.Radio(choices=layers, value=m.L - 1),
            gr.Radio(choices=[(str(h), h) for h in range(m.H)], value=0), None, gr.Dropdown(value=m.choice.label), problem)  # fmt: skip


# ---- examples ----------------------------------------------------------------------------------
def load_examples() -> list[list[str]]:
    """[[path, caption], ...] from assets/examples (generated on first use if missing)."""
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
#status {color: #b45309; min-height: 1.2em;}
.explain {font-size: 0.92em;}
.legend {display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0;}
.legend .chip {border: 2px solid; border-radius: 12px; padding: 1px 8px; font-size: 0.9em; background: #fff; color: #222;}
.legend .swatch {display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px;}
.scale {display: flex; align-items: center; gap: 6px; font-size: 0.8em; color: #444;}
.scale .bar {width: 160px; height: 10px; border: 1px solid #999; background: linear-gradient(90deg, rgba(80,80,80,0), rgba(80,80,80,0.45));}
.scale-note {font-size: 0.8em; color: #555;}
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="purple",
                       font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "sans-serif"],
                       font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])  # fmt: skip
#: keyword arguments for demo.launch() (tests use them too, so the page looks the same)
LAUNCH_KWARGS = {
    "max_file_size": "10mb",
    "show_error": False,
    "theme": THEME,
    "css": CSS,
    "footer_links": ["api", "gradio", "settings"],  # Settings: the page's language
    "i18n": T,
    # gradio keeps a copy of the page's config for every session (about 0.2 MB here), and every
    # raw HTTP call is a session of its own: with gradio's default of 10,000 sessions the server
    # grew by 230 MB over 1,400 API calls. 256 sessions bound that; a page whose session was
    # dropped asks its user to press Ground again.
    "state_session_capacity": 256,
}

# gradio's output cache: files older than 10 minutes are deleted every 5 minutes
with gr.Blocks(title="mmattn: text ↔ image cross-attention", delete_cache=(300, 600)) as demo:
    gr.Markdown(T("title"), elem_id="title")
    with gr.Row(equal_height=True):
        model_pick = gr.Dropdown(list(MODELS.choices), value=DEFAULT.choice.label, label=T("model"), elem_id="model_pick", scale=2,
                                 info=T("model_info"))  # fmt: skip
        model_info = gr.Markdown(_model_info(DEFAULT), elem_id="model_info")
    with gr.Accordion(T("world"), open=False, elem_id="world"):
        world_md = gr.Markdown(DEFAULT.world, elem_id="world_md")
    question = gr.State(None, time_to_live=3600)  # a page's last question (one work image, <= 0.8 MB), for an hour
    shown_tab = gr.State("ground")  # the tab the page shows
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            in_img = gradio_uploads.guard(gr.Image(type="pil", label="Image · 图像", elem_id="in_img", height=300, sources=["upload", "clipboard"]),
                                          _check_size)  # fmt: skip
            # plain text, not T(...): gradio's example table shows these two labels untranslated
            in_txt = gr.Textbox(label=caption_label(DEFAULT), elem_id="in_txt", lines=2, max_lines=4, placeholder=T("caption_placeholder"))
            with gr.Accordion(T("settings"), open=True):
                method = gr.Radio(METHODS, value="attention", label=T("method"), info=T("method_info"))
                layer = gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label=T("layer"))
                heads = gr.Radio(head_choices(H), value="mean", label=T("heads"), info=T("heads_info"))
                boxes = gr.Checkbox(value=True, label=T("boxes"))
            btn = gr.Button(T("ground_button"), variant="primary", elem_id="submit")
            status = gr.Markdown("", elem_id="status")
            examples_box = gr.Column()
        with gr.Column(scale=7):
            with gr.Tabs() as tabs:
                with gr.Tab(T("tab_ground"), id="ground"):
                    gr.Markdown(T("ground_explain"), elem_classes="explain")
                    picture = gr.Image(label=T("where"), elem_id="out_img", type="pil", format="jpeg", interactive=False,
                                       height=BOX_HEIGHT, buttons=["download", "fullscreen"])  # fmt: skip
                    legend = gr.HTML(elem_id="legend")
                    pick = gr.CheckboxGroup(choices=[], label=T("words_shown"), elem_id="pick")
                    pick_css = gr.HTML(elem_id="pick_css")
                    with gr.Row():
                        match = gr.Label(label=T("match"), elem_id="match", num_top_classes=2)
                        notice = gr.Textbox(label=T("notes"), elem_id="notice", interactive=False, lines=2)
                    table = gr.Dataframe(headers=views.TABLE_HEADERS, datatype=["number", "str", "str", "str", "number", "str"],
                                         interactive=False, label=T("per_word"), elem_id="table", wrap=True)  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        data = gr.JSON(label=T("result"), elem_id="data")
                    ground_export = gr.DownloadButton(T("download_json"), elem_id="ground_export", size="sm")
                with gr.Tab(T("tab_i2t"), id="i2t"):
                    gr.Markdown(T("i2t_explain"), elem_classes="explain")
                    with gr.Row(equal_height=False):
                        click_img = gr.Image(type="pil", label=T("click_region"), elem_id="click_img", interactive=False,
                                             height=BOX_HEIGHT, buttons=[], scale=3, format="jpeg")  # fmt: skip
                        with gr.Column(scale=2, min_width=220):
                            click_words_out = gr.Label(label=T("patch_words"), elem_id="click_words", num_top_classes=12,
                                                       show_heading=False)  # fmt: skip
                            click_other = gr.Markdown(elem_id="click_other", elem_classes="explain")
                            with gr.Row():
                                x_in = gr.Number(label=T("x"), value=0, minimum=0, elem_id="x_in")
                                y_in = gr.Number(label=T("y"), value=0, minimum=0, elem_id="y_in")
                            xy_btn = gr.Button(T("words_at"), elem_id="xy_btn")
                    with gr.Accordion("JSON", open=False):
                        click_data = gr.JSON(label=T("patch"), elem_id="click_data")
                with gr.Tab(T("tab_heads"), id="heads"):
                    gr.Markdown(T("heads_explain"), elem_classes="explain")
                    heads_word = gr.Dropdown(choices=[], label=T("word"), allow_custom_value=True, elem_id="heads_word")
                    gr.Markdown(T("t2i_explain"))
                    heads_t2i = gr.Image(label="Text → image", show_label=False, type="pil", interactive=False, buttons=["download", "fullscreen"],
                                         elem_id="heads_t2i", format="png")  # fmt: skip
                    gr.Markdown(T("i2t_grid_explain"))
                    heads_i2t = gr.Image(label="Image → text", show_label=False, type="pil", interactive=False, buttons=["download", "fullscreen"],
                                         elem_id="heads_i2t", format="png")  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        heads_data = gr.JSON(label=T("maps"))
                    heads_export = gr.DownloadButton(T("download_json"), elem_id="heads_export", size="sm")
                with gr.Tab(T("tab_steps"), id="steps") as steps_tab:
                    gr.Markdown(T("steps_explain"), elem_classes="explain")
                    with gr.Row():
                        steps_word = gr.Dropdown(choices=[], label=T("word"), allow_custom_value=True, elem_id="steps_word")
                        steps_layer = gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label=T("steps_layer"))
                        steps_head = gr.Radio([(str(h), h) for h in range(H)], value=0, label=T("steps_head"))
                        steps_dir = gr.Radio([(T("t2i"), "text_to_image"), (T("i2t"), "image_to_text")],
                                             value="text_to_image", label=T("direction"))  # fmt: skip
                    steps_stage = gr.Radio([(T(f"stage_label_{n}"), n) for n in text.STAGE_NAMES], value="scores", label=T("stage"),
                                           info=T("stage_info"), elem_id="steps_stage")  # fmt: skip
                    steps_sentence = gr.Markdown(elem_id="steps_sentence", elem_classes="explain")
                    steps_plot = gr.Plot(show_label=False, elem_id="steps_plot")
                    gr.Markdown(T("why_scale"), elem_classes="explain")
                    steps_temp = gr.Slider(0.25, 4, value=1, step=0.05, label=T("temperature"), info=T("temperature_info"), elem_id="steps_temp")
                    scale_plot = gr.Plot(show_label=False, elem_id="scale_plot")
                    gr.Markdown(T("stage_pictures"), elem_classes="explain")
                    steps_gal = gr.Gallery(label=T("stages"), columns=4, height="auto", object_fit="contain", elem_id="steps_gal", format="png")
                    steps_md = gr.Markdown(elem_id="steps_md", elem_classes="explain")
                    gr.Markdown(T("heads_against"), elem_classes="explain")
                    heads_gal = gr.Gallery(label=T("heads"), columns=H + 1, height=260, object_fit="contain", elem_id="heads_gal", format="jpeg")
                    with gr.Accordion(T("json"), open=False):
                        steps_data = gr.JSON(label=T("checks"))
                    steps_export = gr.DownloadButton(T("download_json"), elem_id="steps_export", size="sm")
                with gr.Tab(T("tab_positions"), id="positions") as positions_tab:
                    gr.Markdown(T("positions_explain"), elem_classes="explain")
                    with gr.Accordion(T("pos_off"), open=True, elem_id="pos_off"):
                        gr.Markdown(T("pos_off_explain"), elem_classes="explain")
                        pos_off_btn = gr.Button(T("pos_off_button"), elem_id="pos_off_btn", size="sm")
                        with gr.Column():
                            pos_off_img = gr.Image(label=T("pos_off_picture"), type="pil", interactive=False, format="jpeg", height=320,
                                                   elem_id="pos_off_img", buttons=["download", "fullscreen"])  # fmt: skip
                            pos_off_md = gr.Markdown(elem_id="pos_off_md")
                    with gr.Row():
                        pos_n = gr.Slider(2, 128, value=MAX_TOKENS, step=1, label=T("pos_n"))
                        pos_dim = gr.Slider(4, 256, value=min(GROUNDER.model.config.dim, 256), step=4, label=T("pos_dim"))
                        pos_list = gr.Textbox(value="", label=T("pos_list"), placeholder=T("pos_list_placeholder"), visible=False)
                    pe_img = gr.Plot(show_label=False, elem_id="pe_plot")
                    with gr.Row(equal_height=False):
                        sim_img = gr.Plot(show_label=False, elem_id="sim_plot")
                        dims_plot = gr.Plot(show_label=False, elem_id="dims_plot")
                    gr.Markdown(T("grid_explain"), elem_classes="explain")
                    with gr.Row():
                        pos_row = gr.Slider(0, 63, value=0, step=1, label=T("pos_row"))
                        pos_col = gr.Slider(0, 63, value=0, step=1, label=T("pos_col"))
                    grid_img = gr.Image(label=T("grid_img"), type="pil", elem_id="grid_img",
                                        interactive=False, height=BOX_HEIGHT, format="jpeg")  # fmt: skip
                    with gr.Accordion("JSON", open=False):
                        pos_data = gr.JSON(label=T("tab_positions"))
                    pos_export = gr.DownloadButton(T("download_json"), elem_id="pos_export", size="sm")
    # a wrongly typed API value gets a message naming the input (patches/gradio_inputs.py)
    for comp, name, expects in ((in_txt, "The caption", "text"), (x_in, "x", "a number"), (y_in, "y", "a number"),
                                (method, "The method", f"one of {', '.join(METHODS)}"), (layer, "The layer", f"a number 0..{L - 1}"),
                                (heads, "Heads", f"'mean', 'max' or 0..{H - 1}"), (boxes, "show_boxes", "true or false"),
                                (heads_word, "The word", "a word of the caption or its index"),
                                (steps_word, "The word", "a word of the caption or its index"), (steps_layer, "The layer", f"0..{L - 1}"),
                                (steps_head, "The head", f"0..{H - 1}"), (steps_dir, "The direction", "text_to_image or image_to_text"),
                                (pos_n, "n", "a number 2..128"), (pos_dim, "The dimension", "a number 4..256"),
                                (pos_list, "The positions", "numbers separated by commas"), (pos_row, "The patch row", "a number"),
                                (pos_col, "The patch column", "a number")):  # fmt: skip
        gradio_inputs.guard(comp, name, expects)
    with gr.Row(visible=False):  # the public API: one hidden trigger per endpoint (the page uses the events below)
        api_ground, api_words_at, api_heads, api_steps, api_positions = (gr.Button(visible=False) for _ in range(5))

    # ---- the page: a Ground click traces once, then fills every tab from that trace
    ground_in = [in_img, in_txt, method, layer, heads, boxes, model_pick]
    ground_page_out = [picture, legend, pick, match, notice, table, data, question, pick_css, ground_export, status]
    tabs_in = [question, steps_word, steps_layer, steps_head, steps_dir, steps_stage, steps_temp, pos_n, pos_dim, pos_list, shown_tab]
    tabs.select(active_tab, None, shown_tab, api_visibility="private", queue=False)
    tabs_out = [click_img, click_words_out, heads_word, heads_t2i, heads_i2t, heads_data, steps_word, steps_gal, steps_md, heads_gal,
                steps_data, steps_plot, steps_sentence, scale_plot, pos_row, pos_col, pe_img, sim_img, grid_img]  # fmt: skip
    for trigger in (btn.click, in_txt.submit):
        trigger(ground_page, ground_in, ground_page_out, api_visibility="private", concurrency_id="model").success(
            fill_tabs, tabs_in, tabs_out, api_visibility="private", concurrency_id="model")  # fmt: skip
    redraw_in, redraw_out = [question, method, layer, heads, boxes, pick], [picture, legend, match, status]
    for c in (method, layer, heads, boxes, pick):
        c.input(redraw, redraw_in, redraw_out, api_visibility="private", concurrency_id="model")
    click_out = [click_words_out, click_data, click_img, x_in, y_in, click_other, status]
    click_img.select(click_words, [question, method, layer, heads], click_out, api_visibility="private", concurrency_id="model")
    xy_btn.click(words_at_page, [question, x_in, y_in, method, layer, heads], click_out, api_visibility="private", concurrency_id="model")
    heads_word.input(heads_page, [question, heads_word], [heads_t2i, heads_i2t, heads_data, status], api_visibility="private")
    # each view's numbers as a JSON file to download, kept in step with the view
    for numbers, button, stem in ((heads_data, heads_export, "heads"), (steps_data, steps_export, "steps"), (pos_data, pos_export, "positions")):
        numbers.change(functools.partial(export_or_none, stem=stem), numbers, button, api_visibility="private", queue=False)
    steps_in = [question, steps_word, steps_layer, steps_head, steps_dir, steps_stage, steps_temp]
    steps_out = [steps_gal, steps_md, heads_gal, steps_data, steps_plot, steps_sentence, scale_plot, status]
    for c in (steps_word, steps_layer, steps_head, steps_dir):
        c.input(steps_page, steps_in, steps_out, api_visibility="private", concurrency_id="model")
    steps_stage.input(step_figures_page, steps_in, [steps_plot, steps_sentence, scale_plot, status], api_visibility="private")
    steps_temp.release(step_figures_page, steps_in, [steps_plot, steps_sentence, scale_plot, status], api_visibility="private")
    steps_tab.select(step_figures_page, steps_in, [steps_plot, steps_sentence, scale_plot, status], api_visibility="private")
    pos_in = [question, pos_n, pos_dim, pos_list, pos_row, pos_col]
    pos_out = [pe_img, sim_img, dims_plot, grid_img, pos_data, status]
    for c in (pos_n, pos_dim, pos_row, pos_col):
        c.release(positions_page, pos_in, pos_out, api_visibility="private")
    pos_list.submit(positions_page, pos_in, pos_out, api_visibility="private")
    demo.load(positions_page, pos_in, pos_out, api_visibility="private")
    positions_tab.select(positions_page, pos_in, pos_out, api_visibility="private")
    pos_off_btn.click(positions_off_page, [question], [pos_off_img, pos_off_md, status], api_visibility="private", concurrency_id="model")

    # ---- another model: the controls follow it (its layers, heads, methods, languages)
    model_pick.input(switch_model, [model_pick], [model_info, world_md, in_txt, method, layer, heads, steps_layer, steps_head, question,
                                                  model_pick, status], api_visibility="private")  # fmt: skip

    # ---- the public API (gradio_client), same inputs as before: each question is traced once
    api_ground.click(ground, ground_in, [picture, table, match, notice, data], api_name="ground", concurrency_id="model")
    api_words_at.click(words_at, [in_img, in_txt, x_in, y_in, method, layer, heads, model_pick], [click_words_out, click_data],
                       api_name="words_at", concurrency_id="model")  # fmt: skip
    api_heads.click(heads_view, [in_img, in_txt, heads_word, model_pick], [heads_t2i, heads_i2t, heads_data], api_name="heads",
                    concurrency_id="model")  # fmt: skip
    api_steps.click(steps_view, [in_img, in_txt, steps_word, steps_layer, steps_head, steps_dir, model_pick], [steps_gal, steps_md, heads_gal, steps_data],
                    api_name="steps", concurrency_id="model")  # fmt: skip
    api_positions.click(positions_view, [in_img, pos_n, pos_dim, pos_list, pos_row, pos_col, model_pick],
                        [pe_img, sim_img, dims_plot, grid_img, pos_data], api_name="positions")  # fmt: skip

    with examples_box:
        EXAMPLES = load_examples()
        if EXAMPLES:
            examples = gr.Examples(EXAMPLES, [in_img, in_txt], label=T("examples"),
                                   examples_per_page=6, elem_id="examples")  # fmt: skip
            examples.load_input_event.then(ground_page, ground_in, ground_page_out, api_visibility="private", concurrency_id="model").success(
                fill_tabs, tabs_in, tabs_out, api_visibility="private", concurrency_id="model")  # fmt: skip

gradio_inputs.require_inputs(demo)
demo.queue(max_size=64, default_concurrency_limit=2)

if __name__ == "__main__":
    demo.launch(server_name=os.getenv("GRADIO_SERVER_NAME", "0.0.0.0"), **LAUNCH_KWARGS)
