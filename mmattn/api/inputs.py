"""The checks of what a caller passes, in one place: the caption, the layer, the head(s) and
the map method. The library (``Grounder``, ``Trace``, the processors) and the demo
(:mod:`mmattn.demo.checks`, which words the same failures in the page's language) use these;
each failure is a ``ValueError`` (``TypeError`` for a caption that is not text) naming the
bad value and what to pass instead.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LAYER = -1  #: fusion layer whose maps are shown by default (chosen by measurement, see docs/model.md)


def check_caption(caption) -> str:
    """``caption`` if it can be read; else TypeError / ValueError saying what to type."""
    if not isinstance(caption, str):
        raise TypeError(f"the caption must be a string, got {type(caption).__name__}")
    try:
        caption.encode("utf-8")
    except UnicodeEncodeError as e:  # e.g. a lone surrogate from a broken client
        bad = caption[e.start : e.end]
        raise ValueError(f"the caption holds characters that are not valid text ({bad!r} at position {e.start}): "
                         "retype it or paste it again as plain text") from None  # fmt: skip
    if not caption.strip() or not any(ch.isalnum() for ch in caption):
        raise ValueError("the caption is empty: type a few words that describe the image, e.g. 'a red circle'")
    return caption


def _index(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_layer(layer, num_layers: int) -> int:
    """``layer`` (None = :data:`DEFAULT_LAYER`, negative from the end) as an index 0..L-1."""
    L = num_layers
    layer = DEFAULT_LAYER if layer is None else layer
    if not _index(layer) or not -L <= layer < L:
        raise ValueError(f"layer {layer!r} does not exist: the model has {L} fusion layers (0..{L - 1})")
    return int(layer) % L


def check_head(head, num_heads: int) -> int:
    """``head`` as an index 0..H-1."""
    if not _index(head) or not 0 <= head < num_heads:
        raise ValueError(f"head {head!r} does not exist: the model has {num_heads} heads per layer (0..{num_heads - 1})")
    return int(head)


def check_heads(heads, num_heads: int) -> str | int:
    """How heads are combined: ``"mean"``, ``"max"`` or one head's index 0..H-1."""
    if isinstance(heads, str) and heads in ("mean", "max"):
        return heads
    if _index(heads) and 0 <= heads < num_heads:
        return int(heads)
    raise ValueError(f"heads must be 'mean', 'max' or a head index 0..{num_heads - 1} (got {heads!r})")


def check_method(method, methods: tuple[str, ...]) -> str:
    """``method`` if the backend offers it."""
    if not isinstance(method, str) or method not in methods:
        raise ValueError(f"method must be one of {', '.join(methods)} (got {method!r})")
    return method
