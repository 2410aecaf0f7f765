"""mmattn.teach.figures: every matrix is labelled by token / patch / dimension and has a colour bar,
hovering a cell shows the formula with the right numbers, ÷√d visibly changes the softmax,
the PE hover equals sin / cos computed directly, and the Chinese interface gets Chinese text.

On a tiny random checkpoint (hd = 8) and a non-square image (grid 8 × 12), so that a row /
column mix-up in the patch labels shows."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from app_fixtures import make_tiny_checkpoint, scene

from mmattn.api.grounder import Grounder
from mmattn.teach import figures as F
from mmattn.teach import recompute

CAPTION = "a red circle left of a blue square"  # "a" twice: its labels must stay unique
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = r"(-?\d+\.\d+(?:e[+-]?\d+)?)"


@pytest.fixture(scope="module")
def g(tmp_path_factory) -> Grounder:
    return Grounder.from_pretrained(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "m"), precision="float32")


@pytest.fixture(scope="module")
def trace(g):
    return g.trace(scene(150, 100), CAPTION, inputs=True)


@pytest.fixture(scope="module")
def steps(g, trace) -> dict[str, recompute.AttentionSteps]:
    """Layer 0, head 1, both directions (layer 0 has stage 3 in both)."""
    return {d: recompute.attention_steps(g, trace, 0, 1, d) for d in recompute.DIRECTIONS}


def _colorbar(fig) -> bool:
    t = fig.data[0]
    return ("coloraxis" in str(t.coloraxis) and fig.layout.coloraxis.colorbar is not None) or (t.showscale is not False and t.colorbar is not None)


# ---- labels -------------------------------------------------------------------------------------
def test_labels(steps):
    s = steps["text_to_image"]
    gh, gw = s.grid
    assert (gh, gw) == (8, 12)
    toks = F.token_labels(s.tokens)
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]" and "red" in toks and "a₂" in toks and len(set(toks)) == len(toks)
    patches = F.patch_labels(s.grid)
    assert len(patches) == gh * gw and patches[2 * gw + 5] == "r2c5" and patches[-1] == f"r{gh - 1}c{gw - 1}"
    assert F.query_labels(s) == toks and F.key_labels(s) == patches
    assert F.query_labels(steps["image_to_text"]) == patches and F.key_labels(steps["image_to_text"]) == toks


@pytest.mark.parametrize("direction", recompute.DIRECTIONS)
def test_every_matrix_is_labelled_with_a_colour_bar(steps, direction):
    s = steps[direction]
    toks, patches = set(F.token_labels(s.tokens)), set(F.patch_labels(s.grid))
    assert F.matrix_names(s) == list(F.MATRIX_NAMES)
    for name in F.MATRIX_NAMES:
        fig = F.matrix_figure(s, name)
        assert _colorbar(fig), name
        ticks = {str(v) for t in fig.data for v in [*t.x, *t.y]}
        assert toks <= ticks or patches <= ticks, name  # every token (or every patch) names a row or column
        if name in ("scores", "scaled", "weights"):  # queries against keys: both kinds of labels
            assert {"red", "[CLS]"} <= ticks and patches <= ticks, name
        if name in ("q", "k", "v", "head_output"):
            assert "d0" in ticks and f"d{s.head_dim - 1}" in ticks, name
        xt, yt = fig.layout.xaxis.title.text, fig.layout.yaxis.title.text
        assert xt and yt, name
        if name == "scores":
            q, k = ("tokens", "patches") if direction == "text_to_image" else ("patches", "tokens")
            assert yt.startswith(f"queries: {q}") and xt.startswith(f"keys: {k}")
        assert fig.layout.title.font.color == F.KIND_COLOURS[name]
        assert all(t.text is None for t in fig.data), "hover comes from a template, not one string per cell"


def test_colour_scales(steps):
    s = steps["text_to_image"]
    q, k, v = (F.matrix_figure(s, n) for n in ("q", "k", "v"))
    assert len({F.KIND_COLOURS[n] for n in ("q", "k", "v", "scores")}) == 4  # Q, K, V (and where they meet) tell apart
    for fig, name in ((q, "q"), (k, "k"), (v, "v")):
        t = fig.data[0]
        assert t.zmid == 0 and t.zmin == -t.zmax > -np.inf  # diverging, centred at 0
        assert t.colorscale[-1][1].lower() == F.KIND_COLOURS[name]  # positive end in the kind's hue
    w = F.matrix_figure(s, "weights").data[0]
    assert w.zmin == 0 and w.zmax == pytest.approx(float(s.weights.max()), rel=1e-6)  # sequential 0..max


def test_k_is_drawn_transposed(steps):
    s = steps["text_to_image"]
    t = F.matrix_figure(s, "k").data[0]
    assert np.asarray(t.z).shape == (s.head_dim, s.k.shape[0])
    assert list(t.x) == F.patch_labels(s.grid) and list(t.y)[0] == "d0"


# ---- hover: the formula with the live numbers ----------------------------------------------------
def test_scores_hover_has_formula_and_number(steps):
    s = steps["text_to_image"]
    fig = F.matrix_figure(s, "scores")
    i, p = s.tokens.index("red"), 3 * s.grid[1] + 5  # patch r3c5
    text = F.hover_text(fig, i, p)
    m = re.fullmatch(rf"S\[red, r3c5\] = q_red · k_r3c5 = {NUMBER}", text)
    assert m, text
    assert float(m.group(1)) == pytest.approx(float(s.scores[i, p]), abs=1e-3)


def test_scaled_and_weights_hover(steps):
    s = steps["image_to_text"]
    hd, rt = s.head_dim, math.sqrt(s.head_dim)
    p, j = 2 * s.grid[1] + 7, s.tokens.index("circle")  # query patch r2c7, key "circle"
    text = F.hover_text(F.matrix_figure(s, "scaled"), p, j)
    m = re.fullmatch(rf"S\[r2c7, circle\] / √{hd} = {NUMBER} / {rt:.2f} = {NUMBER}", text)
    assert m, text
    assert float(m.group(1)) == pytest.approx(float(s.scores[p, j]), abs=1e-3)
    assert float(m.group(2)) == pytest.approx(float(s.scaled[p, j]), abs=1e-3)
    text = F.hover_text(F.matrix_figure(s, "weights"), p, j)
    assert text.startswith("A[r2c7, circle] = softmax over row r2c7 → ") and "(row sums to 1)" in text, text
    w = float(re.search(rf"→ {NUMBER}", text).group(1))
    assert w == pytest.approx(float(s.weights[p, j]), abs=1e-3)
    num, den = (float(x) for x in re.search(r"= (\S+) / (\S+)$", text).groups())  # e^s / Σ_row e^s
    assert num / den == pytest.approx(float(s.weights[p, j]), rel=1e-3)


def test_concat_hover_names_the_head(steps):
    s = steps["text_to_image"]
    fig = F.matrix_figure(s, "concat")
    assert len(fig.data) == s.num_heads
    text = F.hover_text(fig, 2, 3, trace=2)  # head 2's column 3
    assert text.startswith("concat[red, h2·d3] = Z of head 2, row red = ")
    assert float(text.rsplit("= ", 1)[1]) == pytest.approx(float(s.concat[2, 2 * s.head_dim + 3]), abs=1e-3)


def test_query_outline_and_missing_stage_3(g, trace, steps):
    fig = F.matrix_figure(steps["text_to_image"], "weights", query=[2, 3])
    assert sum(sh.type == "rect" for sh in fig.layout.shapes) == 2
    with pytest.raises(ValueError, match="out of range"):
        F.matrix_figure(steps["text_to_image"], "scores", query=99)
    last = recompute.attention_steps(g, trace, -1, 0, "image_to_text")  # weights only: no V, no output
    assert F.matrix_names(last) == ["q", "k", "scores", "scaled", "weights"]
    with pytest.raises(ValueError, match="no stage 3"):
        F.matrix_figure(last, "v")
    with pytest.raises(ValueError, match="unknown matrix"):
        F.matrix_figure(last, "attention")
    with pytest.raises(ValueError, match="lang"):
        F.matrix_figure(last, "q", lang="fr")


# ---- why ÷√d ---------------------------------------------------------------------------------------
def test_scaling_changes_the_softmax(steps):
    s = steps["text_to_image"]
    i = s.tokens.index("red")
    st = F.scaling_stats(s, i)
    np.testing.assert_allclose(st.scaled, s.weights[i], atol=1e-5)  # temperature 1: the model's own row
    assert st.max_unscaled != pytest.approx(st.max_scaled, abs=1e-3)
    assert st.max_unscaled > st.max_scaled and st.entropy_unscaled < st.entropy_scaled  # ÷√d spreads the weights
    assert 0 <= st.entropy_unscaled <= st.uniform_entropy == pytest.approx(math.log2(len(F.key_labels(s))))
    hot, cold = F.scaling_stats(s, i, temperature=4.0), F.scaling_stats(s, i, temperature=0.25)
    assert hot.max_scaled < st.max_scaled < cold.max_scaled and hot.entropy_scaled > st.entropy_scaled
    assert hot.max_unscaled == st.max_unscaled  # the temperature divides the scaled scores only
    with pytest.raises(ValueError, match="temperature"):
        F.scaling_stats(s, i, temperature=0)
    with pytest.raises(ValueError, match="out of range"):
        F.scaling_stats(s, len(s.tokens))


def test_scaling_figure(steps):
    s = steps["text_to_image"]
    i = s.tokens.index("red")
    st = F.scaling_stats(s, i, 2.0)
    fig = F.scaling_figure(s, i, 2.0)
    left, right = (a.text for a in fig.layout.annotations)
    assert left.startswith("without ÷√d") and right.startswith(f"with ÷√{s.head_dim} ÷ 2")
    assert f"{st.max_unscaled:.3f}" in left and f"{st.max_scaled:.3f}" in right and "bits" in left and "bits" in right
    np.testing.assert_allclose(fig.data[0].y, st.unscaled)
    np.testing.assert_allclose(fig.data[1].y, st.scaled)
    assert list(fig.data[1].x) == F.patch_labels(s.grid)
    text = F.hover_text(fig, 7, trace=1)
    m = re.fullmatch(rf"r0c7: S / √{s.head_dim} / 2 = {NUMBER} / {math.sqrt(s.head_dim):.2f} / 2 = {NUMBER} → softmax = {NUMBER}", text)
    assert m, text
    assert float(m.group(2)) == pytest.approx(float(s.scores[i, 7]) / math.sqrt(s.head_dim) / 2, abs=1e-3)


def test_stage_sentences():
    for direction in recompute.DIRECTIONS:
        ss = F.stage_sentences(direction, head_dim=32)
        assert list(ss) == list(F.SENTENCE_STAGES)
        for v in ss.values():
            assert set(v) == {"en", "zh"} and v["en"] and CJK.search(v["zh"]) and not CJK.search(v["en"])
        assert "spine" in ss["scores"]["en"] and "书脊" in ss["scores"]["zh"]  # the metaphor, introduced once
        assert sum("spine" in v["en"] for v in ss.values()) == 1
        assert "√32 ≈ 5.66" in ss["scaled"]["en"]
    assert "patch" in F.stage_sentences("image_to_text")["weights"]["en"]


# ---- positions -------------------------------------------------------------------------------------
def test_pe_hover_equals_sin_cos():
    n, dim = 24, 64
    pe = recompute.positional_1d(n, dim)
    fig = F.pe_figure(pe)
    assert _colorbar(fig) and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert fig.layout.height > F.pe_figure(recompute.positional_1d(8, dim)).layout.height  # taller with more positions
    for pos, d in [(3, 4), (3, 5), (0, 1), (17, 0), (23, 63), (11, 30)]:
        two_i = d - d % 2
        fn, direct = ("sin", math.sin) if d % 2 == 0 else ("cos", math.cos)
        text = F.hover_text(fig, pos, d, trace=d % 2)
        label = "2i" if d % 2 == 0 else r"2i\+1"
        m = re.fullmatch(rf"PE\(pos={pos}, {label}={d}\) = {fn}\({pos} / 10000\^\({two_i}/{dim}\)\) = {NUMBER}", text)
        assert m, text
        assert float(m.group(1)) == pytest.approx(direct(pos / 10000 ** (two_i / dim)), abs=6e-4)
    # each heat map holds only its own columns: the other's cells are gaps (no hover there)
    assert np.isnan(np.asarray(fig.data[0].z, float)[:, 1::2]).all() and np.isnan(np.asarray(fig.data[1].z, float)[:, 0::2]).all()


def test_pe_similarity_hover():
    pe = recompute.positional_1d(16, 32)
    fig = F.pe_similarity_figure(pe.pe)  # a plain array works too
    assert _colorbar(fig)
    text = F.hover_text(fig, 3, 10)
    m = re.fullmatch(rf"PE_3 · PE_10 = {NUMBER}\n\|i − j\| = \|3 − 10\| = 7", text)
    assert m, text
    assert float(m.group(1)) == pytest.approx(float(pe.similarity[3, 10]), abs=1e-3)


# ---- Chinese, size, no gradio ------------------------------------------------------------------------
def test_chinese_titles(steps):
    s = steps["text_to_image"]
    figs = [F.matrix_figure(s, n, lang="zh") for n in F.MATRIX_NAMES]
    figs += [F.scaling_figure(s, 2, lang="zh"), F.pe_figure(recompute.positional_1d(8, 16), lang="zh"),
             F.pe_similarity_figure(recompute.positional_1d(8, 16), lang="zh")]  # fmt: skip
    for fig in figs:
        assert CJK.search(fig.layout.title.text), fig.layout.title.text
        assert CJK.search(fig.layout.xaxis.title.text) and CJK.search(fig.layout.yaxis.title.text)
    assert F.matrix_figure(s, "scores", lang="zh").layout.yaxis.title.text.startswith("查询")
    assert "最大权重" in figs[len(F.MATRIX_NAMES)].layout.annotations[0].text
    en = [F.matrix_figure(s, "weights"), F.scaling_figure(s, 2), F.pe_figure(recompute.positional_1d(8, 16))]
    assert not any(CJK.search(f.layout.title.text) for f in en)


def test_json_stays_small(steps):
    for s in steps.values():
        for name in F.MATRIX_NAMES:
            size = len(F.matrix_figure(s, name).to_json())
            cells = getattr(s, name).size
            # base64 float32: 5.3 bytes a number; z, and at most 3 more numbers a cell (the weights' e^s and sums)
            assert size < 6_000 + 22 * cells, (name, size, cells)
    j = json.loads(F.matrix_figure(steps["text_to_image"], "weights").to_json())
    assert "bdata" in j["data"][0]["z"] and len(json.dumps(j["layout"]["template"])) < 100  # typed arrays, not the 8 kB default template


def test_no_gradio_import():
    code = "import sys, mmattn.figures; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_pe_dims_figure_lines_and_legend():
    p = recompute.positional_1d(24, 16)
    fig = F.pe_dims_figure(p)
    names = [t.name for t in fig.data]
    assert names == ["d0 (sin)", "d1 (cos)", "d8 (sin)", "d14 (sin)", "d15 (cos)"]
    np.testing.assert_allclose(fig.data[1].y, p.pe[:, 1], atol=1e-6)
    assert fig.layout.legend.orientation == "h"  # below the plot, never clipped by its frame
    assert "位置" in F.pe_dims_figure(p, lang="zh").layout.xaxis.title.text
