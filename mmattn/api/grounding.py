"""What ``Grounder.ground`` returns: per-word maps, flags, boxes and the match score.

Index letters: W words, P patches (= gh * gw), H heads, T tokens.
"""

from __future__ import annotations

import functools
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmattn.api.maps import maps_at_size
from mmattn.api.phrases import Phrase
from mmattn.api.pictures import overlay_map
from mmattn.io import files


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
    #: the image is not from the world the model was trained on (a photograph for the shapes
    #: model): no word is marked grounded, and ``notice`` says what to use instead
    out_of_world: bool = False
    method: str = "attention"
    layer: int = -1
    heads: str | int = "mean"
    model_name: str = ""
    image: Image.Image | None = field(default=None, repr=False)
    raw: RawAttention | None = field(default=None, repr=False)
    #: the caption's noun phrases (:mod:`mmattn.api.phrases`): words, box, score, and for a
    #: relational phrase ("the circle left of the square") the landmark phrase it is anchored to
    phrases: list[Phrase] = field(default_factory=list)

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

    # ---- other tools' formats (mmattn.api.formats; their packages are optional extras) ----
    def to_supervision(self):
        """A ``supervision.Detections``: one detection per grounded word with ``xyxy``,
        ``confidence`` (its grounded probability), ``mask`` (the region of its map around the
        peak that the box frames, at the image's size), the word in ``data["class_name"]`` and its index in
        ``class_id``. Needs ``pip install "mmattn[supervision]"``."""
        from mmattn.api.formats import to_supervision

        return to_supervision(self)

    def to_coco(self, image_id: int, category_ids: dict[str, int]) -> list[dict]:
        """COCO result dicts (``bbox`` x, y, w, h; ``segmentation`` as RLE; ``score``), one per
        grounded word that is a key of ``category_ids``. Needs ``pip install "mmattn[coco]"``."""
        from mmattn.api.formats import to_coco

        return to_coco(self, image_id, category_ids)

    def _repr_png_(self) -> bytes | None:
        """A notebook shows the grounded words' maps over the image, with their boxes."""
        from mmattn.api.formats import repr_png

        return repr_png(self)

    def _repr_html_(self) -> str:
        """A notebook shows the per-word table (grounded, probability, peak, box)."""
        from mmattn.api.formats import repr_html

        return repr_html(self)

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
            "out_of_world": self.out_of_world,
            "method": self.method,
            "layer": self.layer,
            "heads": self.heads,
            "model": self.model_name,
            "phrases": [p.to_json() for p in self.phrases],
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
            unknown_words=d.get("unknown_words", []), truncated=d.get("truncated", False), notice=d.get("notice"), out_of_world=d.get("out_of_world", False),
            method=d.get("method", "attention"), layer=d.get("layer", -1), heads=d.get("heads", "mean"),
            model_name=d.get("model", ""), phrases=[Phrase.from_json(p) for p in d.get("phrases", [])],
        )  # fmt: skip

    def save(self, folder: str | os.PathLike) -> Path:
        """Write this result to ``folder``, which then holds exactly it (see :data:`SAVED_FILES`):

        - ``grounding.json``: :meth:`to_json` with ``maps=True``; :meth:`load` reads it back;
        - ``maps.npy``: (W, gh, gw) float32, each word's map on the patch grid on the shared
          scale (``patch_maps`` with the grid as its shape). ``word_maps`` at the image's
          size is ``mmattn.maps.maps_at_size(maps, (gh, gw), (height, width))``: 8 words on a
          4000x3000 photo are 8 x 16 x 12 numbers on disk, not 366 MB;
        - ``NN_word.png``: each word's overlay on the image, at its size (if the result has it).

        The files are written to a new folder beside ``folder`` and swapped in, so that
        ``folder`` holds the earlier result or this one, never a mix, and no file of an
        earlier save stays behind; a symlink at ``folder`` or in it is replaced, never
        followed. A folder that holds anything else is refused (ValueError naming the
        files) rather than emptied. OSError (a full disk, no permission, a file in the
        way) leaves ``folder`` as it was."""
        folder = Path(folder).absolute()
        if folder.is_dir() and not folder.is_symlink():
            foreign = sorted(p.name for p in folder.iterdir() if not _is_result_file(p.name))
            if foreign:
                raise ValueError(f"{folder} holds files that are not a saved result ({', '.join(foreign[:5])}"
                                 f"{', ...' if len(foreign) > 5 else ''}): pass a new or empty folder")  # fmt: skip
            if os.path.samefile(folder, os.getcwd()):
                raise ValueError(f"cannot replace the current folder {folder} by a result: pass a subfolder such as out/")
        if os.path.lexists(folder) and not folder.is_symlink() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder: pass a folder path or remove the file")
        tmp = files.new_dir_beside(folder)
        try:
            self._write_files(tmp)
            files.replace_dir(tmp, folder)
        except BaseException:
            files.remove(tmp)
            raise
        return folder

    def _write_files(self, folder: Path) -> None:
        files.write_text(folder / "grounding.json", json.dumps(self.to_json(maps=True), ensure_ascii=False, indent=1))
        gh, gw = self.grid
        maps = np.ascontiguousarray(self.patch_maps, dtype=np.float32).reshape(len(self.words), gh, gw)  # (W, gh, gw)
        files.atomic_write(folder / "maps.npy", lambda f: np.save(f, maps))
        if self.image is None:
            return
        self.word_maps  # rendered once, here, not by two threads at once  # noqa: B018

        def write_overlay(i: int) -> None:
            im = self.overlay(i)
            files.atomic_write(folder / _overlay_name(i, self.words[i]), lambda f: im.save(f, format="PNG", compress_level=PNG_LEVEL))

        with ThreadPoolExecutor(OVERLAY_WORKERS) as pool:
            for done in [pool.submit(write_overlay, i) for i in range(len(self.words))]:
                done.result()  # the first error is raised (the caller removes the folder)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Grounding:
        """A result written by :meth:`save` (without its image: ``overlay`` needs one)."""
        file = Path(folder) / "grounding.json"
        if not file.is_file():
            raise ValueError(f"no grounding.json in {folder}: pass a folder written by Grounding.save")
        try:
            return cls.from_json(json.loads(file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{file} is not a saved result ({e.__class__.__name__}: {e})") from e


#: what :meth:`Grounding.save` writes: these two files and one ``NN_word.png`` per word
SAVED_FILES = ("grounding.json", "maps.npy")
#: zlib level of the overlay PNGs: an overlay on a 4000x3000 photo takes 0.8 s and 19.6 MB
#: at level 1, 3.7 s and 16.7 MB at Pillow's default 6 (the 2-core development CPU)
PNG_LEVEL = 1
#: overlays rendered and encoded at once (Pillow encodes without holding the GIL)
OVERLAY_WORKERS = 2


def _overlay_name(i: int, word: str) -> str:
    safe = "".join(ch if ch.isalnum() else "_" for ch in word)[:40] or "word"
    return f"{i:02d}_{safe}.png"


def _is_result_file(name: str) -> bool:
    """Whether a saved result (or an interrupted write of one) may hold a file of this name."""
    if name in SAVED_FILES or (name.startswith(".") and name.endswith(".tmp")):
        return True
    m = re.fullmatch(r"(\d{2,})_(.+)\.png", name)
    return m is not None and all(ch.isalnum() or ch == "_" for ch in m.group(2))
