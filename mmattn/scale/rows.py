"""One result row per (image, caption) pair: what ``ground_dataset`` and ``mmattn ground-many`` write.

A row holds ``words``, ``boxes`` ([x0, y0, x1, y1] or None per word, x1/y1 exclusive),
``grounded``, ``scores`` (each word's grounded probability), ``match_score``, ``notice``
and ``error`` (None, or why this pair could not be grounded: a missing or broken image, an
empty caption); with ``maps=True`` also ``maps``, (W, gh, gw) float32: each word's map on the
patch grid, on the caption's shared scale (``Grounding.patch_maps``).
"""

from __future__ import annotations

import numpy as np

from mmattn.api.grounding import Grounding

#: the result columns of a row, besides the input's own
COLUMNS = ("words", "boxes", "grounded", "scores", "match_score", "notice", "error")


def result_row(r: Grounding | None, error: str | None = None, maps: bool = False) -> dict:
    """The result columns for one pair (``r`` None when it failed with ``error``)."""
    if r is None:
        row = {"words": [], "boxes": [], "grounded": [], "scores": [], "match_score": None, "notice": None, "error": error}
        if maps:
            row["maps"] = np.zeros((0, 0, 0), np.float32)
        return row
    row = {
        "words": list(r.words),
        "boxes": [list(b) if b is not None else None for b in r.boxes],
        "grounded": [bool(g) for g in r.grounded],
        "scores": [round(float(s), 6) for s in r.grounded_scores],
        "match_score": round(float(r.match_score), 6),
        "notice": r.notice,
        "error": None,
    }
    if maps:
        row["maps"] = np.ascontiguousarray(r.patch_maps, np.float32).reshape(len(r.words), *r.grid)
    return row


def ground_rows(grounder, images: list, captions: list, *, batch_size: int = 32, method: str = "attention",
                layer: int | None = None, heads: str | int = "mean", maps: bool = False) -> list[dict]:  # fmt: skip
    """:func:`result_row` for each pair, in order, batched (``Grounder.ground_batch``). A pair
    that cannot be grounded (a missing or broken image, an empty caption) gets its ``error``
    instead of stopping the others: the batch is then grounded pair by pair."""
    try:
        results = grounder.ground_batch(
            list(images), list(captions), batch_size=batch_size, method=method, layer=layer, heads=heads, progress=False
        )
        return [result_row(r, maps=maps) for r in results]
    except (TypeError, ValueError):
        pass
    out = []
    for im, cap in zip(images, captions):
        try:
            out.append(result_row(grounder.ground(im, cap, method=method, layer=layer, heads=heads), maps=maps))
        except (TypeError, ValueError) as e:
            out.append(result_row(None, f"{e.__class__.__name__}: {e}", maps=maps))
    return out
