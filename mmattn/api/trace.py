"""The record of one forward pass: :class:`Trace`, and the readings every view takes from it.

``Grounder.trace(image, caption)`` runs the model once and keeps everything a view needs:
the words and their tokens, the image geometry, every fusion layer's attention in both
directions and every head, the match / grounded / relation outputs, and, when asked, the
gradient of the match logit (Grad-CAM) and the inputs of each fusion attention (the
step-by-step view). :meth:`Trace.grounding` reads a :class:`~mmattn.result.Grounding`
from it for any method, layer and heads without running the model again; so do
:mod:`mmattn.explain`, :mod:`mmattn.evaluate` and every view of the demo.

Index letters: T tokens (specials included), W words (punctuation dropped), P patches
(= gh * gw), H heads, L fusion layers, D model width, Lq / Lk queries / keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from mmattn.api.backend import WorldVerdict
from mmattn.api.grounding import Grounding, RawAttention
from mmattn.api.inputs import DEFAULT_LAYER, check_head, check_heads, check_layer  # noqa: F401 -- DEFAULT_LAYER: read from here too
from mmattn.api.maps import boxes_from_maps, evidence_maps, reduce_heads, word_matrix
from mmattn.api.phrases import find_phrases, ground_phrases, phrase_located, phrase_maps, phrase_score
from mmattn.api.processor import Caption
from mmattn.api.words import unknown_word_message
from mmattn.models.tokenizer import MAX_TOKENS

METHODS = ("attention", "rollout", "gradcam")  #: every backend's map methods (the CLIP backend adds "legrad")
BACKWARD_METHODS = ("gradcam", "legrad")  #: methods whose trace needs a backward pass (``gradients=True``)
DIRECTIONS = ("text_to_image", "image_to_text")
GROUNDED_THRESHOLD = 0.5  #: a word is grounded when its grounded probability is above this


@dataclass
class AttentionInputs:
    """What one fusion attention module received and returned (for recomputing it)."""

    x: np.ndarray  #: (Lq, D) the queries' stream
    context: np.ndarray  #: (Lk, D) the keys' and values' stream
    key_mask: np.ndarray | None  #: (Lk,) bool, True = may attend (None: every key)
    output: np.ndarray | None  #: (Lq, D) the module's output (None where it computes weights only)
    #: (Lq, Lk) the relative-position term added to the scores (an AnchorBias), or None
    bias: np.ndarray | None = None


@dataclass
class Trace:
    """One forward pass of a grounding model on one (image, caption)."""

    caption: Caption  #: words, tokens, and which tokens make each word
    image: Image.Image = field(repr=False)  #: the RGB image that was grounded
    model_size: tuple[int, int]  #: (width, height) the model saw
    grid: tuple[int, int]  #: (gh, gw); patch (r, c) is index r * gw + c
    text_to_image: list[np.ndarray] = field(repr=False)  #: L x (H, T, P): each token's map over the patches
    image_to_text: list[np.ndarray] = field(repr=False)  #: L x (H, P, T): each patch's distribution over the tokens
    grounded_logits: np.ndarray = field(repr=False)  #: (T,) is each token located in the image
    match_logit: float  #: does the caption describe the image
    relation_logit: float = 0.0  #: the relation probes' part of ``match_logit``
    unknown_words: list[str] = field(default_factory=list)  #: reported words the model's vocabulary lacks
    #: L x (H, T, P) d(match logit)/d(text_to_image), with ``gradients=True`` (Grad-CAM)
    gradients: list[np.ndarray] | None = field(default=None, repr=False)
    #: (T, P) LeGrad relevance of each token in the vision tower, with ``gradients=True`` on
    #: backends that have it (the CLIP backend: mmattn.legrad); not normalised
    legrad: np.ndarray | None = field(default=None, repr=False)
    #: (layer, direction) -> that fusion attention's inputs, with ``inputs=True`` (step by step)
    inputs: dict[tuple[int, str], AttentionInputs] | None = field(default=None, repr=False)
    model_name: str = ""
    precision: str = "float32"  #: the arithmetic of this forward pass
    notice: str | None = None  #: what the user should know about this result (e.g. truncated caption)
    #: whether the image looks like the model's training world (None: the backend does not check)
    world: WorldVerdict | None = None
    suggestions: dict[str, str] = field(default_factory=dict)  #: unknown word -> a close known word ("did you mean")
    #: the last fusion layer applied the caption's relation to its maps (an AnchorBias): its
    #: maps of the referent's words follow what the caption says, the first layer's do not
    anchored: bool = False
    #: readings already made (a trace is read many times by the demo): key -> value
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def out_of_world(self) -> bool:
        """The image is not from the world the model knows: nothing is marked grounded."""
        return self.world is not None and not self.world.in_world

    def notices(self) -> list[str]:
        """Everything the user should know about this trace, in plain English sentences (the
        library's record; the demo's sentences, English and Chinese, are ``mmattn.teach.views.notes``)."""
        out = []
        if self.out_of_world:
            out.append(out_of_world_message(self.world))
        if self.notice:
            out.append(self.notice[0].upper() + self.notice[1:] + ".")
        out += [unknown_word_message(w, self.suggestions.get(w)) for w in dict.fromkeys(self.unknown_words)]
        return out

    # ---- what it is ------------------------------------------------------------------
    @property
    def words(self) -> list[str]:
        return self.caption.words

    @property
    def tokens(self) -> list[str]:
        return self.caption.tokens

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the grounded image."""
        return self.image.size

    @property
    def num_layers(self) -> int:
        return len(self.text_to_image)

    @property
    def num_heads(self) -> int:
        return self.text_to_image[0].shape[0]

    @property
    def match_score(self) -> float:
        """Probability that the caption describes the image."""
        return 1 / (1 + math.exp(-self.match_logit))

    @property
    def grounded_scores(self) -> list[float]:
        """Each word's probability of being located in the image: its least located token's
        (:func:`~mmattn.api.maps.word_minimum`; a word of one token is that token's)."""
        p = 1 / (1 + np.exp(-self.grounded_logits.astype(np.float64)))
        return [float(p[toks].min()) if toks else 0.0 for toks in self.caption.word_tokens]

    def layer(self, layer: int | None) -> int:
        """``layer`` (None = the default, negative from the end) as an index 0..L-1."""
        return check_layer(layer, self.num_layers)

    def head(self, head) -> int:
        return check_head(head, self.num_heads)

    def check_heads(self, heads) -> str | int:
        return check_heads(heads, self.num_heads)

    # ---- readings ----------------------------------------------------------------------
    def word_matrix(self) -> torch.Tensor:
        """(W, T): row i averages word i's tokens (made once per trace: every reading uses it)."""
        if "word_matrix" not in self.memo:
            M = word_matrix(self.caption.word_ids, len(self.caption.all_words), len(self.tokens))
            keep = [self.caption.word_ids[toks[0]] for toks in self.caption.word_tokens]
            self.memo["word_matrix"] = M[keep]
        return self.memo["word_matrix"]

    def token_maps(self, method: str = "attention", layer: int | None = None, heads: str | int = "mean") -> torch.Tensor:
        """(T, P) each token's map over the patches by ``method``:

        - ``attention``: layer ``layer``'s text -> image weights;
        - ``rollout``: bi-modal attention rollout over all layers (:func:`rollout`);
        - ``gradcam``: the weights times the positive gradient of the match logit (ALBEF's
          Grad-CAM on the cross-attention; the trace needs ``gradients=True``);
        - ``legrad``: LeGrad in the vision tower (CLIP backend; ``gradients=True``; the same
          for every layer and heads setting)."""
        if method not in (*METHODS, "legrad"):
            raise ValueError(f"method must be one of {', '.join((*METHODS, 'legrad'))} (got {method!r})")
        if method == "legrad":
            if self.legrad is None:
                raise ValueError("this trace has no LeGrad maps: LeGrad is the CLIP backend's; trace it with gradients=True")
            return torch.from_numpy(self.legrad)
        layer, heads = self.layer(layer), self.check_heads(heads)
        t2i = torch.from_numpy(self.text_to_image[layer])
        if method == "attention":
            return reduce_heads(t2i, heads)
        if method == "rollout":
            return rollout([reduce_heads(torch.from_numpy(a), heads)[None] for a in self.text_to_image],
                           [reduce_heads(torch.from_numpy(b), heads)[None] for b in self.image_to_text])[0]  # fmt: skip
        if self.gradients is None:
            raise ValueError("this trace has no gradients: trace it with gradients=True for Grad-CAM")
        return reduce_heads(t2i * torch.from_numpy(self.gradients[layer]).clamp(min=0), heads)

    def word_patch_maps(self, method: str = "attention", layer: int | None = None, heads: str | int = "mean") -> np.ndarray:
        """(W, P) each word's map on one scale shared by the caption's words (1.0 = the
        strongest value of any word; never rescaled per word)."""
        if method == "attention":  # the common reading, in numpy: a few small products, no torch dispatch per call
            maps = self._words() @ _heads(self.text_to_image[self.layer(layer)], self.check_heads(heads))  # (W, T) @ (T, P)
        else:
            maps = (self.word_matrix() @ self.token_maps(method, layer, heads)).numpy()  # (W, T) @ (T, P)
        if method == "legrad" and maps.size:  # relevance has no zero point: min-max over the caption's words, as LeGrad
            maps = maps - maps.min()
        peak = float(maps.max()) if maps.size else 0.0
        return (maps / (peak if peak > 0 else 1.0)).astype(np.float32, copy=False)

    def _words(self) -> np.ndarray:
        """:meth:`word_matrix` as a float32 array (made once per trace)."""
        if "word_matrix_np" not in self.memo:
            self.memo["word_matrix_np"] = self.word_matrix().numpy()
        return self.memo["word_matrix_np"]

    def patch_words(self, layer: int | None = None, heads: str | int = "mean") -> np.ndarray:
        """(P, W) the weight each patch gives to each word (its tokens summed; the rest of
        each row goes to the special tokens and punctuation)."""
        i2t = _heads(self.image_to_text[self.layer(layer)], self.check_heads(heads))  # (P, T)
        return i2t @ (self._words() > 0).astype(np.float32).T  # (P, T) @ (T, W)

    def grounding(self, method: str = "attention", layer: int | None = None, heads: str | int = "mean", raw: bool = False) -> Grounding:
        """The :class:`~mmattn.result.Grounding` of this trace by ``method`` / ``layer`` / ``heads``
        (made once per setting: the same object when asked again)."""
        layer, heads = self.layer(layer), self.check_heads(heads)
        key = ("grounding", method, layer, heads, raw)
        if key not in self.memo:
            self.memo[key] = self._grounding(method, layer, heads, raw)
        return self.memo[key]

    def relation_evidence(self, maps: np.ndarray, method: str, layer: int | None, heads: str | int) -> np.ndarray:
        """What a relation check may read of ``maps`` (this trace's (W, P), by ``method`` /
        ``layer`` / ``heads``): the maps themselves, or, when that layer applied the caption's
        relation (an AnchorBias), the maps only where the first layer also sees the word, so
        that a relation that holds for nothing is not read back from the caption
        (:func:`mmattn.api.maps.evidence_maps`)."""
        if self.anchored and self.num_layers > 1 and self.layer(layer) == self.num_layers - 1:
            return evidence_maps(maps, self.word_patch_maps(method, 0, heads))
        return maps

    def phrase_evidence(self, maps: np.ndarray, method: str, layer: int, heads: str | int, phrases: list) -> np.ndarray:
        """The (W, P) maps ``phrases`` are boxed from: :meth:`relation_evidence` of the
        attention maps when a phrase is anchored by a relation (only a relation moves a map),
        ``maps`` otherwise, so that a relation that holds for nothing does not box empty ground."""
        if method == "attention" and any(p.anchor is not None for p in phrases):
            return self.relation_evidence(maps, method, layer, heads)
        return maps

    def _grounding(self, method: str, layer: int, heads: str | int, raw: bool, boxes: list | None = None,
                   maps: np.ndarray | None = None, phrases: list | None = None) -> Grounding:  # fmt: skip
        """``maps``, ``boxes`` and ``phrases``: already made (by :func:`groundings`, for a batch)."""
        maps = self.word_patch_maps(method, layer, heads) if maps is None else maps
        scores = self.grounded_scores
        grounded = self._grounded(scores)
        if boxes is None:
            boxes = _boxes([self], [maps], [grounded])[0]
        if phrases is None:
            found = find_phrases(list(self.words))
            phrases = ground_phrases(list(self.words), self.phrase_evidence(maps, method, layer, heads, found), tuple(self.grid), self.size,
                                     scores, grounded, phrases=found)  # fmt: skip
        return Grounding(
            phrases=phrases, caption=self.caption.text, words=list(self.words), image=self.image, grid=tuple(self.grid), size=self.size,
            patch_maps=maps, image_to_text=self.patch_words(layer, heads), grounded=grounded, grounded_scores=scores,
            boxes=boxes, match_score=self.match_score, relation_score=self.relation_logit, unknown_words=list(self.unknown_words),
            truncated=self.caption.truncated, notice=" ".join(self.notices()) or None, out_of_world=self.out_of_world, method=method, layer=layer, heads=heads, model_name=self.model_name,
            raw=RawAttention(tokens=list(self.tokens), word_ids=list(self.caption.word_ids), text_to_image=list(self.text_to_image),
                             image_to_text=list(self.image_to_text)) if raw else None,
        )  # fmt: skip

    def _grounded(self, scores: list[float]) -> list[bool]:
        unknown = set(self.unknown_words)
        return [s > GROUNDED_THRESHOLD and w not in unknown and not self.out_of_world for s, w in zip(scores, self.words)]

    def summary(self) -> dict:
        """What was traced, JSON-serialisable (no arrays)."""
        return {
            "caption": self.caption.text, "words": self.words, "tokens": self.tokens, "image_size": list(self.size),
            "model_input_size": list(self.model_size), "grid": list(self.grid), "layers": self.num_layers, "heads": self.num_heads,
            "match_score": round(self.match_score, 6), "relation_score": round(self.relation_logit, 6),
            "grounded_scores": [round(s, 6) for s in self.grounded_scores], "unknown_words": self.unknown_words,
            "truncated": self.caption.truncated, "gradients": self.gradients is not None, "inputs": self.inputs is not None,
            "model": self.model_name, "precision": self.precision, "notices": self.notices(),
            "out_of_world": self.out_of_world, "suggestions": self.suggestions,
        }  # fmt: skip


def _heads(weights: np.ndarray, heads: str | int) -> np.ndarray:
    """:func:`mmattn.api.maps.reduce_heads` on one layer's (H, Lq, Lk) array, in numpy."""
    if heads == "mean":
        return weights.mean(0)
    if heads == "max":
        return weights.max(0)
    return weights[heads]


def groundings(traces: list[Trace], method: str = "attention", layer: int | None = None, heads: str | int = "mean",
               raw: bool = False) -> list[Grounding]:  # fmt: skip
    """``[t.grounding(method, layer, heads, raw) for t in traces]``, the boxes of all of them
    found at once (one upsampling and one region search per patch grid, not one per trace)."""
    out: list = [None] * len(traces)
    todo = []
    for n, t in enumerate(traces):
        key = ("grounding", method, t.layer(layer), t.check_heads(heads), raw)
        if key in t.memo:
            out[n] = t.memo[key]
        else:
            todo.append((n, t, key))
    if not todo:
        return out
    maps = [t.word_patch_maps(method, k[2], k[3]) for _, t, k in todo]
    grounded = [t._grounded(t.grounded_scores) for _, t, _ in todo]
    # each trace's phrases, boxed together with the words: their maps join the same search
    phrases = [find_phrases(list(t.words)) for _, t, _ in todo]
    pmaps = [phrase_maps(t.phrase_evidence(m, method, k[2], k[3], ps), ps) if ps else None for (_, t, k), m, ps in zip(todo, maps, phrases)]
    both = [np.concatenate([m, pm]) if ps else m for m, pm, ps in zip(maps, pmaps, phrases)]
    flags = [g + [phrase_located(p, g) and float(pm[i].max()) > 0 for i, p in enumerate(ps)] for g, pm, ps in zip(grounded, pmaps, phrases)]
    boxes = _boxes([t for _, t, _ in todo], both, flags)
    for (n, t, key), m, g, b, ps in zip(todo, maps, grounded, boxes, phrases):
        W = len(g)
        for p, box in zip(ps, b[W:]):
            p.box, p.score = box, phrase_score(p, t.grounded_scores)
        t.memo[key] = out[n] = t._grounding(method, key[2], key[3], raw, boxes=b[:W], maps=m, phrases=ps)
    return out


def _boxes(traces: list[Trace], maps: list[np.ndarray], grounded: list[list[bool]]) -> list[list]:
    """Each trace's boxes (None for words not grounded): the grounded words' (W, P) ``maps`` of
    all traces on one patch grid go through :func:`boxes_from_maps` together."""
    out = [[None] * len(g) for g in grounded]
    by_grid: dict = {}
    for n, (t, g) in enumerate(zip(traces, grounded)):
        for i, ok in enumerate(g):
            if ok:
                by_grid.setdefault(tuple(t.grid), []).append((n, i))
    for grid, items in by_grid.items():
        stack = torch.from_numpy(np.stack([maps[n][i] for n, i in items]).astype(np.float32, copy=False))
        sizes = [(traces[n].size[1], traces[n].size[0]) for n, _ in items]
        for (n, i), box in zip(items, boxes_from_maps(stack, grid, sizes)):
            out[n][i] = box
    return out


def out_of_world_message(world: WorldVerdict) -> str:
    return (f"This image does not look like the shapes world the model was trained on ({world.reason}), so no word is "
            "marked found. For photographs use the CLIP backend: pick a photo backend in the page's Model menu, or start with "
            "MMATTN_MODEL=openai/clip-vit-base-patch16 (see the README).")  # fmt: skip


def truncation_notice(caption: Caption) -> str | None:
    if caption.truncated:
        return f"the caption was cut to its first {len(caption.words)} words (at most {MAX_TOKENS - 2} tokens)"
    return None


def rollout(t2i: list[torch.Tensor], i2t: list[torch.Tensor]) -> torch.Tensor:
    """Relevance of each patch for each token, accumulated across fusion layers.

    Bi-modal rollout (Chefer et al., 2021) for layers that cross-attend both ways from the
    same inputs: with R_tt = I, R_ii = I, R_ti = 0, R_it = 0 and per layer A = text->image
    (B, T, P), Bm = image->text (B, P, T):
        R_ti += A @ R_ii,  R_tt += A @ R_it,  R_it += Bm @ R_tt,  R_ii += Bm @ R_ti
    (right-hand sides use the previous layer's values). Returns R_ti (B, T, P).
    """
    B, T, P = t2i[0].shape
    R_tt = torch.eye(T).expand(B, T, T).clone()
    R_ii = torch.eye(P).expand(B, P, P).clone()
    R_ti, R_it = torch.zeros(B, T, P), torch.zeros(B, P, T)
    for A, Bm in zip(t2i, i2t):
        A, Bm = A.float().cpu(), Bm.float().cpu()
        R_ti, R_tt, R_it, R_ii = R_ti + A @ R_ii, R_tt + A @ R_it, R_it + Bm @ R_tt, R_ii + Bm @ R_ti
    return R_ti
