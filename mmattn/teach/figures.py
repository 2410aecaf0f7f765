"""Interactive figures (Plotly) of one head's cross-attention and of the positional encodings.

Each function takes the numbers :mod:`mmattn.explain` computed (an
:class:`~mmattn.explain.AttentionSteps`, a PE matrix) and returns a
``plotly.graph_objects.Figure`` for ``gr.Plot``. Nothing here runs the model or imports gradio.

Every matrix is a labelled ``go.Heatmap``: rows and columns are named by token ("[CLS]",
"red", a repeated token gets a subscript: "a₂"), by patch ("r3c5" = grid row 3, column 5,
patch index ``3 * gw + 5``) or by dimension ("d5"; "h2·d5" in the concatenated heads). Each
has a colour bar, and hovering a cell shows its value with the formula that produced it.
Hover text is a ``hovertemplate`` over the axis labels, ``z`` and a few numbers per cell in
``customdata`` (float32, sent base64-encoded), never one string per cell: a 10 × 192 matrix
is 15-50 kB of JSON, a 192 × 128 one (image -> text, concat / output) about 160 kB.

Colours: each kind of matrix keeps one hue everywhere (title, colour scale, bars), so Q, K
and V are recognisable in every view (see ``KIND_COLOURS``):

- Q blue, K red, V green; S = Q·Kᵀ, S/√d and the softmax weights purple (where Q meets K);
  Z = A·V and the concatenated heads teal (mixtures of V's rows); out_proj's output amber.
- Signed matrices use a diverging scale centred at 0: grey (negative) - white (0) - the
  kind's hue (positive), symmetric around 0. The weights (0..1) use white - purple, 0..max.

Index letters: T tokens (specials included), P patches (= gh * gw), Lq / Lk queries / keys,
hd head width, D model width, H heads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmattn.teach.text import LANGS, check_lang, t

__all__ = ["KIND_COLOURS", "MATRIX_NAMES", "SENTENCE_STAGES", "ScalingStats", "hover_text", "key_labels", "matrix_figure", "matrix_names",
           "pe_dims_figure", "pe_figure", "pe_similarity_figure", "query_labels", "scaling_figure", "scaling_stats", "stage_sentences"]  # fmt: skip

MATRIX_NAMES = ("q", "k", "scores", "scaled", "weights", "v", "head_output", "concat", "output")
#: the stages that have a sentence of their own (Q, Kᵀ and V come first: ``mmattn.teach.views.STAGE_NAMES``)
SENTENCE_STAGES = ("scores", "scaled", "weights", "head_output", "concat", "output")
KIND_COLOURS = {"q": "#2563eb", "k": "#dc2626", "v": "#16a34a", "scores": "#7c3aed", "scaled": "#7c3aed", "weights": "#7c3aed",
                "head_output": "#0d9488", "concat": "#0d9488", "output": "#d97706"}  # fmt: skip
NEGATIVE = "#6b7280"  #: the negative end of every diverging scale (grey)
FONT = "system-ui, -apple-system, 'Segoe UI', 'Noto Sans', 'Noto Sans CJK SC', 'PingFang SC', sans-serif"
CELL_BUDGET = 520  #: pixels the rows of a matrix get together (each row 3..24 px)
MARGIN = dict(l=70, r=20, t=56, b=70)


def _check_lang(lang: str) -> str:
    return check_lang(lang)


# ---- labels -------------------------------------------------------------------------------
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def token_labels(tokens: list[str], words: list[str] | None = None, word_tokens: list[list[int]] | None = None) -> list[str]:
    """Unique axis labels for tokens: a repeated token gets its occurrence as a subscript ("a", "a₂").

    With the caption's ``words`` and each word's token positions, a token is named by its word,
    never by a subword piece: a one-token word by the word ("cat" for CLIP's "cat</w>"), a
    piece of a longer word as "word·piece" ("cat·c", "cat·a", "cat·t" for c ##a ##t; "红色·红",
    "红色·色"); [CLS], [SEP] and punctuation keep their token."""
    names = [_clean(tok) for tok in tokens]
    if words is not None and word_tokens is not None:
        for word, toks in zip(words, word_tokens):
            for i in toks:
                names[i] = word if len(toks) == 1 else f"{word}·{_clean(tokens[i])}"
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}{str(seen[name]).translate(_SUB)}")
    return out


def _clean(token: str) -> str:
    """A token without its subword marks: "##a" -> "a", "cat</w>" -> "cat"."""
    out = token.removeprefix("##").removesuffix("</w>")
    return out or token


def patch_labels(grid: tuple[int, int]) -> list[str]:
    """"r{row}c{col}" for the P patches, row-major (patch p = r * gw + c)."""
    gh, gw = grid
    return [f"r{r}c{c}" for r in range(gh) for c in range(gw)]


def query_labels(steps) -> list[str]:
    """Labels of the Lq queries (tokens for text -> image, patches for image -> text)."""
    return _step_tokens(steps) if steps.direction == "text_to_image" else patch_labels(steps.grid)


def key_labels(steps) -> list[str]:
    """Labels of the Lk keys (patches for text -> image, tokens for image -> text)."""
    return patch_labels(steps.grid) if steps.direction == "text_to_image" else _step_tokens(steps)


def _step_tokens(steps) -> list[str]:
    return token_labels(steps.tokens, getattr(steps, "words", None), getattr(steps, "word_tokens", None))


def matrix_names(steps) -> list[str]:
    """The matrices ``steps`` has (no V, Z, concat, output where the layer computes weights only)."""
    return [n for n in MATRIX_NAMES if getattr(steps, n) is not None]


def _axis_title(kind: str, lang: str, role: str = "", n: int = 0) -> str:
    """An axis title (``kind``: tokens, patches, hd, concat, D) in ``lang``."""
    return t(f"fig_axis_{kind}", lang, role=t(f"fig_role_{role}", lang) if role else "", n=n - 1)


# ---- colour scales ----------------------------------------------------------------------------
def _diverging(colour: str) -> list:
    return [[0.0, NEGATIVE], [0.5, "#ffffff"], [1.0, colour]]


def _sequential(colour: str) -> list:
    return [[0.0, "#ffffff"], [1.0, colour]]


def _limit(a: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(a))) if a.size else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def _layout(fig: go.Figure, title: str, colour: str | None, height: int) -> go.Figure:
    fig.update_layout(
        template="none", height=height, margin=MARGIN, font=dict(family=FONT, size=12),
        title=dict(text=title, font=dict(color=colour, size=15), x=0.01, xanchor="left"),
        hoverlabel=dict(bgcolor="white", font=dict(family=FONT, size=13)), plot_bgcolor="white",
    )  # fmt: skip
    return fig


def _height(rows: int) -> int:
    """Figure height for a matrix of ``rows`` rows: each row 3..24 px, plus the margins."""
    per = min(24.0, max(3.0, CELL_BUDGET / max(rows, 1)))
    return int(max(200, rows * per) + MARGIN["t"] + MARGIN["b"] + 30)


# ---- 1. the matrices --------------------------------------------------------------------------
def matrix_figure(steps, name: str, *, lang: str = "en", query: int | list[int] | None = None) -> go.Figure:
    """One matrix of ``steps`` (an :class:`~mmattn.explain.AttentionSteps`) as a labelled heat map.

    ``name``: one of ``MATRIX_NAMES`` (``"k"`` is drawn as Kᵀ). Rows/columns are labelled by
    token, patch or dimension; hovering a cell shows the formula with its numbers, e.g.
    ``S[red, r3c5] = q_red · k_r3c5 = 5.210``. ``query``: a query row (or several, e.g. a word's
    tokens) to outline (ignored on Kᵀ and V, whose rows are not queries). Shapes: q (Lq, hd), Kᵀ (hd, Lk), scores/scaled/weights (Lq, Lk),
    v (Lk, hd), head_output (Lq, hd), concat/output (Lq, D)."""
    lang = _check_lang(lang)
    if name not in MATRIX_NAMES:
        raise ValueError(f"unknown matrix {name!r}: pick one of {', '.join(MATRIX_NAMES)}")
    a = getattr(steps, name)
    if a is None:
        raise ValueError(f"this layer has no {name!r}: it computes only attention weights (no stage 3); "
                         f"pick one of {', '.join(matrix_names(steps))} or an earlier layer")  # fmt: skip
    t2i = steps.direction == "text_to_image"
    ql, kl = query_labels(steps), key_labels(steps)
    hd, H, D = steps.head_dim, steps.num_heads, steps.dim
    qkind, kkind = ("tokens", "patches") if t2i else ("patches", "tokens")
    dims = [f"d{j}" for j in range(hd)]
    rt = math.sqrt(hd)
    nkeys = t("fig_n_patches" if t2i else "fig_n_tokens", lang, n=len(kl))
    custom = None
    if name == "q":
        y, x, ya, xa = ql, dims, _axis_title(qkind, lang, "queries"), _axis_title("hd", lang, n=hd)
        tpl = "Q[%{y}, %{x}] = q_%{y}[%{x}] = %{z:.3f}<br>" + t("fig_hover_q", lang, head=steps.head)
    elif name == "k":
        a = a.T  # (hd, Lk)
        y, x, ya, xa = dims, kl, _axis_title("hd", lang, n=hd), _axis_title(kkind, lang, "keys")
        tpl = "Kᵀ[%{y}, %{x}] = k_%{x}[%{y}] = %{z:.3f}<br>" + t("fig_hover_k", lang, head=steps.head)
    elif name == "v":
        y, x, ya, xa = kl, dims, _axis_title(kkind, lang, "keys"), _axis_title("hd", lang, n=hd)
        tpl = "V[%{y}, %{x}] = v_%{y}[%{x}] = %{z:.3f}<br>" + t("fig_hover_v", lang)
    elif name in ("scores", "scaled", "weights"):
        y, x, ya, xa = ql, kl, _axis_title(qkind, lang, "queries"), _axis_title(kkind, lang, "keys")
        if name == "scores":
            tpl = "S[%{y}, %{x}] = q_%{y} · k_%{x} = %{z:.3f}"
        elif name == "scaled" and getattr(steps, "bias", None) is not None:  # a layer with an AnchorBias
            custom = np.stack([steps.scores, steps.bias], -1).astype(np.float32)
            tpl = f"S[%{{y}}, %{{x}}] / √{hd} + b = %{{customdata[0]:.3f}} / {rt:.2f} + %{{customdata[1]:.2f}} = %{{z:.3f}}<br>" + t("fig_hover_bias", lang)
        elif name == "scaled":
            custom = steps.scores.astype(np.float32)
            tpl = f"S[%{{y}}, %{{x}}] / √{hd} = %{{customdata:.3f}} / {rt:.2f} = %{{z:.3f}}"
        else:
            s = steps.scaled.astype(np.float64)
            shift = np.where(s.max(1, keepdims=True) > 60, s.max(1, keepdims=True), 0.0)  # keep e^s finite in float32
            e = np.exp(s - shift)
            custom = np.stack([s, e, np.broadcast_to(e.sum(1, keepdims=True), s.shape)], -1).astype(np.float32)  # (Lq, Lk, 3)
            exp = "e^(%{customdata[0]:.3f} − max)" if shift.any() else "e^%{customdata[0]:.3f}"
            tpl = (f"A[%{{y}}, %{{x}}] = {t('fig_hover_softmax', lang)}"
                   + f"<br>= {exp} / Σ_row = %{{customdata[1]:.3g}} / %{{customdata[2]:.3g}}")  # fmt: skip
    elif name == "head_output":
        y, x, ya, xa = ql, dims, _axis_title(qkind, lang, "queries"), _axis_title("hd", lang, n=hd)
        tpl = "Z[%{y}, %{x}] = Σ_k A[%{y}, k] · V[k, %{x}] = %{z:.3f}<br>" + t("fig_hover_sum", lang, keys=nkeys)
    elif name == "concat":  # one heat map per head (one colour axis): each hover names its head
        y, x, ya, xa = ql, [f"h{h}·d{j}" for h in range(H) for j in range(hd)], _axis_title(qkind, lang, "queries"), _axis_title("concat", lang)
        tpl = "concat[%{y}, %{x}] = " + t("fig_hover_concat", lang)
    else:  # output
        y, x, ya, xa = ql, [f"d{j}" for j in range(D)], _axis_title(qkind, lang, "queries"), _axis_title("D", lang, n=D)
        tpl = "out[%{y}, %{x}] = Σ_j concat[%{y}, j] · W_o[%{x}, j] + b[%{x}] = %{z:.3f}"
    a = np.asarray(a, np.float32)
    colour = KIND_COLOURS[name]
    bar = t("fig_bar_weight" if name == "weights" else "fig_bar_value", lang)
    if name == "weights":
        scale = dict(colorscale=_sequential(colour), zmin=0.0, zmax=float(a.max()) or 1.0)
    else:
        lim = _limit(a)
        scale = dict(colorscale=_diverging(colour), zmin=-lim, zmax=lim, zmid=0.0)
    bar = dict(title=dict(text=bar, side="right"), thickness=14, len=1.0)
    if name == "concat":
        fig = go.Figure([go.Heatmap(z=a[:, h * hd : (h + 1) * hd], x=x[h * hd : (h + 1) * hd], y=y, coloraxis="coloraxis", hoverongaps=False,
                                    hovertemplate=tpl.replace("{h}", str(h)) + "<extra></extra>") for h in range(H)])  # fmt: skip
        scale = {("c" + k[1:] if k.startswith("z") else k): v for k, v in scale.items()}  # zmin -> cmin ...
        fig.update_layout(coloraxis=dict(colorbar=bar, **scale))
    else:
        fig = go.Figure(go.Heatmap(z=a, x=x, y=y, customdata=custom, hovertemplate=tpl + "<extra></extra>", colorbar=bar, **scale))
    fig.update_xaxes(title_text=xa, type="category", tickangle=-60 if len(x) > 12 else 0, showgrid=False, automargin=True)
    fig.update_yaxes(title_text=ya, type="category", autorange="reversed", showgrid=False, automargin=True)
    q_unit, k_unit = t("fig_unit_token" if t2i else "fig_unit_patch", lang), t("fig_unit_patch" if t2i else "fig_unit_token", lang)
    title = t(f"fig_title_{name}", lang, q=q_unit, k=k_unit, shape="×".join(map(str, a.shape)), hd=hd, H=H)
    title += f"<br><sup>{t('fig_where', lang, layer=steps.layer, head=steps.head)}</sup>"
    _separators(fig, steps, name, x, y)
    if query is not None and name not in ("k", "v"):
        rows = [query] if isinstance(query, (int, np.integer)) else list(query)
        for r in rows:
            if not 0 <= r < len(y):
                raise ValueError(f"query {r} is out of range: there are {len(y)} queries (0..{len(y) - 1})")
            fig.add_shape(type="rect", x0=-0.5, x1=len(x) - 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color="#111827", width=2))
    return _layout(fig, title, colour, _height(len(y)))


def _separators(fig: go.Figure, steps, name: str, x: list, y: list) -> None:
    """Thin lines between the heads (concat) and between the patch grid's rows (patch axes).

    All the lines go into the layout at once: ``Figure.add_vline`` validates the whole layout
    on every call (10 lines took 70 ms of a 100 ms figure; once: under 5 ms)."""
    line = dict(color="rgba(17,24,39,0.35)", width=1)
    shapes = []

    def vline(at: float):
        shapes.append(dict(type="line", xref="x", yref="paper", x0=at, x1=at, y0=0, y1=1, line=line))

    def hline(at: float):
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=at, y1=at, line=line))

    if name == "concat":
        for h in range(1, steps.num_heads):
            vline(h * steps.head_dim - 0.5)
        h, hd = steps.head, steps.head_dim  # the head the other matrices show
        shapes.append(dict(type="rect", x0=h * hd - 0.5, x1=(h + 1) * hd - 0.5, y0=-0.5, y1=len(y) - 0.5,
                           line=dict(color=KIND_COLOURS["concat"], width=2)))  # fmt: skip
    gh, gw = steps.grid
    patches = gh * gw
    if gh > 1 and len(x) == patches and x[0] == "r0c0":
        for r in range(1, gh):
            vline(r * gw - 0.5)
    if gh > 1 and len(y) == patches and y[0] == "r0c0":
        for r in range(1, gh):
            hline(r * gw - 0.5)
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes])


# ---- 2. why ÷√d --------------------------------------------------------------------------------
@dataclass
class ScalingStats:
    """One query's softmax without and with ÷√d (then ÷ temperature)."""

    query: str
    temperature: float
    sqrt_d: float
    unscaled: np.ndarray  #: (Lk,) softmax(S[q])
    scaled: np.ndarray  #: (Lk,) softmax(S[q] / √d / temperature)
    max_unscaled: float
    max_scaled: float
    entropy_unscaled: float  #: bits; log2(Lk) = uniform, 0 = all on one key
    entropy_scaled: float
    uniform_entropy: float  #: log2(Lk)


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max())
    return e / e.sum()


def _bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0


def scaling_stats(steps, query_index: int | list[int], temperature: float = 1.0, label: str | None = None) -> ScalingStats:
    """The numbers behind :func:`scaling_figure`. At temperature 1, ``scaled`` is the model's row.

    ``query_index``: one query row, or several (a word's tokens: "红色" = 红 + 色), whose
    softmaxes are averaged as a word's map averages its tokens'. ``label`` names the query
    (default: the row's axis label, or the word of the rows)."""
    Lq = steps.scores.shape[0]
    rows = [int(query_index)] if isinstance(query_index, (int, np.integer)) else [int(r) for r in query_index]
    if not rows:
        raise ValueError("query_index must name at least one query row")
    for r in rows:
        if not 0 <= r < Lq:
            raise ValueError(f"query_index {r} is out of range: there are {Lq} queries (0..{Lq - 1})")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (got {temperature})")
    s = steps.scores[rows].astype(np.float64)  # (k, Lk)
    b = np.zeros_like(s) if getattr(steps, "bias", None) is None else steps.bias[rows].astype(np.float64)  # an AnchorBias, added either way
    rt = math.sqrt(steps.head_dim)
    p0 = np.mean([_softmax(r + c) for r, c in zip(s, b)], 0)
    p1 = np.mean([_softmax((r / rt + c) / temperature) for r, c in zip(s, b)], 0)
    if label is None:
        label = _query_name(steps, rows)
    return ScalingStats(label, float(temperature), rt, p0, p1, float(p0.max()), float(p1.max()),
                        _bits(p0), _bits(p1), math.log2(s.shape[1]))  # fmt: skip


def _query_name(steps, rows: list[int]) -> str:
    """The word whose tokens ``rows`` are (text -> image), else the first row's label."""
    if steps.direction == "text_to_image":
        for word, toks in zip(getattr(steps, "words", []), getattr(steps, "word_tokens", [])):
            if list(toks) == rows or (len(rows) == 1 and len(toks) == 1 and toks[0] == rows[0]):
                return word
    return query_labels(steps)[rows[0]]


def _p(p: float) -> str:
    """A weight, written so that 0.99997 does not read as 1.000."""
    return f"1 − {1 - p:.1e}" if 0.999 < p < 1 else f"{p:.3f}"


def _h(bits: float) -> str:
    return "< 0.001" if bits < 1e-3 else f"{bits:.3f}" if bits < 0.1 else f"{bits:.2f}"


def scaling_figure(steps, query_index: int | list[int], temperature: float = 1.0, *, lang: str = "en", label: str | None = None) -> go.Figure:
    """Why ÷√d: one query's softmax over the keys without ÷√d (left) and with ÷√d ÷ temperature
    (right), as bars on one shared scale from 0 to a little above the largest weight (so that
    0.18 against 0.07 is seen, not two slivers on a 0..1 axis); each panel's title gives its
    largest weight and entropy. ``query_index``: a row or a word's rows (see :func:`scaling_stats`)."""
    lang = _check_lang(lang)
    st = scaling_stats(steps, query_index, temperature, label)
    rows = [int(query_index)] if isinstance(query_index, (int, np.integer)) else [int(r) for r in query_index]
    s = steps.scores[rows].astype(np.float64).mean(0)  # a word's scores: the mean of its tokens' rows
    keys = key_labels(steps)
    hd, rt, tau = steps.head_dim, st.sqrt_d, st.temperature
    div = f"÷√{hd}" + (f" ÷ {tau:g}" if tau != 1 else "")
    formula = f"softmax(S / √{hd}{f' / {tau:g}' if tau != 1 else ''})"
    t0 = t("fig_scale_without", lang, top=_p(st.max_unscaled), bits=_h(st.entropy_unscaled))
    t1 = t("fig_scale_with", lang, div=div, formula=formula, top=_p(st.max_scaled), bits=_h(st.entropy_scaled))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=(t0, t1), horizontal_spacing=0.06)
    w = t("fig_bar_weight", lang)
    fig.add_bar(x=keys, y=st.unscaled, customdata=s.astype(np.float32), marker_color=NEGATIVE, name=t0.split("<br>")[0], row=1, col=1,
                hovertemplate=f"%{{x}}: S = %{{customdata:.3f}} → softmax(S) = %{{y:.3f}}<extra>{w}</extra>")  # fmt: skip
    tail = f" / {tau:g}" if tau != 1 else ""
    by = f" / {rt:.2f}{tail}"
    fig.add_bar(x=keys, y=st.scaled, customdata=np.stack([s, s / rt / tau], -1).astype(np.float32), marker_color=KIND_COLOURS["weights"],
                name=t1.split("<br>")[0], row=1, col=2,
                hovertemplate=f"%{{x}}: S / √{hd}{tail} = %{{customdata[0]:.3f}}{by} = %{{customdata[1]:.3f}} → softmax = %{{y:.3f}}<extra>{w}</extra>")  # fmt: skip
    top = max(st.max_unscaled, st.max_scaled)
    fig.update_yaxes(range=[0, min(1.02, top * 1.12) if top > 0 else 1.02], title_text=t("fig_scale_axis", lang), row=1, col=1)
    kax = _axis_title("patches" if steps.direction == "text_to_image" else "tokens", lang, "keys")
    fig.update_xaxes(type="category", title_text=kax, tickangle=-60 if len(keys) > 12 else 0, automargin=True)
    fig.update_layout(showlegend=False, bargap=0.1)
    fig.update_annotations(font=dict(size=13))
    title = t("fig_scale_title", lang, query=st.query)
    _layout(fig, title, KIND_COLOURS["weights"], 420)
    fig.update_layout(margin=dict(MARGIN, t=110))
    return fig


# ---- 3. one sentence per stage ------------------------------------------------------------------
def stage_sentences(direction: str = "text_to_image", head_dim: int | None = None) -> dict[str, dict[str, str]]:
    """One plain sentence per stage of ``SENTENCE_STAGES`` (keys "scores", "scaled", "weights",
    "head_output", "concat", "output"), each as ``{"en": ..., "zh": ...}``: what to look at.
    The first (Q·Kᵀ) introduces the library metaphor (query, key = the title on a book's
    spine, value = the book's content) that the others use. ``head_dim`` fills in √d."""
    short = {"text_to_image": "t2i", "image_to_text": "i2t"}.get(direction)
    if short is None:
        raise ValueError(f"direction must be one of text_to_image, image_to_text (got {direction!r})")
    out = {}
    for k in SENTENCE_STAGES:
        out[k] = {}
        for lang in LANGS:
            rt = "" if head_dim is None else t("fig_sqrt_d", lang, hd=head_dim, rt=math.sqrt(head_dim))
            out[k][lang] = t(f"stage_sentence_{short}_{k}", lang, rt=rt)
    return out


# ---- 4. positions ---------------------------------------------------------------------------------
def _pe_matrix(pe) -> np.ndarray:
    a = np.asarray(getattr(pe, "pe", pe), np.float64)
    if a.ndim != 2 or a.shape[1] % 2:
        raise ValueError(f"pe must be a (positions, dimensions) matrix with an even number of dimensions (got shape {a.shape})")
    return a


def _pe_height(n: int) -> int:
    return int(min(720, max(240, n * 14)) + MARGIN["t"] + MARGIN["b"] + 20)


def pe_figure(pe, *, lang: str = "en", base: float = 10000.0) -> go.Figure:
    """The sinusoidal PE matrix, positions (rows) × dimensions (columns), from
    :func:`~mmattn.explain.positional_1d` (or any (n, dim) array of such encodings).

    Hover: ``PE(pos=3, 2i=4) = sin(3 / 10000^(4/64)) = 0.123`` (cos on the odd dimensions
    2i+1). Drawn as two heat maps on one colour bar, the sin columns and the cos columns (the
    other's cells left empty), so that each has its own formula. Height grows with positions."""
    lang = _check_lang(lang)
    a = _pe_matrix(pe)
    n, dim = a.shape
    cols = np.arange(dim)
    two_i = np.broadcast_to(cols - cols % 2, a.shape).astype(np.int16)  # the "2i" of each column
    fig = go.Figure()
    for odd, fn in ((0, "sin"), (1, "cos")):
        z = np.where(cols % 2 == odd, a, np.nan).astype(np.float32)
        label = "2i+1" if odd else "2i"
        tpl = f"PE(pos=%{{y}}, {label}=%{{x}}) = {fn}(%{{y}} / {base:g}^(%{{customdata}}/{dim})) = %{{z:.3f}}<extra>{fn}</extra>"
        fig.add_heatmap(z=z, x=cols, y=np.arange(n), customdata=two_i, hovertemplate=tpl, hoverongaps=False, coloraxis="coloraxis")
    fig.update_layout(coloraxis=dict(colorscale=_diverging(KIND_COLOURS["scores"]), cmin=-1, cmax=1, cmid=0,
                                     colorbar=dict(title=dict(text="PE", side="right"), thickness=14)))  # fmt: skip
    fig.update_xaxes(title_text=t("fig_pe_x", lang),
                     showgrid=False, zeroline=False)  # fmt: skip
    fig.update_yaxes(title_text=t("fig_pe_y", lang), autorange="reversed", showgrid=False, zeroline=False)
    title = t("fig_pe_title", lang, n=n, dim=dim)
    return _layout(fig, title, None, _pe_height(n))


def pe_similarity_figure(pe, *, lang: str = "en") -> go.Figure:
    """PE·PEᵀ (positions × positions): every diagonal is constant, since the dot product of
    two positions' encodings depends only on their distance |i − j|. Hover shows i, j, |i − j|
    and the value."""
    lang = _check_lang(lang)
    a = _pe_matrix(pe)
    n, dim = a.shape
    sim = a @ a.T  # (n, n)
    i = np.arange(n)
    dist = np.abs(i[:, None] - i[None, :]).astype(np.int16)
    tpl = "PE_%{y} · PE_%{x} = %{z:.3f}<br>|i − j| = |%{y} − %{x}| = %{customdata}<extra></extra>"
    lim = _limit(sim)
    scale = (dict(colorscale=_diverging(KIND_COLOURS["scores"]), zmin=-lim, zmax=lim, zmid=0.0) if sim.min() < 0
             else dict(colorscale=_sequential(KIND_COLOURS["scores"]), zmin=0.0, zmax=lim))  # fmt: skip
    fig = go.Figure(go.Heatmap(z=sim.astype(np.float32), x=i, y=i, customdata=dist, hovertemplate=tpl,
                               colorbar=dict(title=dict(text="PE·PEᵀ", side="right"), thickness=14), **scale))  # fmt: skip
    fig.update_xaxes(title_text=t("fig_sim_x", lang), showgrid=False, zeroline=False)  # no square aspect: the figure fills its card
    fig.update_yaxes(title_text=t("fig_sim_y", lang), autorange="reversed", showgrid=False, zeroline=False)
    title = t("fig_sim_title", lang, n=n, dim=dim)
    _layout(fig, title, None, _pe_height(n))
    fig.update_layout(margin=dict(MARGIN, t=100))  # a three-line title: room above the plot
    return fig


def pe_dims_figure(pe, dims: list[int] | None = None, *, lang: str = "en") -> go.Figure:
    """A few dimensions of the PE matrix across positions, one line each: the low dimensions
    flicker (short wavelengths), the high ones drift (long ones). ``dims`` default: 0, 1, d/2,
    d-2, d-1."""
    lang = _check_lang(lang)
    a = _pe_matrix(pe)
    n, dim = a.shape
    dims = sorted({0, 1, dim // 2, dim - 2, dim - 1}) if dims is None else [int(d) for d in dims]
    fig = go.Figure()
    for d in dims:
        kind = "sin" if d % 2 == 0 else "cos"
        fig.add_trace(go.Scatter(x=np.arange(n), y=a[:, d].astype(np.float32), mode="lines", name=f"d{d} ({kind})",
                                 hovertemplate=f"PE(pos=%{{x}}, {d}) = %{{y:.3f}}<extra>d{d} ({kind})</extra>"))  # fmt: skip
    fig.update_xaxes(title_text=t("fig_dims_x", lang))
    fig.update_yaxes(title_text=t("fig_dims_y", lang), range=[-1.1, 1.1])
    title = t("fig_dims_title", lang)
    _layout(fig, title, None, 420)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0), margin=dict(MARGIN, b=110))
    return fig


# ---- what a hover shows -----------------------------------------------------------------------------
_FIELD = re.compile(r"%\{(x|y|z|customdata|meta)((?:\[\d+\])*)(?::([^}]*))?\}")


def hover_text(fig: go.Figure, row: int, col: int | None = None, *, trace: int = 0) -> str:
    """The text Plotly shows when hovering cell (row, col) of heat map ``trace`` (or bar ``row``
    of a bar trace: leave ``col`` None), rendered here from the trace's ``hovertemplate`` (the
    subset of its syntax this module uses). For tests and for exporting a cell's explanation."""
    t = fig.data[trace]
    if t.type == "heatmap":
        z = np.asarray(t.z)[row][col]
        xs, ys = list(t.x) if t.x is not None else None, list(t.y) if t.y is not None else None
        x, y = (xs[col] if xs else col), (ys[row] if ys else row)
        cd = None if t.customdata is None else np.asarray(t.customdata)[row][col]
    else:
        x, y, z = list(t.x)[row], list(t.y)[row], None
        cd = None if t.customdata is None else np.asarray(t.customdata)[row]
    values = {"x": x, "y": y, "z": z, "customdata": cd, "meta": t.meta}

    def sub(m: re.Match) -> str:
        v = values[m.group(1)]
        for k in re.findall(r"\d+", m.group(2) or ""):
            v = v[int(k)]
        fmt = m.group(3)
        if isinstance(v, (np.integer, np.floating)):
            v = v.item()
        if fmt:
            return format(int(v), "d") if fmt == "d" else format(float(v), fmt)
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    text = _FIELD.sub(sub, t.hovertemplate)
    text = re.sub(r"<extra>.*?</extra>", "", text)
    return text.replace("<br>", "\n")
