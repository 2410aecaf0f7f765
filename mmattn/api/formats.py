"""A :class:`~mmattn.api.grounding.Grounding` in the formats other tools read.

- :func:`to_supervision`: a ``supervision.Detections`` (annotators, metrics, trackers);
- :func:`to_coco`: COCO result dicts (``pycocotools.COCO.loadRes``, COCO evaluation);
- :func:`repr_png` / :func:`repr_html`: what a notebook shows for a result by itself.

supervision and pycocotools are optional extras (``pip install "mmattn[supervision]"``,
``"mmattn[coco]"``), imported only here and only when used.

Every function takes ``g``, a :class:`~mmattn.api.grounding.Grounding` (not imported here:
grounding.py imports this module when one of its methods is called).

Index letters: N detections (grounded words with a box), H x W the image.
"""

from __future__ import annotations

import html
import importlib
import io

import numpy as np
import torch

from mmattn.api.maps import BOX_FRACTION, peak_regions, upsample
from mmattn.api.pictures import overlay_map

#: top-level package -> the extra of pyproject.toml that installs it
EXTRAS = {"supervision": "supervision", "pycocotools": "coco"}


def require(module: str, what: str):
    """``module`` imported, or ImportError with a one-line message naming the extra to install."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f'{what} needs {package}: pip install "mmattn[{EXTRAS[package]}]"') from None


def detected(g) -> list[int]:
    """Indices of the words that are grounded and have a box: one detection each."""
    return [i for i, (ok, box) in enumerate(zip(g.grounded, g.boxes)) if ok and box is not None]


def word_masks(g, idx: list[int], frac: float = BOX_FRACTION) -> np.ndarray:
    """(N, H, W) bool: for word ``idx[n]``, the region its box frames at the image's
    resolution: the pixels where its patch map, bilinear at the image's size (the map the box
    is read from, :func:`mmattn.api.maps.boxes_from_maps`), is at least ``frac`` of its peak,
    4-connected to the peak."""
    width, height = g.size
    if not idx:
        return np.zeros((0, height, width), bool)
    fine = upsample(torch.from_numpy(np.ascontiguousarray(g.patch_maps[idx], np.float32)), g.grid, (height, width)).numpy()
    return peak_regions(fine, frac)


def to_supervision(g):
    """One detection per grounded word (with its box): ``xyxy`` (x1/y1 exclusive, as ``boxes``),
    ``confidence`` = the word's grounded probability, ``mask`` (:func:`word_masks`, the region the box frames),
    ``class_id`` = the word's index in ``words``, ``data["class_name"]`` = the word."""
    sv = require("supervision", "Grounding.to_supervision()")
    idx = detected(g)
    return sv.Detections(
        xyxy=np.array([g.boxes[i] for i in idx], np.float32).reshape(-1, 4),
        mask=word_masks(g, idx),
        confidence=np.array([g.grounded_scores[i] for i in idx], np.float32),
        class_id=np.array(idx, int),
        data={"class_name": np.array([g.words[i] for i in idx], dtype=str)},
    )


def to_coco(g, image_id: int, category_ids: dict[str, int]) -> list[dict]:
    """COCO result dicts, one per grounded word (with a box) whose word is a key of
    ``category_ids`` (e.g. ``{"circle": 1, "square": 2}``; other words are left out):
    ``image_id``, ``category_id``, ``bbox`` [x, y, width, height] in pixels, ``score`` (the
    word's grounded probability) and ``segmentation``, the word's mask as COCO RLE."""
    if isinstance(image_id, bool) or not isinstance(image_id, (int, np.integer)):
        raise TypeError(f"image_id must be an int (got {image_id!r})")
    if not isinstance(category_ids, dict) or not all(isinstance(k, str) for k in category_ids):
        raise TypeError(f"category_ids must be a dict from word to COCO category id, e.g. {{'circle': 1}} (got {category_ids!r})")
    mask_api = require("pycocotools.mask", "Grounding.to_coco()")
    idx = [i for i in detected(g) if g.words[i] in category_ids]
    masks = word_masks(g, idx)
    out = []
    for n, i in enumerate(idx):
        x0, y0, x1, y1 = g.boxes[i]
        rle = mask_api.encode(np.asfortranarray(masks[n].astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")  # JSON-serialisable
        out.append({
            "image_id": int(image_id), "category_id": int(category_ids[g.words[i]]),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "score": float(g.grounded_scores[i]), "segmentation": rle,
        })  # fmt: skip
    return out


def repr_png(g) -> bytes | None:
    """PNG bytes: the grounded words' mean map over the image, their boxes drawn (None without an image)."""
    if g.image is None:
        return None
    im = overlay_map(g.image, g.sentence_map)
    if any(b is not None for b in g.boxes):
        from PIL import ImageDraw

        draw = ImageDraw.Draw(im)
        for i in detected(g):
            b = g.boxes[i]
            draw.rectangle([b[0], b[1], b[2] - 1, b[3] - 1], outline=(0, 255, 255), width=max(1, min(im.size) // 100))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def repr_html(g) -> str:
    """An HTML table: each word, whether it is grounded, its probability, its map's peak and box."""
    e = html.escape
    unknown = set(g.unknown_words)
    rows = []
    for i, w in enumerate(g.words):
        peak = float(g.patch_maps[i].max()) if g.patch_maps[i].size else 0.0
        score = "not in the vocabulary" if w in unknown else f"{g.grounded_scores[i]:.3f}" if i < len(g.grounded_scores) else ""
        box = "" if g.boxes[i] is None else e(str(tuple(g.boxes[i])))
        rows.append(f"<tr><td>{e(w)}</td><td>{'yes' if g.grounded[i] else 'no'}</td><td>{score}</td><td>{peak:.2f}</td><td>{box}</td></tr>")
    head = f"<p><b>{e(g.caption)}</b> — match score {g.match_score:.3f}" + (f" <i>({e(g.notice)})</i>" if g.notice else "") + "</p>"
    return (head + "<table><thead><tr><th>word</th><th>grounded</th><th>probability</th><th>peak</th><th>box (x0, y0, x1, y1)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")  # fmt: skip
