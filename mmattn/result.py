"""What ``Grounder.ground`` returns: per-word maps, flags, boxes and the match score.

Index letters: W words, P patches (= gh * gw), H heads, T tokens.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .maps import maps_at_size
from .viz import overlay_map


@dataclass
class RawAttention:
    """The raw attention of every fusion layer and head, both directions (for those who want it)."""

    tokens: list[str]  #: the T tokens, specials included
    word_ids: list[int | None]  #: word of each token (None for specials)
    text_to_image: list[np.ndarray]  #: per layer, (H, T, P)
    image_to_text: list[np.ndarray]  #: per layer, (H, P, T)


@dataclass
class Grounding:
    """The grounding of one caption in one image.

    ``word_maps[i]`` is where word ``i`` looks, at the image's own size, on one scale shared
    by all words (1.0 = the strongest value of any word); ``grounded[i]`` says whether the
    word is confidently located in the image (never for function words, for things absent
    from the image, or for unknown words); ``boxes[i]`` is its box in image pixels or None.

    ``word_maps`` is rendered from ``patch_maps`` when first read, then kept: a result holds
    W x P numbers until then, not W x height x width (8 words on a 1024x768 photo are 25 MB),
    so grounding thousands of images never holds thousands of full-size maps at once.
    """

    caption: str
    words: list[str]  #: the caption's words (subword pieces merged, punctuation dropped)
    size: tuple[int, int]  #: (width, height) of the image
    patch_maps: np.ndarray  #: (W, P) the maps on the patch grid, on the shared scale
    grid: tuple[int, int]  #: (gh, gw); patch (r, c) is index r * gw + c
    grounded: list[bool]
    boxes: list[tuple[int, int, int, int] | None]  #: (x0, y0, x1, y1), x1/y1 exclusive
    match_score: float  #: probability that the caption describes the image
    grounded_scores: list[float] = field(default_factory=list)  #: probability behind each grounded flag
    #: the relation probes' part of the match logit: > 0 where the maps put the objects as the
    #: caption's relation word says, < 0 where they contradict it, about 0 without a relation
    relation_score: float = 0.0
    image_to_text: np.ndarray | None = None  #: (P, W) each patch's attention over the words
    unknown_words: list[str] = field(default_factory=list)  #: words the model's vocabulary lacks
    truncated: bool = False
    notice: str | None = None  #: a message for the user (e.g. the caption was truncated)
    method: str = "attention"
    layer: int = -1
    heads: str | int = "mean"
    model_name: str = ""
    image: Image.Image | None = field(default=None, repr=False)
    raw: RawAttention | None = field(default=None, repr=False)

    @functools.cached_property
    def word_maps(self) -> np.ndarray:
        """(W, height, width) float32 in [0, 1]: where each word looks, at the image's own size
        (:func:`mmattn.maps.maps_at_size` of ``patch_maps``; rendered on first use)."""
        width, height = self.size
        return maps_at_size(self.patch_maps, self.grid, (height, width))

    def patch_at(self, x: float, y: float) -> int:
        """Index of the patch under pixel (x, y) of the image."""
        width, height = self.size
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"pixel ({x}, {y}) is outside the {width}x{height} image")
        gh, gw = self.grid
        return min(int(y * gh / height), gh - 1) * gw + min(int(x * gw / width), gw - 1)

    def words_at(self, x: float, y: float) -> list[tuple[str, float]]:
        """Image -> text: the words the patch under pixel (x, y) attends to, aligned with
        ``words``. The weights leave out special tokens, so a patch that no word describes
        has small weights everywhere."""
        p = self.patch_at(x, y)
        return [(w, float(v)) for w, v in zip(self.words, self.image_to_text[p])]

    @property
    def sentence_map(self) -> np.ndarray:
        """(height, width): the mean map of the grounded words (zeros if none is grounded)."""
        idx = [i for i, g in enumerate(self.grounded) if g]
        if not idx:
            return np.zeros(self.size[::-1], np.float32)
        return self.word_maps[idx].mean(0)

    def overlay(self, i: int | str, alpha: float = 0.6) -> Image.Image:
        """Word ``i`` (index or the word itself)'s map over the image, on the shared colour scale."""
        if isinstance(i, str):
            if i not in self.words:
                raise ValueError(f"{i!r} is not one of the words {self.words}")
            i = self.words.index(i)
        if not -len(self.words) <= i < len(self.words):
            raise ValueError(f"word index {i} out of range: the caption has {len(self.words)} words")
        if self.image is None:
            raise ValueError("this result has no image to draw on")
        return overlay_map(self.image, self.word_maps[i], self.boxes[i], alpha=alpha)

    def to_json(self, maps: bool = False) -> dict:
        """A JSON-serialisable dict; ``maps=True`` adds the patch-grid maps (W x P lists)."""
        width, height = self.size
        d = {
            "caption": self.caption,
            "words": self.words,
            "grounded": self.grounded,
            "grounded_scores": [round(s, 6) for s in self.grounded_scores],
            "boxes": [list(b) if b else None for b in self.boxes],
            "peaks": [round(float(m.max()), 6) if m.size else 0.0 for m in self.patch_maps],
            "match_score": round(self.match_score, 6),
            "relation_score": round(self.relation_score, 6),
            "image_size": [width, height],
            "grid": list(self.grid),
            "unknown_words": self.unknown_words,
            "truncated": self.truncated,
            "notice": self.notice,
            "method": self.method,
            "layer": self.layer,
            "heads": self.heads,
            "model": self.model_name,
        }
        if maps:
            d["patch_maps"] = np.round(self.patch_maps, 6).tolist()
            d["image_to_text"] = np.round(self.image_to_text, 6).tolist()
        return d

    @classmethod
    def from_json(cls, d: dict) -> Grounding:
        """Rebuild a result from :meth:`to_json` (with ``maps=True``); the image is not stored."""
        width, height = d["image_size"]
        grid = tuple(d["grid"])
        patch = np.asarray(d.get("patch_maps", np.zeros((len(d["words"]), grid[0] * grid[1]))), np.float32)
        return cls(
            caption=d["caption"], words=d["words"], size=(width, height), patch_maps=patch.reshape(len(d["words"]), -1), grounded=d["grounded"],
            boxes=[tuple(b) if b else None for b in d["boxes"]], match_score=d["match_score"],
            relation_score=d.get("relation_score", 0.0), grounded_scores=d.get("grounded_scores", []),
            image_to_text=np.asarray(d.get("image_to_text", []), np.float32), grid=grid,
            unknown_words=d.get("unknown_words", []), truncated=d.get("truncated", False), notice=d.get("notice"),
            method=d.get("method", "attention"), layer=d.get("layer", -1), heads=d.get("heads", "mean"),
            model_name=d.get("model", ""),
        )  # fmt: skip

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``grounding.json``, ``maps.npy`` (W, height, width) and one overlay PNG per word."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "grounding.json").write_text(json.dumps(self.to_json(maps=True), ensure_ascii=False, indent=1), encoding="utf-8")
        np.save(folder / "maps.npy", self.word_maps)
        if self.image is not None:
            for i, w in enumerate(self.words):
                safe = "".join(ch if ch.isalnum() else "_" for ch in w)[:40] or "word"
                self.overlay(i).save(folder / f"{i:02d}_{safe}.png")
        return folder
