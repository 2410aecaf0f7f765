"""The numbers behind the demo's "Step by step", "Heads & layers" and "Positions" views.

Everything here reads a :class:`~mmattn.trace.Trace` (one forward pass, recorded) and, for
the step-by-step view, recomputes with the model's own weights what one fusion attention did
to the inputs the trace recorded. It returns plain numpy arrays in dataclasses (no pictures;
see :mod:`mmattn.viz` for those). Nothing here runs the model.

Index letters: T tokens (specials included), P patches (= gh * gw), W words, L fusion layers,
H heads, hd head width (= D // H), D model width.

- :func:`attention_steps`: the three stages of one head of one fusion layer's cross-attention
  (Q, K, V -> Q Kᵀ -> / √hd -> row-wise softmax -> weighted sum of V -> concatenated heads ->
  out_proj), checked against what the model itself computed.
- :func:`head_maps`: one word's map under every head of a layer, and their mean.
- :func:`layer_head_maps`: one word in every (layer, head), in both directions.
- :func:`positional_1d`, :func:`grid_similarity`: the sinusoidal encodings and how similar
  positions are to each other (1-D for words, 2-D for the image's patch grid).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from mmattn.api.grounder import Grounder
from mmattn.api.image import load_image
from mmattn.api.maps import maps_at_size  # noqa: F401 -- re-exported for the displays
from mmattn.api.processor import Caption
from mmattn.api.trace import DIRECTIONS, Trace
from mmattn.nn.positional import sinusoidal_1d, sinusoidal_2d

__all__ = ["DIRECTIONS", "Caption", "attention_steps", "grid_similarity", "head_maps", "layer_head_maps", "model_grid",
           "positional_1d", "read_caption", "resolve_word"]  # fmt: skip


# ---- words and tokens ---------------------------------------------------------------
def read_caption(grounder: Grounder, caption: str) -> Caption:
    """``caption`` as the grounder's processor reads it (the words ``ground`` reports)."""
    return grounder.processor.caption(caption)


def resolve_word(words: list[str], word: int | str | None) -> int:
    """Index of ``word`` in ``words``: an index (int or digits), a label ``"3:red"`` or the
    word itself (its first occurrence). ``None`` or ``""`` means the first word."""
    if not words:
        raise ValueError("the caption has no words (only punctuation?): type a few words")
    if word is None or (isinstance(word, str) and not word.strip()):
        return 0
    if isinstance(word, str):
        word = word.strip()
        head, sep, rest = word.partition(":")
        if sep and head.isdigit():
            word = int(head)
        elif word.lstrip("-").isdigit():
            word = int(word)
        elif word.lower() in words:
            return words.index(word.lower())
        else:
            shown = repr(word) if len(word) <= 80 else repr(word[:80]) + f"… ({len(word):,} characters)"
            raise ValueError(f"{shown} is not one of the caption's words {words}: pick one of them (or its index)")
    if isinstance(word, (int, np.integer)) and not isinstance(word, bool):
        if not 0 <= word < len(words):  # as the message says: no counting from the end
            raise ValueError(f"word index {word} out of range: the caption has {len(words)} words (0..{len(words) - 1})")
        return int(word)
    raise TypeError(f"word must be an index or a string, got {type(word).__name__}")


# ---- 1. the three stages of one head -------------------------------------------------
@dataclass
class AttentionSteps:
    """One head of one fusion layer's cross-attention, stage by stage.

    For ``direction="text_to_image"`` the queries are the T tokens and the keys/values the P
    patches (each word looks for its region); for ``"image_to_text"`` it is the other way
    round. Below, Lq / Lk are the number of queries / keys.

    A layer that computes only attention weights (image -> text in the last fusion layer,
    whose output nothing reads: :class:`~mmattn.attention.AttentionWeights`) has no stage 3:
    ``v``, ``head_output``, ``concat``, ``output`` and ``model_output`` are None there.
    """

    direction: str
    layer: int
    head: int
    num_heads: int
    head_dim: int  #: hd = D / H
    dim: int  #: D
    tokens: list[str]  #: the T tokens, specials included
    words: list[str]
    word_tokens: list[list[int]]  #: token positions of each word
    grid: tuple[int, int]  #: (gh, gw)
    q: np.ndarray  #: (Lq, hd) this head's queries
    k: np.ndarray  #: (Lk, hd) this head's keys
    v: np.ndarray | None  #: (Lk, hd) this head's values
    scores: np.ndarray  #: (Lq, Lk) = q @ k.T: every query-key dot product at once
    scaled: np.ndarray  #: (Lq, Lk) = scores / sqrt(hd) (+ ``bias`` in a layer with an AnchorBias): what the softmax reads
    weights: np.ndarray  #: (Lq, Lk) row-wise softmax of ``scaled``: each row sums to 1
    model_weights: np.ndarray  #: (Lq, Lk) the weights the model returned for this head
    head_output: np.ndarray | None  #: (Lq, hd) = weights @ v: weighted sums of the value rows
    concat: np.ndarray | None  #: (Lq, D) every head's output side by side
    output: np.ndarray | None  #: (Lq, D) = out_proj(concat)
    model_output: np.ndarray | None  #: (Lq, D) what the layer's attention module returned
    all_weights: np.ndarray = field(repr=False, default=None)  #: (H, Lq, Lk) every head's weights
    #: (Lq, Lk) the AnchorBias this layer adds to every head's scaled scores (mmattn.nn.anchor):
    #: a penalty outside the relation's wedge for the words naming the referent; None without one
    bias: np.ndarray | None = None

    @property
    def max_weight_error(self) -> float:
        """Largest |our softmax - the model's weights| (should be ~1e-7)."""
        return float(np.abs(self.weights - self.model_weights).max())

    @property
    def reads_values(self) -> bool:
        """Whether this attention has stage 3 (values and an output)."""
        return self.v is not None

    @property
    def max_output_error(self) -> float | None:
        """Largest |our out_proj(concat) - the model's attention output| (None without stage 3)."""
        return float(np.abs(self.output - self.model_output).max()) if self.reads_values else None

    def shapes(self) -> dict[str, list[int]]:
        names = ("q", "k", "v", "scores", "scaled", "weights", "head_output", "concat", "output")
        return {n: list(getattr(self, n).shape) for n in names if getattr(self, n) is not None}

    def word_row(self, name: str, word: int) -> np.ndarray:
        """Text -> image only: word ``word``'s row of ``scores``/``scaled``/``weights``
        (mean over its tokens) as a (gh, gw) map."""
        if self.direction != "text_to_image":
            raise ValueError("word rows over the patch grid exist for direction='text_to_image' only")
        rows = getattr(self, name)[self.word_tokens[word]]  # (k, P)
        return rows.mean(0).reshape(self.grid)

    def summary(self) -> dict:
        """Shapes and checks, JSON-serialisable."""
        return {
            "direction": self.direction, "layer": self.layer, "head": self.head, "num_heads": self.num_heads,
            "head_dim": self.head_dim, "dim": self.dim, "grid": list(self.grid), "tokens": self.tokens, "words": self.words,
            "shapes": self.shapes(), "scale": 1 / math.sqrt(self.head_dim),
            "row_sums": [round(float(s), 6) for s in self.weights.sum(1)],
            "max_weight_error": self.max_weight_error, "max_output_error": self.max_output_error,
        }  # fmt: skip


def attention_steps(grounder: Grounder, trace: Trace, layer: int | None = -1, head: int = 0,
                    direction: str = "text_to_image") -> AttentionSteps:  # fmt: skip
    """Recompute one head of fusion layer ``layer``'s cross-attention from its inputs.

    ``trace`` comes from ``grounder.trace(image, caption, inputs=True)``, which recorded the
    inputs of every fusion attention; Q, K, V come from the layer's own
    ``q_proj``/``k_proj``/``v_proj`` and the stages are spelled out in numpy (float64).
    ``weights`` must equal the attention the model returned (``model_weights``) and ``output``
    the module's output (see ``max_weight_error`` / ``max_output_error``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")
    if trace.inputs is None:
        raise ValueError("this trace has no attention inputs: trace it with grounder.trace(image, caption, inputs=True)")
    layer, head = trace.layer(layer), trace.head(head)
    mha = getattr(grounder.model.fusion[layer], direction)
    seen = trace.inputs[layer, direction]
    values = hasattr(mha, "v_proj")  # AttentionWeights (weights only) has no stage 3

    def heads_of(proj, a: np.ndarray) -> np.ndarray:
        """(L, D) -> this module's projection split into heads, (H, L, hd), float64."""
        W, b = proj.weight.detach().double().cpu().numpy(), proj.bias
        y = a.astype(np.float64) @ W.T + (0 if b is None else b.detach().double().cpu().numpy())
        return y.reshape(len(a), mha.num_heads, mha.head_dim).transpose(1, 0, 2)

    q_all, k_all = heads_of(mha.q_proj, seen.x), heads_of(mha.k_proj, seen.context)  # (H, Lq, hd), (H, Lk, hd)
    hd = mha.head_dim
    key_ok = seen.key_mask

    def softmax_rows(s: np.ndarray) -> np.ndarray:
        if key_ok is not None:
            s = np.where(key_ok, s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    scores_all = q_all @ k_all.transpose(0, 2, 1)  # (H, Lq, Lk)
    scaled_all = scores_all / math.sqrt(hd)
    if seen.bias is not None:  # a layer with an AnchorBias: the relation's side of the landmark, added to every head
        scaled_all = scaled_all + seen.bias.astype(np.float64)
    weights_all = softmax_rows(scaled_all)
    model_w = getattr(trace, direction)[layer][head]
    f = np.float32
    stage3 = dict(v=None, head_output=None, concat=None, output=None, model_output=None)
    if values:
        v_all = heads_of(mha.v_proj, seen.context)
        heads_out = weights_all @ v_all  # (H, Lq, hd)
        concat = heads_out.transpose(1, 0, 2).reshape(heads_out.shape[1], -1)  # (Lq, D): head h in columns h*hd..(h+1)*hd
        W, b = mha.out_proj.weight.detach().double().cpu().numpy(), mha.out_proj.bias
        output = concat @ W.T + (0 if b is None else b.detach().double().cpu().numpy())
        stage3 = dict(v=v_all[head].astype(f), head_output=heads_out[head].astype(f), concat=concat.astype(f),
                      output=output.astype(f), model_output=seen.output)  # fmt: skip
    cap = trace.caption
    return AttentionSteps(
        direction=direction, layer=layer, head=head, num_heads=mha.num_heads, head_dim=hd, dim=mha.dim,
        tokens=cap.tokens, words=cap.words, word_tokens=cap.word_tokens, grid=tuple(trace.grid),
        q=q_all[head].astype(f), k=k_all[head].astype(f),
        scores=scores_all[head].astype(f), scaled=scaled_all[head].astype(f),
        weights=weights_all[head].astype(f), model_weights=model_w, all_weights=weights_all.astype(f), **stage3,
        bias=None if seen.bias is None else np.broadcast_to(seen.bias.astype(f), scaled_all.shape)[head].copy(),
    )  # fmt: skip


# ---- 2. one head against several -----------------------------------------------------
@dataclass
class HeadMaps:
    """Word ``word``'s text -> image map under each head of one layer, and their mean.

    Each head's row is a distribution over the P patches (sums to 1), so all maps share one
    scale: values are attention weights, not rescaled per head."""

    word: str
    word_index: int
    layer: int
    grid: tuple[int, int]
    heads: np.ndarray  #: (H, gh, gw)
    mean: np.ndarray  #: (gh, gw) = heads.mean(0)
    peaks: list[float]  #: each head's largest weight (a peaked head is confident, a flat one is not)
    entropy: list[float]  #: each head's entropy in bits (log2(P) = uniform)


def head_maps(trace: Trace, word: int | str | None = None, layer: int | None = -1) -> HeadMaps:
    """Text -> image maps of one word for every head of ``layer``, and their mean."""
    layer = trace.layer(layer)
    w = resolve_word(trace.words, word)
    a = trace.text_to_image[layer]  # (H, T, P)
    maps = a[:, trace.caption.word_tokens[w]].mean(1)  # (H, P)
    gh, gw = trace.grid
    ent = [float(-(m * np.log2(np.clip(m, 1e-12, None))).sum()) for m in maps]
    return HeadMaps(trace.words[w], w, layer, (gh, gw), maps.reshape(-1, gh, gw), maps.mean(0).reshape(gh, gw),
                    [float(m.max()) for m in maps], ent)  # fmt: skip


# ---- 3. every layer and head, both directions ---------------------------------------
@dataclass
class LayerHeadMaps:
    """One word in every (layer, head), both directions, on the patch grid.

    ``text_to_image[l, h]`` is where the word looks (its attention row over patches, sums to
    1 over the grid); ``image_to_text[l, h]`` is, for every patch, the weight that patch gives
    to the word (its tokens summed; each patch's weights over all tokens sum to 1)."""

    word: str
    word_index: int
    words: list[str]
    grid: tuple[int, int]
    text_to_image: np.ndarray  #: (L, H, gh, gw)
    image_to_text: np.ndarray  #: (L, H, gh, gw)


def layer_head_maps(trace: Trace, word: int | str | None = None) -> LayerHeadMaps:
    """One word in every (layer, head), both directions, on the patch grid."""
    w = resolve_word(trace.words, word)
    gh, gw = trace.grid
    toks = trace.caption.word_tokens[w]
    t2i = np.stack([a[:, toks].mean(1) for a in trace.text_to_image])  # (L, H, P)
    i2t = np.stack([a[:, :, toks].sum(2) for a in trace.image_to_text])  # (L, H, P)
    L, H = t2i.shape[:2]
    return LayerHeadMaps(trace.words[w], w, list(trace.words), (gh, gw), t2i.reshape(L, H, gh, gw), i2t.reshape(L, H, gh, gw))


# ---- 4. positions --------------------------------------------------------------------
@dataclass
class Positional1d:
    """Sinusoidal encodings of positions 0..n-1 in ``dim`` dimensions."""

    pe: np.ndarray  #: (n, dim), values in [-1, 1]
    similarity: np.ndarray  #: (n, n) = pe @ pe.T; constant along every diagonal (depends on |i - j| only)
    positions: list[int]  #: positions picked for ``curves``
    curves: np.ndarray  #: (len(positions), dim) their vectors

    @property
    def diagonal_spread(self) -> float:
        """Largest spread of values along any diagonal of ``similarity`` (~0: constant diagonals)."""
        n = len(self.similarity)
        return max((float(np.ptp(np.diagonal(self.similarity, k))) for k in range(-n + 1, n)), default=0.0)


def positional_1d(n: int = 32, dim: int = 64, positions: list[int] | None = None) -> Positional1d:
    if not 1 <= n <= 1024:
        raise ValueError(f"number of positions must be 1..1024 (got {n})")
    if not (2 <= dim <= 1024 and dim % 2 == 0):
        raise ValueError(f"dimension must be an even number 2..1024 (got {dim})")
    pe = sinusoidal_1d(n, dim).double().numpy()
    positions = [0, 1, min(2, n - 1), n // 2, n - 1] if positions is None else positions
    positions = list(dict.fromkeys(int(p) for p in positions))
    bad = [p for p in positions if not 0 <= p < n]
    if bad:
        raise ValueError(f"positions {bad} are outside 0..{n - 1}")
    return Positional1d(pe.astype(np.float32), (pe @ pe.T).astype(np.float32), positions, pe[positions].astype(np.float32))


def model_grid(grounder: Grounder, image=None) -> tuple[int, int]:
    """The (gh, gw) patch grid the model uses for ``image`` (a square image if None)."""
    if image is None:
        w = h = grounder.processor.image_size
    else:
        im = image if isinstance(image, Image.Image) else load_image(image)
        w, h = im.size
    return grounder.processor.grid(w, h)


@dataclass
class GridSimilarity:
    """Cosine similarity of every patch's 2-D positional encoding to one patch's."""

    grid: tuple[int, int]
    patch: tuple[int, int]  #: (row, col) of the reference patch
    dim: int
    source: str  #: "sinusoidal" or "learned" (the model's own table) ...
    similarity: np.ndarray  #: (gh, gw) in [-1, 1]; 1 at ``patch``
    encoding: np.ndarray  #: (gh * gw, dim) row-major


def grid_similarity(grid: tuple[int, int], row: int = 0, col: int = 0, dim: int = 64, grounder: Grounder | None = None) -> GridSimilarity:
    """How similar every patch's 2-D encoding is to patch (row, col)'s.

    With a ``grounder`` whose image encoder has positions, its own encodings are used
    (sinusoidal or learned, at its width); otherwise 2-D sinusoids of width ``dim``."""
    gh, gw = int(grid[0]), int(grid[1])
    if not (0 <= row < gh and 0 <= col < gw):
        raise ValueError(f"patch ({row}, {col}) is outside the {gh}x{gw} grid (rows 0..{gh - 1}, columns 0..{gw - 1})")
    pos = None if grounder is None else grounder.model.image_encoder.pos
    if pos is not None:
        with torch.no_grad():
            enc = pos(gh, gw).detach().double().cpu().numpy()
        source = grounder.model.config.image_positions
    else:
        if dim % 4:
            raise ValueError(f"dimension must be a multiple of 4 for 2-D sinusoids (got {dim})")
        enc = sinusoidal_2d(gh, gw, dim).double().numpy()
        source = "sinusoidal"
    unit = enc / np.clip(np.linalg.norm(enc, axis=1, keepdims=True), 1e-12, None)
    sim = unit @ unit[row * gw + col]
    return GridSimilarity((gh, gw), (row, col), enc.shape[1], source, sim.reshape(gh, gw).astype(np.float32), enc.astype(np.float32))


# ---- 5. positions off: what the encodings add ----------------------------------------------------
_NO_POSITIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> a grounder on its copy without positions


def without_positions(grounder: Grounder) -> Grounder:
    """A copy of ``grounder`` whose text and image encoders add no positional encodings (made
    once per model; the original is untouched, so other questions keep their positions)."""
    import copy

    if not grounder.has_positions:
        raise ValueError("this backend has no positional encodings of its own to switch off (CLIP's are part of its towers)")
    key = grounder.model
    if key not in _NO_POSITIONS:
        model = copy.deepcopy(grounder.model)
        model.text_encoder.pos = None
        model.image_encoder.pos = None
        for layer in model.fusion:  # an AnchorBias is made of positions too
            layer.anchor = None
        _NO_POSITIONS.clear()  # one copy at a time: the current model's
        _NO_POSITIONS[key] = type(grounder)(model, grounder.processor, name=f"{grounder.name} (positions off)", precision="float32")
    return _NO_POSITIONS[key]


@dataclass
class PositionsOff:
    """The same question with and without positional encodings."""

    words: list[str]
    maps_on: np.ndarray  #: (W, P) each word's map with positions (the shared scale of its caption)
    maps_off: np.ndarray  #: (W, P) the same without positions
    moved: list[float]  #: per word, how much of its map moved: half the L1 distance of the two maps as distributions (0..1)
    grounded_on: list[bool]
    grounded_off: list[bool]
    relation_on: float  #: the relation probes' score (> 0: the maps agree with "left of", ...)
    relation_off: float
    match_on: float
    match_off: float
    trace_off: Trace = field(repr=False)


def positions_off(trace: Trace, off: Trace, layer: int | None = None) -> PositionsOff:
    """Compare two answers to the same question: ``trace`` with positional encodings and
    ``off``, the second question asked of :func:`without_positions` (its own forward pass, its
    own trace: ``without_positions(grounder).trace(trace.image, trace.caption.text)``). Reads
    both traces; runs nothing."""
    if off.words != trace.words or off.grid != trace.grid:
        raise ValueError(f"the two traces answer different questions: words {trace.words} vs {off.words}, grid {trace.grid} vs {off.grid}")
    a, b = trace.grounding(layer=layer), off.grounding(layer=layer)

    def dist(m):
        s = m.sum(1, keepdims=True)
        return m / np.where(s > 0, s, 1)

    moved = (0.5 * np.abs(dist(a.patch_maps) - dist(b.patch_maps)).sum(1)).tolist()
    return PositionsOff(list(a.words), a.patch_maps, b.patch_maps, [float(x) for x in moved], a.grounded, b.grounded,
                        a.relation_score, b.relation_score, a.match_score, b.match_score, off)  # fmt: skip
