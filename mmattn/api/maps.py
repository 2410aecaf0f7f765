"""From attention tensors to per-word maps, boxes and points (shared by the API and eval).

Index letters: B batch, T tokens, W words, P patches (= gh * gw), H heads, L layers.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: A word's box is the region around its map's peak where the map is at least this fraction
#: of the peak. Calibrated on held-out scenes that `mmattn eval` does not use (seed 555, 300
#: scenes): mean IoU with the objects 0.69 at 0.5, 0.76 at 0.4, 0.74 at 0.3 (shapes-world model).
BOX_FRACTION = 0.4


def reduce_heads(weights: Tensor, heads: str | int = "mean") -> Tensor:
    """(..., H, Lq, Lk) -> (..., Lq, Lk): the mean or max over heads, or one head."""
    if heads == "mean":
        return weights.mean(-3)
    if heads == "max":
        return weights.amax(-3)
    if isinstance(heads, int) and not isinstance(heads, bool):
        H = weights.size(-3)
        if not -H <= heads < H:
            raise ValueError(f"head {heads} does not exist: the model has {H} heads (0..{H - 1})")
        return weights.select(-3, heads)
    raise ValueError(f"heads must be 'mean', 'max' or a head index (got {heads!r})")


def word_matrix(word_ids: list[int | None], n_words: int, T: int | None = None) -> Tensor:
    """(W, T) averaging matrix: row w has 1/k on the k tokens of word w (subword pieces merged)."""
    T = len(word_ids) if T is None else T
    M = torch.zeros(n_words, T)
    for t, w in enumerate(word_ids[:T]):
        if w is not None and w < n_words:
            M[w, t] = 1.0
    return M / M.sum(1, keepdim=True).clamp(min=1)


def word_minimum(values, word_ids: list[int | None], n_words: int) -> np.ndarray:
    """(W,) each word's smallest token value (0 for a word with no token): a word is located
    only if all its pieces are. A Chinese word's characters are tokens of their own, and a
    shared character (色 of every colour, 形 of most shapes) says nothing about which colour
    or shape is meant; the character that does decides."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(n_words, np.inf)
    for t, w in enumerate(word_ids[: len(values)]):
        if w is not None and w < n_words:
            out[w] = min(out[w], values[t])
    return np.where(np.isinf(out), 0.0, out)


def upsample(maps: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """(N, P) patch maps on a (gh, gw) grid -> (N, height, width) bilinear, at ``size`` = (height, width).

    Patch (r, c) covers the cell [r/gh, (r+1)/gh) x [c/gw, (c+1)/gw) of the image, and its
    value sits at the cell's centre (``align_corners=False``)."""
    gh, gw = grid
    x = maps.reshape(-1, 1, gh, gw).float()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0]


def box_from_map(m: np.ndarray, frac: float = BOX_FRACTION) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), x1/y1 exclusive, of the region where ``m`` is at least
    ``frac`` of its peak and that contains the peak (4-connected). None for an empty map."""
    return boxes_from_fine(np.asarray(m)[None], frac)[0]


def boxes_from_fine(maps: np.ndarray, frac: float = BOX_FRACTION) -> list[tuple[int, int, int, int] | None]:
    """:func:`box_from_map` for a stack of (N, h, w) maps at once."""
    N, h, w = maps.shape
    if N == 0 or h == 0 or w == 0:
        return [None] * N
    region, ok = _peak_regions(maps, frac)
    boxes = []
    for n in range(N):
        if not ok[n]:
            boxes.append(None)
            continue
        rows, cols = np.flatnonzero(region[n].any(1)), np.flatnonzero(region[n].any(0))
        boxes.append((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    return boxes


def peak_regions(maps: np.ndarray, frac: float = BOX_FRACTION) -> np.ndarray:
    """(N, h, w) maps -> (N, h, w) bool: the region :func:`box_from_map` boxes in each map
    (at least ``frac`` of its peak, 4-connected to the peak); all False for an empty map."""
    maps = np.asarray(maps)
    if maps.size == 0:
        return np.zeros(maps.shape, bool)
    return _peak_regions(maps, frac)[0]


def _peak_regions(maps: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    N = len(maps)
    flat = maps.reshape(N, -1)
    peak_at = flat.argmax(1)
    peak = flat[np.arange(N), peak_at]
    ok = np.isfinite(peak) & (peak > 0)
    masks = maps >= (frac * np.where(ok, peak, np.inf))[:, None, None]
    seeds = np.zeros_like(masks)
    seeds.reshape(N, -1)[np.arange(N), peak_at] = ok
    return _components(masks, seeds), ok


def _components(masks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 4-connected components of boolean (N, h, w) ``masks`` that contain the True
    cells of ``seeds``, for all N maps at once.

    A flood fill by runs: a run of True cells along a row (or a column) joins the region
    as a whole as soon as one of its cells is in it. Sweeping rows, then columns, and so on
    until nothing changes takes as many sweeps as the region has turns (two or three for
    a blob), where growing one ring of neighbours per step takes as many as its diameter.
    The runs are numbered once, so a sweep is two lookups. (``scipy.ndimage.label`` does the
    same, but importing it costs 0.2 s of start-up.)"""
    runs = (_run_numbers(masks, 2), _run_numbers(masks, 1))  # along rows, along columns
    region = seeds & masks
    size, sweep = int(region.sum()), 0
    while True:
        run, n_runs = runs[sweep % 2]
        hit = np.zeros(n_runs + 1, bool)
        hit[run[region]] = True
        hit[0] = False
        region = hit[run]  # whole runs: the region only grows, and is closed along this axis
        grown = int(region.sum())
        # closed along the previous sweep's axis too if this one added nothing: done
        if sweep > 0 and grown == size:
            return region
        size, sweep = grown, sweep + 1


def _run_numbers(masks: np.ndarray, axis: int) -> tuple[np.ndarray, int]:
    """Number the runs of True cells of (N, h, w) ``masks`` along ``axis`` (1 = columns,
    2 = rows): an int array shaped like ``masks`` (0 outside them) and the number of runs."""
    m = masks if axis == 2 else masks.transpose(0, 2, 1)
    lines = m.reshape(-1, m.shape[-1])  # (lines, length)
    starts = lines.copy()
    starts[:, 1:] &= ~lines[:, :-1]  # first cell of each run
    run = np.cumsum(starts, axis=None, dtype=np.int32).reshape(m.shape) * m
    n = int(run.max(initial=0))
    return (run if axis == 2 else run.transpose(0, 2, 1)), n


def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes (exclusive ends); 0 if either is None."""
    if a is None or b is None:
        return 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def patch_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each patch covered by a boolean (H, W) mask -> (gh, gw) float32.

    The mask is resized with the model's resize policy first (area average)."""
    gh, gw = grid
    H, W = mask.shape
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return (
        F.adaptive_avg_pool2d(t, (gh, gw))[0, 0].numpy()
        if (H % gh or W % gw)
        else (mask.reshape(gh, H // gh, gw, W // gw).mean((1, 3)).astype(np.float32))
    )


def boxes_from_maps(maps: Tensor, grid: tuple[int, int], size, frac: float = BOX_FRACTION, factor: int = 4) -> list:
    """Boxes in image pixels for (N, P) patch maps: each map is upsampled to ``factor`` times
    the grid, the region >= ``frac`` of its peak around the peak is boxed, and the box is
    scaled to ``size`` = (height, width), or to ``size[n]`` for map n when ``size`` is a list
    of N sizes. Every box lies inside its image and covers at least one pixel
    (0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height), however small the image. Cheap whatever
    the image size."""
    gh, gw = grid
    sizes = size if isinstance(size, list) else [size] * len(maps)
    if len(sizes) != len(maps):
        raise ValueError(f"got {len(maps)} maps but {len(sizes)} image sizes")
    fine = upsample(maps, grid, (gh * factor, gw * factor)).numpy()
    out = []
    for b, (H, W) in zip(boxes_from_fine(fine, frac), sizes):
        sx, sy = W / (gw * factor), H / (gh * factor)
        if b is None:
            out.append(None)
            continue
        x0, x1 = _pixel_span(b[0] * sx, b[2] * sx, W)
        y0, y1 = _pixel_span(b[1] * sy, b[3] * sy, H)
        out.append((x0, y0, x1, y1))
    return out


def _pixel_span(start: float, end: float, n: int) -> tuple[int, int]:
    """[start, end) rounded to whole pixels of an axis of n pixels: inside [0, n] and at least
    one pixel long (a box scaled down to an image of a few pixels can round to nothing)."""
    a = min(max(int(round(start)), 0), n - 1)
    return a, min(max(int(round(end)), a + 1), n)


def _gaussian_kernel(sigma: float) -> Tensor:
    r = max(1, int(round(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_upsample(maps: Tensor, grid: tuple[int, int], size: tuple[int, int], factor: int = 4, sigma: float = 0.5) -> Tensor:
    """(N, P) patch maps -> (N, height, width): bilinear to ``factor`` x the grid, a Gaussian
    blur of ``sigma`` patches, then bilinear to ``size`` = (height, width).

    The blur spreads each patch's value over its own area (a patch is a square, not a
    point), so the peak of a word's map sits at the centre of mass of the patches it
    attends to, e.g. the middle of a small object that straddles four patches, rather than
    at the centre of whichever patch happened to score highest."""
    gh, gw = grid
    fine = upsample(maps, grid, (gh * factor, gw * factor))[:, None]  # (N, 1, fh, fw)
    k = _gaussian_kernel(sigma * factor)
    r = (len(k) - 1) // 2
    fine = F.conv2d(F.pad(fine, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    fine = F.conv2d(F.pad(fine, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return F.interpolate(fine, size=size, mode="bilinear", align_corners=False)[:, 0]


def peak_points(maps: Tensor, grid: tuple[int, int], size: tuple[int, int], factor: int = 4) -> list[tuple[int, int]]:
    """(x, y) image pixel of the peak of each of the (N, P) maps as rendered by
    :func:`smooth_upsample` (found on a grid ``factor`` times finer than the patches)."""
    gh, gw = grid
    H, W = size
    fine = smooth_upsample(maps, grid, (gh * factor, gw * factor)).flatten(1).argmax(1)
    pts = []
    for i in fine.tolist():
        r, c = divmod(i, gw * factor)
        pts.append((min(int((c + 0.5) * W / (gw * factor)), W - 1), min(int((r + 0.5) * H / (gh * factor)), H - 1)))
    return pts


def render_maps(maps: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """(N, P) non-negative maps on one scale -> (N, height, width) as shown to users:
    :func:`smooth_upsample`, then divided by the largest value of any map (one scale for all
    of them, max 1; all-zero maps stay zero).

    Every step of :func:`smooth_upsample` is linear and acts on rows and columns separately,
    so it is applied as two small cached matrices: maps = A_h @ M @ A_wᵀ.

    Up to :data:`ONE_THREAD_MAX` values are rendered on a thread of their own that runs torch
    on one core (:func:`_render_pool`): a few hundred thousand values are too few to share
    out, and torch's thread team, waiting for a core while the model's passes run on the
    others, made a 320x240 caption's maps 14 ms instead of 0.8 (AMD EPYC, 2 cores, loaded)."""
    if len(maps) * size[0] * size[1] > ONE_THREAD_MAX:
        return _render(maps, grid, size)
    return _render_pool(os.getpid()).submit(_render, maps, grid, size).result()


#: renders of at most this many output values run on one core (:func:`render_maps`)
ONE_THREAD_MAX = 1 << 22


@functools.cache
def _render_pool(pid: int) -> ThreadPoolExecutor:
    """One thread that runs torch on one core (its own OpenMP setting); one per process
    (``pid``: a forked child, such as a Ray or DataLoader worker, makes its own)."""
    n = torch.get_num_threads()

    def one_core() -> None:
        torch.set_num_threads(1)
        torch.get_num_threads()  # this thread's torch threads are set up now, with 1

    pool = ThreadPoolExecutor(1, thread_name_prefix="mmattn-render", initializer=one_core)
    pool.submit(int).result()
    torch.set_num_threads(n)  # threads started from now on get the process's setting again, not 1
    return pool


def _render(maps: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    gh, gw = grid
    A_h, A_wT = _axis_operator(gh, size[0]), _axis_operator(gw, size[1]).T  # (height, gh), (gw, width)
    up = A_h @ (maps.reshape(-1, gh, gw).float() @ A_wT)  # (N, gh, width), then (N, height, width): the big one once
    if up.numel():
        peak = up.amax()
        up.div_(peak if peak > 0 else 1.0)
    return up


def maps_at_size(patch_maps: np.ndarray, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(N, P) or (N, gh, gw) patch maps (numpy) -> (N, height, width) float32 at ``size`` =
    (height, width), rendered by :func:`render_maps`: how ``Grounding.word_maps`` and the
    demo's displays draw maps."""
    a = torch.from_numpy(np.ascontiguousarray(patch_maps, dtype=np.float32)).reshape(-1, grid[0] * grid[1])
    return render_maps(a, grid, size).numpy()


@functools.lru_cache(maxsize=256)
def _axis_operator(n_in: int, n_out: int) -> Tensor:
    """The (n_out, n_in) matrix of :func:`smooth_upsample` along one axis."""
    eye = torch.eye(n_in)  # n_in basis maps on an (n_in, 1) grid
    return smooth_upsample(eye, (n_in, 1), (n_out, 1))[:, :, 0].T.contiguous()


def evidence_maps(last: np.ndarray, first: np.ndarray, support: float = 0.01, kept: float = 0.2) -> np.ndarray:
    """The maps a relation check may read when the last layer applies the caption's relation
    (an AnchorBias, :mod:`mmattn.nn.anchor`), e.g. for a relational phrase's box: each word's last-layer map (W, P) kept only
    where its first-layer map, which has not read the relation yet, sees something (at least
    ``support`` of its peak). A false "the triangle above the square" pushes the triangle's
    last map onto the empty region above the square; that region has no first-layer support,
    so the word falls back to its first-layer map (where the triangle really is) whenever
    less than ``kept`` of its last map survives. Otherwise the check would only read back
    what the caption said.

    Measured on 80 relational captions and their relation swaps (v16): without this, the
    relation sentence called 1 of 80 swaps wrong and no swap's phrase box was on its object;
    with ``support`` 0.01, 77 of 80 and 77 of 80 (0.05: 78 and 78), every true caption still
    agreeing; the referent found on 300 relational scenes with a distractor 0.990 (0.05:
    0.973, as a first-layer map can give the referent less than 5% of the distractor's peak)."""
    last, first = np.asarray(last, np.float64), np.asarray(first, np.float64)
    seen = first >= support * first.max(1, keepdims=True)
    masked = np.where(seen, last, 0.0)
    ok = masked.sum(1) >= kept * last.sum(1)
    return np.where(ok[:, None], masked, first)
