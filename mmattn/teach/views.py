"""The demo's pictures and tables, each drawn from one :class:`~mmattn.trace.Trace`.

Nothing here runs the model or imports gradio: ``app.py`` lays these out, and the tests call
them directly. Every picture is rendered once, at the size it is shown: at least
``VIEW_HEIGHT`` pixels tall (the browser only ever shrinks it; gradio's click coordinates are
wrong on pictures it enlarges) and at most ``VIEW_MAX_WIDTH`` wide.

Index letters: W words, T tokens, P patches (= gh * gw), L layers, H heads.
"""

from __future__ import annotations

import html
import math
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from mmattn.api import pictures
from mmattn.api.maps import maps_at_size
from mmattn.api.trace import Trace
from mmattn.models.tokenizer import MAX_TOKENS
from mmattn.teach import colours, drawing, recompute, relations, story
from mmattn.teach.relation import relation_sentence
from mmattn.teach.text import stage_label, t

VIEW_HEIGHT = 448  #: pictures are sent at least this tall
VIEW_MAX_WIDTH = 1344
THUMB = 132  #: height of the small maps in the head grids
POS_OFF_HEIGHT = 220  #: height of each of the two positions-off pictures (the page shows the pair about 320 px tall)
STEP_THUMB = 180  #: height of the step-by-step pictures on the image
MASK_ALPHA = 0.45  #: opacity of a word's colour where its map is 1.0 on the shared scale
MASK_FLOOR = 0.08  #: map values below this (on the shared scale) are not drawn
CONTOUR = 0.5  #: each shown word's region is outlined where its map crosses this value
JPEG_QUALITY = 90
#: words that name nothing in the picture: the per-word views start on another word, and the page sets them apart
FUNCTION_WORDS = frozenset({"the", "a", "an", "of", "is", "are", "there", "and", "to", "no", "的", "在", "一个", "有", "和", "是"})


def word_colours(words: list[str]) -> list[str]:
    """Each word's colour on the picture, its box, the legend and the picker: a colour word in
    its own colour family, a function word grey, the others in families the caption does not name
    (:func:`mmattn.teach.colours.word_colours`)."""
    return colours.word_colours(words, FUNCTION_WORDS)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class PerTrace:
    """Views made once per trace and kept beside it, never written into it: a view reads its
    trace and nothing else changes the trace. An entry goes when its trace is freed."""

    def __init__(self):
        self._slots: dict[int, dict] = {}
        self._lock = threading.Lock()

    def get(self, trace: Trace, key: tuple, make):
        with self._lock:
            slot = self._slots.get(id(trace))
            if slot is None:
                slot = self._slots[id(trace)] = {}
                weakref.finalize(trace, self._slots.pop, id(trace), None)  # before the id can be reused
        if key not in slot:
            slot[key] = make()
        return slot[key]

    def __len__(self) -> int:
        return len(self._slots)


KEPT = PerTrace()  #: the demo's views, per trace (the TraceCache bounds how many traces live)


def view_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the picture shown for an image of ``size`` (see :func:`view_image`)."""
    w, h = size
    s = VIEW_HEIGHT / h
    if w * s > VIEW_MAX_WIDTH:
        s = VIEW_MAX_WIDTH / w
    return max(1, round(w * s)), max(1, round(h * s))


def view_image(image: Image.Image) -> Image.Image:
    """The picture as shown: at least VIEW_HEIGHT tall (never enlarged by the browser)."""
    return pictures.resize_to_height(image, VIEW_HEIGHT, VIEW_MAX_WIDTH)


def labels(words: list[str]) -> list[str]:
    """Unique labels of the words: "0:red", "1:circle", ..."""
    return [f"{i}:{w}" for i, w in enumerate(words)]


def scale_box(box, frm: tuple[int, int], to: tuple[int, int]):
    """A box (x0, y0, x1, y1) in an image of size ``frm`` -> in one of size ``to`` (at least 1 px)."""
    if box is None:
        return None
    sx, sy = to[0] / frm[0], to[1] / frm[1]
    x0, y0 = int(round(box[0] * sx)), int(round(box[1] * sy))
    x1, y1 = max(x0 + 1, int(round(box[2] * sx))), max(y0 + 1, int(round(box[3] * sy)))
    return [min(x0, to[0] - 1), min(y0, to[1] - 1), min(x1, to[0]), min(y1, to[1])]


# ---- Ground: every word's map on the image, one colour each ---------------------------------
@dataclass
class WordRow:
    """One word of a grounding, as the page lists it."""

    index: int
    word: str
    label: str  #: "index:word"
    colour: str  #: its colour on the picture and in the legend
    known: bool  #: in the model's vocabulary
    grounded: bool  #: located in the image
    score: float  #: probability behind ``grounded``
    peak: float  #: strongest value of its map on the shared scale (1.0 = the strongest word)
    box: list[int] | None  #: in the user's image pixels


@dataclass
class PhraseRow:
    """One noun phrase, as the legend groups its words."""

    text: str
    words: list[int]  #: its words' indices
    relation: str | None = None  #: how it stands to its landmark ("left"), for a relational phrase
    landmark: str | None = None  #: the landmark phrase's text


@dataclass
class GroundView:
    picture: Image.Image  #: the image with the chosen words' maps, outlines and boxes
    words: list[WordRow]
    match_score: float
    notice: str  #: plain sentences for the user
    data: dict = field(repr=False)  #: the result as JSON
    out_of_world: bool = False  #: the image is not from the model's world: nothing is found
    phrases: list[PhraseRow] = field(default_factory=list)  #: the caption's noun phrases, for the legend


def compose(view: Image.Image, maps: np.ndarray, colours: list[str], shown: list[int], boxes: list | None = None) -> Image.Image:
    """Draw words' maps (W, h, w) in [0, 1] over ``view`` (same size): each pixel takes the
    colour of the shown word whose map is strongest there, with opacity MASK_ALPHA x its value
    (so objects stay visible and colours never mix into new ones); each shown word's region is
    outlined in its colour where its map crosses CONTOUR; ``boxes[i]`` (view pixels) are drawn
    in the word's colour with its index, a box that several words share (their phrase's) once,
    with all their indices."""
    out = np.array(view.convert("RGB"))  # a fresh copy of the view, (h, w, 3) uint8
    if shown:
        sel = maps[shown]  # (S, h, w), a copy
        np.clip(sel, 0, 1, out=sel)
        val = sel.max(0)  # (h, w): the strongest shown word's value
        palette = np.array([_rgb(colours[i]) for i in shown], np.float32)
        tinted = np.flatnonzero(val >= MASK_FLOOR)  # (n,) pixels that change (usually the objects: a small part of the picture)
        top = sel.reshape(len(shown), -1).take(tinted, 1).argmax(0)  # (n,): which word is strongest at each of them
        a = (MASK_ALPHA * val.ravel().take(tinted))[:, None]  # (n, 1)
        flat = out.reshape(-1, 3)  # (h*w, 3), a view of out
        flat[tinted] = (flat.take(tinted, 0).astype(np.float32) * (1 - a) + palette[top] * a).astype(np.uint8)  # a mix of two colours: in 0..255
        for s in range(len(shown)):  # outlines: a dark rim, then the colour (worked out on the region's box only)
            inside = sel[s] >= CONTOUR
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            if not len(rows):
                continue
            y0, y1 = max(0, rows[0] - 3), min(inside.shape[0], rows[-1] + 4)
            x0, x1 = max(0, cols[0] - 3), min(inside.shape[1], cols[-1] + 4)
            edge = _edge(inside[y0:y1, x0:x1])
            crop = out[y0:y1, x0:x1]
            crop[_grow(edge, 2)] = 20
            crop[_grow(edge, 1)] = palette[s]
    im = Image.fromarray(out)
    if boxes:
        d = ImageDraw.Draw(im)
        width = max(2, min(im.size) // 150)
        tags: dict[tuple, list[int]] = {}  # words with the same box (a phrase's) share it and one tag: "0 1"
        for i in shown:
            if boxes[i] is not None:
                tags.setdefault(tuple(boxes[i]), []).append(i)
        for b, idx in tags.items():  # each box once, in its last word's colour (a phrase's head noun)
            x0, y0, x1, y1 = b[0], b[1], max(b[0], b[2] - 1), max(b[1], b[3] - 1)
            d.rectangle([x0, y0, x1, y1], outline=(20, 20, 20), width=width + 2)
            d.rectangle([x0, y0, x1, y1], outline=_rgb(colours[idx[-1]]), width=width)
        tags = {(b[0], b[1]): idx for b, idx in tags.items()}
        for (x0, y0), idx in tags.items():
            x = x0
            ty = y0 - 16 if y0 >= 16 else y0
            for i in idx:
                tw = 8 * len(str(i)) + 6
                d.rectangle([x, ty, x + tw, ty + 15], fill=_rgb(colours[i]))
                d.text((x + 3, ty + 1), str(i), fill=(255, 255, 255))
                x += tw + 1
    return im


def _edge(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that touch a pixel outside it (4-neighbours)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        g = out.copy()
        g[1:, :] |= out[:-1, :]
        g[:-1, :] |= out[1:, :]
        g[:, 1:] |= out[:, :-1]
        g[:, :-1] |= out[:, 1:]
        out = g
    return out


def default_shown(grounded: list[bool], out_of_world: bool = False) -> list[int]:
    """The words drawn until the user picks: those found in the image, or every word if none
    is; none at all on an image outside the model's world (its maps would look like answers)."""
    if out_of_world:
        return []
    return [i for i, g in enumerate(grounded) if g] or list(range(len(grounded)))


def notes(trace: Trace, lang: str = "en") -> list[str]:
    """What the user should know about a trace, one sentence each, in ``lang``: the image is
    outside the model's world, the caption was cut, a word is not in the vocabulary."""
    out = []
    if trace.out_of_world:
        reason = trace.world.reason_zh if lang == "zh" else trace.world.reason
        out.append(t("note_out_of_world", lang, reason=reason))
    if trace.caption.truncated:
        out.append(t("note_truncated", lang, n=len(trace.words), max=MAX_TOKENS - 2))
    for w in dict.fromkeys(trace.unknown_words):
        s = trace.suggestions.get(w)
        out.append(t("note_unknown_suggest", lang, word=w, suggestion=s) if s else t("note_unknown", lang, word=w))
    return out


def notice(trace: Trace, result, lang: str = "en") -> str:
    """What the user should know about a result (a :class:`~mmattn.api.grounding.Grounding`), in
    plain sentences: the notes, then, for a caption with a relation, where the maps put its two
    objects against what it says."""
    parts = notes(trace, lang)
    if not trace.out_of_world and (said := relation_sentence(result.words, relation_evidence(trace, result), result.grid, lang)):
        parts.append(said)
    return (" " if lang != "zh" else "").join(parts) or t("all_known", lang)


def relation_evidence(trace: Trace, result) -> np.ndarray:
    """The maps the relation sentence reads of ``result`` (a reading of ``trace``):
    :meth:`mmattn.api.trace.Trace.relation_evidence`."""
    return trace.relation_evidence(result.patch_maps, result.method, result.layer, result.heads)


def ground_view(trace: Trace, *, method: str = "attention", layer: int | None = None, heads: str | int = "mean",
                show_boxes: bool = True, shown: list[int] | None = None, source_size: tuple[int, int] | None = None,
                lang: str = "en") -> GroundView:  # fmt: skip
    """The Ground tab: the words' maps on the image, one colour per word (``shown``: which
    words; default the words found in the image, or all if none is), the per-word rows, the match score, a notice and the JSON. Boxes are
    given in pixels of an image of ``source_size`` (the user's upload, when ``trace`` grounded
    a downscaled copy). The default view (``shown=None``) is made once per setting and kept
    beside the trace (:data:`KEPT`, never in it); a user's own choice of words is drawn each time (not kept)."""
    if shown is not None:
        return _ground_view(trace, method, layer, heads, show_boxes, shown, source_size, lang)
    key = ("ground_view", method, trace.layer(layer), heads, show_boxes, source_size, lang)
    return KEPT.get(trace, key, lambda: _ground_view(trace, method, layer, heads, show_boxes, shown, source_size, lang))


def _ground_view(trace: Trace, method, layer, heads, show_boxes, shown, source_size, lang) -> GroundView:
    r = trace.grounding(method, layer, heads)
    data = ground_numbers(trace, r, source_size)  # the JSON: boxes in the user's pixels, each word's colour
    view = view_image(r.image)
    maps = maps_at_size(r.patch_maps, r.grid, (view.height, view.width))  # rendered once, at the size shown
    W = len(r.words)
    if shown is None:
        shown = default_shown(r.grounded, r.out_of_world)
    shown = [i for i in shown if 0 <= i < W]
    colours = data["colours"]
    # a phrase's words share the phrase's box (drawn once); other words keep their own
    word_boxes = list(r.boxes)
    for ph in r.phrases:
        for i in ph.words:
            if 0 <= i < W:
                word_boxes[i] = ph.box
    view_boxes = [scale_box(b, r.size, view.size) for b in word_boxes] if show_boxes else None
    picture = compose(view, maps, colours, shown, view_boxes)
    peaks = [float(m.max()) if m.size else 0.0 for m in r.patch_maps]
    unknown = set(r.unknown_words)
    rows = [WordRow(i, w, lab, colours[i], w not in unknown, g, s, p, b)
            for i, (w, lab, g, s, p, b) in enumerate(zip(r.words, labels(r.words), r.grounded, r.grounded_scores, peaks, data["boxes"]))]  # fmt: skip
    phrases = [PhraseRow(ph.text, list(ph.words), ph.relation, r.phrases[ph.anchor].text if ph.anchor is not None else None)
               for ph in r.phrases]  # fmt: skip
    return GroundView(picture, rows, r.match_score, notice(trace, r, lang), data, r.out_of_world, phrases)


def ground_numbers(trace: Trace, r, source_size: tuple[int, int] | None = None) -> dict:
    """A grounding ``r`` of ``trace`` as the page's and the API's JSON: :meth:`Grounding.to_json`
    with the boxes in pixels of an image of ``source_size`` (the user's upload, when ``trace``
    grounded a downscaled copy), both sizes, each word's colour on the picture, the precision."""
    source_size = source_size or r.size
    data = r.to_json()
    data.update(boxes=[scale_box(b, r.size, source_size) for b in r.boxes], image_size=list(source_size),
                model_input_size=list(trace.model_size), colours=word_colours(r.words), precision=trace.precision)  # fmt: skip
    return data


def word_table(rows: list[WordRow], out_of_world: bool = False, lang: str = "en") -> list[list]:
    """The per-word table, every number in plain words (headers: ``t("headers", lang)``). Outside
    the model's world no probability is shown: it would mean nothing there."""
    out = []
    for w in rows:
        found = t("unknown", lang) if not w.known else (t("outside", lang) if out_of_world else t("yes" if w.grounded else "no", lang))
        if w.known and not out_of_world and not w.grounded and w.word.lower() in FUNCTION_WORDS:
            found = f"{found} ({t('function_word', lang)})"
        conf = "–" if not w.known or out_of_world else f"{w.score:.0%}"
        out.append([w.index, w.word, found, conf, round(w.peak, 2), "" if w.box is None else "({}, {}, {}, {})".format(*w.box)])
    return out


TABLE_HEADERS = t("headers", "en")


def word_frame(rows: list[WordRow], out_of_world: bool = False, lang: str = "en"):
    """The per-word table as a DataFrame with its headers in ``lang`` (gradio sends them along)."""
    import pandas as pd

    return pd.DataFrame(word_table(rows, out_of_world, lang), columns=t("headers", lang))


def word_css(rows: list[WordRow]) -> str:
    """Each word's colour on its box in the word picker (so the picker is the legend too)."""
    rules = "".join(f"#pick label:nth-of-type({w.index + 1}){{border-left:6px solid {w.colour} !important;}}" for w in rows)
    return f"<style>{rules}</style>"


def legend_html(rows: list[WordRow], shown: list[int] | None = None, lang: str = "en", phrases: list[PhraseRow] | None = None) -> str:
    """The legend: each word in its colour (faded when hidden), a phrase's words grouped
    (with the landmark a relational phrase is anchored to), and the colour scale."""
    shown_set = set(range(len(rows))) if shown is None else set(shown)

    def chip(w: WordRow) -> str:
        style = f"border-color:{w.colour};" + ("" if w.index in shown_set else "border-style:dotted;background:#f3f4f6;")  # hidden: still readable
        mark = "✓" if w.grounded else ("?" if not w.known else "·")
        kind = "chip function" if w.word.lower() in FUNCTION_WORDS else "chip"
        return (f'<span class="{kind}" data-index="{w.index}" style="{style}"><span class="swatch" style="background:{w.colour}"></span>'
                f"{w.index}:{html.escape(w.word)} <small>{mark}</small></span>")  # fmt: skip

    groups = {ph.words[0]: ph for ph in phrases or [] if ph.words and all(0 <= i < len(rows) for i in ph.words)}
    inside = {i for ph in groups.values() for i in ph.words}
    chips = []
    for w in rows:
        if w.index in groups:
            ph = groups[w.index]
            rel = ""
            if ph.relation and ph.landmark:
                rel = f'<small class="anchor">{html.escape(t("legend_anchored", lang, relation=t("rel_" + ph.relation, lang), landmark=ph.landmark))}</small>'
            chips.append(f'<span class="phrase" title="{html.escape(ph.text)}">{"".join(chip(rows[i]) for i in ph.words)}{rel}</span>')
        elif w.index not in inside:
            chips.append(chip(w))
    scale = (f'<div class="scale"><span>{t("weak", lang)}</span><span class="bar"></span><span>{t("strongest", lang)}</span></div>'
             f'<div class="scale-note">{t("scale_note", lang)}</div>')  # fmt: skip
    function = list(dict.fromkeys(w.word for w in rows if w.word.lower() in FUNCTION_WORDS))
    note = f'<div class="scale-note">{html.escape(t("function_note", lang, words=", ".join(function)))}</div>' if function else ""
    return f'<div class="legend">{"".join(chips)}</div>{scale}{note}'


# ---- Image -> text: the words one patch attends to -----------------------------------------------
@dataclass
class PatchWords:
    patch: tuple[int, int]  #: (row, col) on the grid
    grid: tuple[int, int]
    weights: dict[str, float]  #: label -> the weight the patch gives to that word
    other: float  #: the rest: special tokens ([CLS], [SEP]) and punctuation
    picture: Image.Image  #: the shown picture with the patch outlined
    data: dict = field(repr=False)


def patch_words(trace: Trace, fx: float, fy: float, *, layer: int | None = None, heads: str | int = "mean",
                source_size: tuple[int, int] | None = None) -> PatchWords:  # fmt: skip
    """Image -> text at the point (fx, fy) given as fractions of the image's width and height."""
    if not (0 <= fx <= 1 and 0 <= fy <= 1):
        raise ValueError(f"the point ({fx:.3f}, {fy:.3f}) is outside the picture: click on the image itself")
    gh, gw = trace.grid
    r, c = min(int(fy * gh), gh - 1), min(int(fx * gw), gw - 1)
    pw = trace.patch_words(layer, heads)[r * gw + c]  # (W,)
    weights = {lab: float(v) for lab, v in zip(labels(trace.words), pw)}
    other = max(0.0, 1.0 - float(pw.sum()))
    sw, sh = source_size or trace.size
    data = {"x": round(fx * sw, 2), "y": round(fy * sh, 2), "patch": [r, c], "grid": [gh, gw],
            "words": [{"index": i, "word": w, "weight": round(float(v), 6)} for i, (w, v) in enumerate(zip(trace.words, pw))],
            "other_tokens": round(other, 6), "layer": trace.layer(layer), "heads": heads}  # fmt: skip
    picture = pictures.draw_patch_grid(view_image(trace.image), trace.grid, (r, c))
    return PatchWords((r, c), (gh, gw), weights, other, picture, data)


# ---- Heads & layers --------------------------------------------------------------------------------
def heads_view(trace: Trace, word=None, lang: str = "en") -> tuple[Image.Image, Image.Image, dict]:
    """One word in every (layer, head), both directions: two labelled grids and the JSON."""
    lh = recompute.layer_head_maps(trace, word)  # labels drawn into the grids in ``lang``
    thumb = pictures.resize_to_height(trace.image, THUMB)

    def grid(maps):
        vmax = float(maps.max()) or 1.0
        cells = [[pictures.grid_map_overlay(thumb, m, vmax=vmax) for m in [*maps[layer], maps[layer].mean(0)]] for layer in range(len(maps))]
        cols = [t("head_n", lang, h=h) for h in range(maps.shape[1])] + [t("mean", lang)]
        table = pictures.labelled_grid(cells, [t("layer_n", lang, layer=layer) for layer in range(len(maps))], cols, font=drawing.font(18))
        return drawing.with_colour_bar(table, 0.0, vmax, t("heads_bar", lang), size=18), vmax

    t2i, vt = grid(lh.text_to_image)
    i2t, vi = grid(lh.image_to_text)
    info = {"word": lh.word, "word_index": lh.word_index, "words": lh.words, "grid": list(lh.grid),
            "text_to_image_max": round(vt, 6), "image_to_text_max": round(vi, 6),
            "text_to_image": np.round(lh.text_to_image, 5).tolist(), "image_to_text": np.round(lh.image_to_text, 5).tolist()}  # fmt: skip
    return t2i, i2t, info


# ---- Step by step ---------------------------------------------------------------------------------
def _shape(a) -> str:
    return "×".join(map(str, a.shape))


def md_text(text: str) -> str:
    """User text made inert for Markdown: every character Markdown or HTML gives a meaning
    (``*_[]()#<>&``...) backslash-escaped, so it shows as typed and no tag is ever made."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~&" else ch for ch in text)


@dataclass
class StepsView:
    stages: list[tuple[Image.Image, str]]  #: (picture, caption) for each stage, then the chosen word on the image
    text: str  #: Markdown: what each stage is
    heads: list[tuple[Image.Image, str]]  #: the word's map in every head of the layer, and their mean
    data: dict = field(repr=False)
    steps: recompute.AttentionSteps | None = field(default=None, repr=False)  #: the numbers (for the interactive figures)
    word: int = 0  #: the chosen word's index


def attention_steps(grounder, trace: Trace, layer: int | None, head: int, direction: str) -> recompute.AttentionSteps:
    """:func:`mmattn.teach.recompute.attention_steps`, made once per (layer, head, direction) and kept beside the trace."""
    key = ("steps", trace.layer(layer), trace.head(head), direction)
    return KEPT.get(trace, key, lambda: recompute.attention_steps(grounder, trace, layer, head, direction))


def default_word(trace: Trace) -> int:
    """The word the views follow until the learner picks one: the most surely found content
    word, never a function word ("the", "a", "of", 的, 在; :func:`mmattn.teach.story.default_word`)."""
    scores = trace.grounded_scores
    return story.default_word(trace.words, [p > 0.5 for p in scores], scores)


def step_query(steps: recompute.AttentionSteps, word: int) -> int:
    """The query row the figures follow for word ``word``: its first token (text -> image), or
    the patch that gives the word the most weight (image -> text)."""
    toks = steps.word_tokens[word]
    if steps.direction == "text_to_image":
        return toks[0]
    return int(steps.weights[:, toks].sum(1).argmax())


def step_figures(steps: recompute.AttentionSteps, stage: str, word: int, temperature: float = 1.0, lang: str = "en"):
    """The step control's three outputs: the chosen stage's interactive matrix (the word's row
    outlined), the stage's sentence about the learner's word with this head's numbers (then
    what the stage is, in general), and the ÷√d comparison for the word's row."""
    from mmattn.teach import figures  # plotly: only the page needs it

    names = figures.matrix_names(steps)
    stage = stage if stage in names else "scores"  # (no V, Z, concat, out_proj where a layer computes weights only)
    query = steps.word_tokens[word] if steps.direction == "text_to_image" else step_query(steps, word)
    fig = figures.matrix_figure(steps, stage, lang=lang, query=query)
    if stage in ("q", "k", "v"):
        general = t(f"stage_sentence_{stage}", lang)
    else:
        general = figures.stage_sentences(steps.direction, steps.head_dim)[stage][lang if lang in ("en", "zh") else "en"]
    sentence = story.sentence(steps, stage, word, lang) + "\n\n" + general
    label = steps.words[word] if steps.direction == "text_to_image" else None
    scaling = figures.scaling_figure(steps, query, temperature, lang=lang, label=label)
    return fig, sentence, scaling


def step_pictures(steps: recompute.AttentionSteps, image: Image.Image, word: int, lang: str = "en") -> list[tuple[Image.Image, str]]:
    """The learner's word on the learner's picture at the three stages that live on the patch
    grid (S = Q·Kᵀ, ÷√d, softmax), each with its colour bar, the patch the stage sentences
    follow outlined (:func:`mmattn.teach.story.focus`) and a caption naming the word and the stage."""
    f = story.focus(steps, word)
    t2i = steps.direction == "text_to_image"
    toks = f.tokens
    out = []
    for name in ("scores", "scaled", "weights"):
        a = getattr(steps, name)
        m = (a[toks].mean(0) if t2i else (a[:, toks].sum(1) if name == "weights" else a[:, toks].mean(1))).reshape(steps.grid)
        signed = name != "weights"
        lim = float(np.abs(m).max()) or 1.0
        pic = pictures.grid_map_overlay(image, m, signed=signed, limit=lim if signed else None, height=STEP_THUMB * 2)
        pic = drawing.outline_patches(pic, steps.grid, [(f.row, f.col)])
        low, high = (-lim, lim) if signed else (0.0, float(m.max()))
        pic = drawing.with_colour_bar(pic, low, high, t(f"steps_bar_{name}", lang), signed=signed, size=max(14, pic.width // 20), above=True)
        pic = drawing.titled(pic, "", size=1, top=24)  # blank room for the gallery's own label over the first picture
        out.append((pic, t("steps_picture_caption", lang, stage=stage_label(name, lang), word=f.word, label=f"r{f.row}c{f.col}")))
    return out


def steps_view(grounder, trace: Trace, word=None, layer: int | None = -1, head: int = 0, direction: str = "text_to_image",
               lang: str = "en") -> StepsView:  # fmt: skip
    """One head's cross-attention, stage by stage, recomputed from the inputs the trace recorded
    (the explanation in English or Chinese)."""
    s = attention_steps(grounder, trace, layer, head, direction)
    w = default_word(trace) if word is None or (isinstance(word, str) and not word.strip()) else recompute.resolve_word(s.words, word)
    word_name, image = s.words[w], trace.image
    t2i = direction == "text_to_image"

    qn, kn = (t("steps_n_tokens", lang), t("steps_n_patches", lang))[:: 1 if t2i else -1]
    Lq, Lk, hd, T = s.q.shape[0], s.k.shape[0], s.head_dim, len(s.tokens)

    def row(name, matrix, caption, shapes, **values):  # (name, picture, short caption, stage, shapes, meaning)
        return (name, matrix, caption, stage_label(name, lang) + ": " + t(f"steps_what_{name}", lang, hd=hd, rt=math.sqrt(hd), H=s.num_heads),
                shapes, t(f"steps_meaning_{name}", lang, **values))  # fmt: skip

    rows = [
        row("q", None, f"Q {_shape(s.q)}", _shape(s.q), qn=qn),
        row("k", None, f"Kᵀ {_shape(s.k.T)}", f"{_shape(s.k)} → Kᵀ {_shape(s.k.T)}", kn=kn),
    ]
    if s.reads_values:
        rows.append(row("v", None, f"V {_shape(s.v)}", _shape(s.v)))
    rows += [
        row("scores", None, f"S = Q·Kᵀ {_shape(s.scores)}",
            f"{_shape(s.q)} · {hd}×{Lk} → {_shape(s.scores)}"),
        row("scaled", None, f"S/√{hd} {_shape(s.scaled)}", _shape(s.scaled)),
        row("weights", None, f"softmax {_shape(s.weights)}", _shape(s.weights), err=s.max_weight_error),
    ]  # fmt: skip
    if s.reads_values:
        rows += [
            row("head_output", None, f"Z = A·V {_shape(s.head_output)}",
                f"{_shape(s.weights)} · {_shape(s.v)} → {_shape(s.head_output)}"),
            row("concat", None, f"{t('stage_concat', lang)} {_shape(s.concat)}",
                f"{s.num_heads} × ({Lq}×{hd}) → {_shape(s.concat)}"),
            row("output", None, f"{t('stage_output', lang)} {_shape(s.output)}",
                f"{_shape(s.concat)} · {s.dim}×{s.dim} → {_shape(s.output)}", err=s.max_output_error),
        ]  # fmt: skip
    table = t("steps_table_head", lang) + "\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for *_, a, b, c in rows)
    stages = step_pictures(s, image, w, lang)  # the word on the learner's picture (not the matrices again: the figure shows them)
    text = t("steps_intro", lang, layer=s.layer, head=s.head, direction=t("t2i" if t2i else "i2t", lang), Lq=Lq, Lk=Lk, hd=hd,
             D=s.dim, H=s.num_heads, T=T, gh=s.grid[0], gw=s.grid[1], P=s.grid[0] * s.grid[1], word=md_text(word_name),
             how=t("steps_how_t2i" if t2i else "steps_how_i2t", lang)) + "\n\n" + table  # fmt: skip
    if not s.reads_values:
        text += "\n\n" + t("steps_no_values", lang)
    hm = recompute.head_maps(trace, w, s.layer)
    vmax = float(max(hm.heads.max(), hm.mean.max())) or 1.0
    bar = t("steps_bar_weights", lang)

    def head_picture(m):
        pic = pictures.grid_map_overlay(image, m, vmax=vmax, height=STEP_THUMB)
        return drawing.with_colour_bar(pic, 0.0, vmax, bar, size=max(14, pic.width // 14), above=True)

    per_head = [(head_picture(m), t("head_n", lang, h=h)) for h, m in enumerate(hm.heads)]
    per_head.append((head_picture(hm.mean), t("mean_of_heads", lang, H=len(hm.heads))))
    flat = math.log2(hm.heads[0].size)
    sep = "，" if lang == "zh" else ", "
    text += "\n\n" + t("steps_heads_below", lang, layer=s.layer, flat=flat, heads=sep.join(
        t("steps_head_peak", lang, h=h, p=p, e=e) for h, (p, e) in enumerate(zip(hm.peaks, hm.entropy))))
    data = s.summary()
    data.update(word=word_name, word_index=w, head_peaks=hm.peaks, head_entropy_bits=hm.entropy)
    return StepsView(stages, text, per_head, data, s, w)


# ---- Positions -------------------------------------------------------------------------------------
@dataclass
class PositionsView:
    pe: object  #: plotly Figure: the PE matrix, positions x dimensions (hover: the formula with its numbers)
    similarity: object  #: plotly Figure: PE·PEᵀ (hover: |i - j| and the value)
    dims: object  #: plotly Figure: a few dimensions across positions
    grid_picture: Image.Image
    data: dict = field(repr=False)


def positions_view(grounder, image: Image.Image | None = None, n: int = 32, dim: int = 64, positions: list[int] | None = None,
                   row: int | None = None, col: int | None = None, lang: str = "en", figures: bool = True) -> PositionsView:  # fmt: skip
    """Sinusoidal encodings: the PE matrix and PE·PEᵀ (interactive; None with ``figures=False``),
    a few dimensions across positions, and the 2-D encoding of the image's patch grid."""
    from mmattn.teach import figures as figs  # plotly: only the page needs it

    p = recompute.positional_1d(n, dim, positions)
    grid = recompute.model_grid(grounder, image)
    row = grid[0] // 2 if row is None else row
    col = grid[1] // 2 if col is None else col
    g = recompute.grid_similarity(grid, row, col, dim=dim if dim % 4 == 0 else dim + 2, grounder=grounder)
    ps = grounder.processor.patch_size
    base = image if image is not None else Image.new("RGB", (grid[1] * ps, grid[0] * ps), (128, 128, 128))
    low, high = float(g.similarity.min()), float(g.similarity.max())  # e.g. 0.74..1: centred on its own middle, not on 0
    sim_pic = pictures.draw_patch_grid(drawing.diverging_over(base, g.similarity, low, high, height=320), grid, (row, col))
    sim_pic = drawing.with_colour_bar(sim_pic, low, high, t("grid_sim_bar", lang), signed=True, middle=True)
    data = {"n": n, "dim": dim, "positions": p.positions, "diagonal_spread": p.diagonal_spread, "grid": list(grid),
            "patch": [row, col], "grid_encoding": g.source, "grid_encoding_dim": g.dim,
            "grid_similarity": np.round(g.similarity, 4).tolist()}  # fmt: skip
    pe, sim, dims = (figs.pe_figure(p, lang=lang), figs.pe_similarity_figure(p, lang=lang), figs.pe_dims_figure(p, lang=lang)) if figures else (None, None, None)
    return PositionsView(pe, sim, dims, sim_pic, data)


# ---- Positions off: the same question without positional encodings --------------------------------
def positions_off_picture(p, trace: Trace, lang: str = "en", jump=None) -> Image.Image:
    """With positions and without, side by side, each titled; the words found with positions
    drawn in their colours on both (the same words, the same colours, each outlined where its
    map is above half the strongest value), and a legend naming each outline's word. With a
    relational phrase (``jump``, :func:`mmattn.teach.relations.jump`), its box on each side:
    the object it picks with positions and without."""
    shown = [i for i, g in enumerate(p.grounded_on) if g] or list(range(len(p.words)))
    if trace.out_of_world:
        shown = []
    view = pictures.resize_to_height(trace.image, POS_OFF_HEIGHT, VIEW_MAX_WIDTH // 2)
    colours = word_colours(p.words)
    panels = []
    boxes = (jump.box_on, jump.box_off) if jump is not None else (None, None)
    for (key, m), box in zip((("pos_off_with", p.maps_on), ("pos_off_without", p.maps_off)), boxes):
        maps = maps_at_size(m, trace.grid, (view.height, view.width))
        panel = compose(view, maps, colours, shown)
        if box is not None:
            drawing.labelled_box(panel, scale_box(box, trace.image.size, view.size), t("jump_box", lang, phrase=jump.phrase))
        panels.append(drawing.titled(panel, t(key, lang), size=17, top=30))  # top: room for the page's label
    both = drawing.side_by_side(panels)
    legend = drawing.word_legend(both.width, [(f"{i}:{p.words[i]}", colours[i]) for i in shown], t("pos_off_legend", lang), size=15)
    out = Image.new("RGB", (both.width, both.height + legend.height), (255, 255, 255))
    out.paste(both, (0, 0))
    out.paste(legend, (0, both.height))
    return out


def positions_off_view(trace: Trace, off: Trace, lang: str = "en") -> tuple[Image.Image, str, dict]:
    """The user's question and the same question asked without positional encodings (``off``,
    its own trace): the picture (words found with positions, drawn from the maps without
    them), a table of how far each word's map moved, and what happened to the relation check
    and the match score."""
    p = recompute.positions_off(trace, off)
    j = None if trace.out_of_world else relations.jump(trace.grounding(), off.grounding())  # a relational phrase's pick, both ways
    picture = positions_off_picture(p, trace, lang, j)
    if trace.out_of_world:  # no verdict on an image outside the model's world, with positions or without
        summary = t("note_out_of_world", lang, reason=trace.world.reason_zh if lang == "zh" else trace.world.reason)
    else:
        sep = "" if lang == "zh" else " "
        evidence_on = relation_evidence(trace, trace.grounding())  # p.maps_on, where the first layer also sees the word
        rel_on, rel_off = (relation_sentence(p.words, m, trace.grid, lang) for m in (evidence_on, p.maps_off))
        summary = t("pos_off_summary", lang, rel_on=rel_on + sep if rel_on else "", m_on=p.match_on, rel_off=rel_off + sep if rel_off else "",
                    m_off=p.match_off)  # fmt: skip
        if j is not None:
            summary = f"**{md_text(j.sentence_zh if lang == 'zh' else j.sentence_en)}**\n\n" + summary
    head = t("pos_off_table_head", lang) + "\n|---|---|---|---|\n"
    yes, no = t("yes", lang), t("no", lang)
    rows = "\n".join(f"| {i}:{md_text(w)} | {m:.0%} | {yes if a else no} | {yes if b else no} |"
                     for i, (w, m, a, b) in enumerate(zip(p.words, p.moved, p.grounded_on, p.grounded_off)))  # fmt: skip
    data = {"words": p.words, "moved": [round(m, 4) for m in p.moved], "grounded_on": p.grounded_on, "grounded_off": p.grounded_off,
            "relation_on": round(p.relation_on, 4), "relation_off": round(p.relation_off, 4),
            "match_on": round(p.match_on, 6), "match_off": round(p.match_off, 6)}  # fmt: skip
    if j is not None:
        data["referent"] = {"phrase": j.phrase, "landmark": j.landmark, "relation": j.relation, "box_on": j.box_on, "box_off": j.box_off,
                            "side_on": j.side_on, "side_off": j.side_off, "jumped": j.jumped}  # fmt: skip
    return picture, summary + "\n\n" + head + rows, data
