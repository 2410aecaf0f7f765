"""The numbers behind the demo's "Step by step", "Heads & layers" and "Positions" views.

Everything here recomputes, with the model's own weights, what one fusion layer does on the
current input, and returns plain numpy arrays in dataclasses (no pictures; see
:mod:`mmattn.viz` for those).

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
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .grounding import Grounder, _is_punctuation
from .image import load_image, target_size
from .maps import maps_at_size  # noqa: F401 -- re-exported for the displays
from .positional import sinusoidal_1d, sinusoidal_2d

DIRECTIONS = ("text_to_image", "image_to_text")


# ---- words and tokens ---------------------------------------------------------------
@dataclass
class Caption:
    """How the model reads a caption: its tokens, and which tokens make up each word.

    ``words`` are the words :meth:`Grounder.ground` reports (punctuation dropped), and
    ``word_tokens[i]`` the token positions (in ``tokens``) of word ``i``."""

    tokens: list[str]
    words: list[str]
    word_tokens: list[list[int]]
    truncated: bool


def read_caption(grounder: Grounder, caption: str) -> Caption:
    """Tokenise ``caption`` exactly as :meth:`Grounder.ground` does."""
    grounder._check_caption(caption)
    enc = grounder._encode([caption])
    words_all, word_ids = enc.words[0], enc.word_ids[0]
    keep = [w for w, word in enumerate(words_all) if not _is_punctuation(word)]
    tokens = grounder.tokenizer.convert_ids_to_tokens(enc.ids[0].tolist())
    word_tokens = [[t for t, wid in enumerate(word_ids) if wid == w] for w in keep]
    return Caption(tokens, [words_all[w] for w in keep], word_tokens, bool(enc.truncated[0]))


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
            raise ValueError(f"{word!r} is not one of the caption's words {words}: pick one of them (or its index)")
    if isinstance(word, (int, np.integer)) and not isinstance(word, bool):
        if not -len(words) <= word < len(words):
            raise ValueError(f"word index {word} out of range: the caption has {len(words)} words (0..{len(words) - 1})")
        return int(word) % len(words)
    raise TypeError(f"word must be an index or a string, got {type(word).__name__}")


# ---- running the model with a look inside --------------------------------------------
def _inputs(grounder: Grounder, image, caption: str):
    pil = load_image(image)
    px = grounder._pixels([pil]).to(grounder.device)  # the grounder's own preprocessing (CLIP has its own)
    enc = grounder._encode([caption])
    return pil, px, enc.ids.to(grounder.device), enc.attention_mask.to(grounder.device)


def _run(grounder: Grounder, image, caption: str, hook_module=None):
    """Forward pass with fusion attentions; if ``hook_module`` is given, capture its
    inputs (x, context, mask) and output."""
    pil, px, ids, mask = _inputs(grounder, image, caption)
    seen: dict = {}

    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs["x"]
        context = args[1] if len(args) > 1 else kwargs.get("context")
        attn_mask = args[2] if len(args) > 2 else kwargs.get("mask")
        seen.update(
            x=x.detach(),
            context=(x if context is None else context).detach(),
            mask=attn_mask,
            output=(output[0] if isinstance(output, tuple) else output).detach(),
        )

    handle = hook_module.register_forward_hook(hook, with_kwargs=True) if hook_module is not None else None
    try:
        with torch.inference_mode():
            out = grounder.model(ids, px, mask, output_fusion_attentions=True)
    finally:
        if handle is not None:
            handle.remove()
    return pil, out, seen


def _layer(grounder: Grounder, layer: int | None) -> int:
    L = grounder.num_layers
    layer = -1 if layer is None else layer
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not -L <= layer < L:
        raise ValueError(f"layer {layer!r} does not exist: the model has {L} fusion layers (0..{L - 1})")
    return int(layer) % L


def _head(grounder: Grounder, head: int) -> int:
    H = grounder.num_heads
    if not isinstance(head, (int, np.integer)) or isinstance(head, bool) or not 0 <= head < H:
        raise ValueError(f"head {head!r} does not exist: the model has {H} heads per layer (0..{H - 1})")
    return int(head)


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
    scaled: np.ndarray  #: (Lq, Lk) = scores / sqrt(hd)
    weights: np.ndarray  #: (Lq, Lk) row-wise softmax of ``scaled``: each row sums to 1
    model_weights: np.ndarray  #: (Lq, Lk) the weights the model returned for this head
    head_output: np.ndarray | None  #: (Lq, hd) = weights @ v: weighted sums of the value rows
    concat: np.ndarray | None  #: (Lq, D) every head's output side by side
    output: np.ndarray | None  #: (Lq, D) = out_proj(concat)
    model_output: np.ndarray | None  #: (Lq, D) what the layer's attention module returned
    all_weights: np.ndarray = field(repr=False, default=None)  #: (H, Lq, Lk) every head's weights

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


def attention_steps(grounder: Grounder, image, caption: str, layer: int | None = -1, head: int = 0,
                    direction: str = "text_to_image") -> AttentionSteps:  # fmt: skip
    """Recompute one head of fusion layer ``layer``'s cross-attention from its inputs.

    The inputs are captured with a forward hook on the layer's attention module; then Q, K, V
    come from its own ``q_proj``/``k_proj``/``v_proj`` and the stages are spelled out in numpy.
    ``weights`` must equal the attention the model returns (``model_weights``) and ``output``
    the module's output (see ``max_weight_error`` / ``max_output_error``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")
    layer, head = _layer(grounder, layer), _head(grounder, head)
    cap = read_caption(grounder, caption)
    mha = getattr(grounder.model.fusion[layer], direction)
    _, out, seen = _run(grounder, image, caption, hook_module=mha)
    x, ctx = seen["x"], seen["context"]  # (1, Lq, D), (1, Lk, D)
    values = hasattr(mha, "v_proj")  # AttentionWeights (weights only) has no stage 3
    with torch.inference_mode():
        q_all = mha.split_heads(mha.q_proj(x))[0]  # (H, Lq, hd)
        k_all = mha.split_heads(mha.k_proj(ctx))[0]  # (H, Lk, hd)
        v_all = mha.split_heads(mha.v_proj(ctx))[0] if values else None
    q_all, k_all = q_all.double().cpu().numpy(), k_all.double().cpu().numpy()
    hd = mha.head_dim
    key_ok = None
    if seen["mask"] is not None:  # (1, 1, 1, Lk) True = may attend
        key_ok = seen["mask"].reshape(-1).cpu().numpy().astype(bool)

    def softmax_rows(s: np.ndarray) -> np.ndarray:
        if key_ok is not None:
            s = np.where(key_ok, s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    scores_all = q_all @ k_all.transpose(0, 2, 1)  # (H, Lq, Lk)
    weights_all = softmax_rows(scores_all / math.sqrt(hd))
    model_w = getattr(out, direction)[layer][0, head].float().cpu().numpy()
    f = np.float32
    stage3 = dict(v=None, head_output=None, concat=None, output=None, model_output=None)
    if values:
        v_all = v_all.double().cpu().numpy()
        heads_out = weights_all @ v_all  # (H, Lq, hd)
        concat = heads_out.transpose(1, 0, 2).reshape(heads_out.shape[1], -1)  # (Lq, D): head h in columns h*hd..(h+1)*hd
        W, b = mha.out_proj.weight.detach().double().cpu().numpy(), mha.out_proj.bias
        output = concat @ W.T + (0 if b is None else b.detach().double().cpu().numpy())
        stage3 = dict(v=v_all[head].astype(f), head_output=heads_out[head].astype(f), concat=concat.astype(f),
                      output=output.astype(f), model_output=seen["output"][0].float().cpu().numpy())  # fmt: skip
    return AttentionSteps(
        direction=direction, layer=layer, head=head, num_heads=mha.num_heads, head_dim=hd, dim=mha.dim,
        tokens=cap.tokens, words=cap.words, word_tokens=cap.word_tokens, grid=tuple(out.grid),
        q=q_all[head].astype(f), k=k_all[head].astype(f),
        scores=scores_all[head].astype(f), scaled=(scores_all[head] / math.sqrt(hd)).astype(f),
        weights=weights_all[head].astype(f), model_weights=model_w, all_weights=weights_all.astype(f), **stage3,
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


def head_maps(grounder: Grounder, image, caption: str, word: int | str | None = None, layer: int | None = -1) -> HeadMaps:
    """Text -> image maps of one word for every head of ``layer``, and their mean."""
    layer = _layer(grounder, layer)
    cap = read_caption(grounder, caption)
    w = resolve_word(cap.words, word)
    _, out, _ = _run(grounder, image, caption)
    a = out.text_to_image[layer][0].float().cpu().numpy()  # (H, T, P)
    maps = a[:, cap.word_tokens[w]].mean(1)  # (H, P)
    gh, gw = out.grid
    ent = [float(-(m * np.log2(np.clip(m, 1e-12, None))).sum()) for m in maps]
    return HeadMaps(cap.words[w], w, layer, (gh, gw), maps.reshape(-1, gh, gw), maps.mean(0).reshape(gh, gw),
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


def layer_head_maps(grounder: Grounder, image, caption: str, word: int | str | None = None) -> LayerHeadMaps:
    cap = read_caption(grounder, caption)
    w = resolve_word(cap.words, word)
    _, out, _ = _run(grounder, image, caption)
    gh, gw = out.grid
    toks = cap.word_tokens[w]
    t2i = np.stack([a[0].float().cpu().numpy()[:, toks].mean(1) for a in out.text_to_image])  # (L, H, P)
    i2t = np.stack([a[0].float().cpu().numpy()[:, :, toks].sum(2) for a in out.image_to_text])  # (L, H, P)
    L, H = t2i.shape[:2]
    return LayerHeadMaps(cap.words[w], w, cap.words, (gh, gw), t2i.reshape(L, H, gh, gw), i2t.reshape(L, H, gh, gw))


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
    cfg = grounder.model.config
    if image is None:
        w = h = cfg.image_size
    else:
        im = image if isinstance(image, Image.Image) else load_image(image)
        w, h = im.size
    tw, th = target_size(w, h, cfg.image_size, cfg.patch_size)
    return th // cfg.patch_size, tw // cfg.patch_size


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
