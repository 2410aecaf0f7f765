"""Maps, boxes and evaluation metrics on hand-made inputs with known answers."""

import numpy as np
import torch

from mmattn.api.maps import (
    _components,
    box_from_map,
    box_iou,
    boxes_from_fine,
    boxes_from_maps,
    patch_coverage,
    reduce_heads,
    upsample,
    word_matrix,
)
from mmattn.training.evaluate import markdown


def test_box_iou_known_values():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == 50 / 150
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou(None, (0, 0, 1, 1)) == 0.0


def test_box_from_map_takes_the_peak_region_only():
    m = np.zeros((20, 30))
    m[2:6, 3:9] = 1.0  # the peak region
    m[10:15, 20:28] = 0.6  # a second blob above half the peak, not connected
    assert box_from_map(m) == (3, 2, 9, 6)
    assert box_from_map(np.zeros((4, 4))) is None


def test_stacked_flood_fill_follows_winding_regions_and_matches_one_at_a_time():
    m = np.zeros((9, 9))
    m[1, 1:8] = m[1:8, 7] = m[7, 1:8] = m[3:8, 1] = m[3, 1:5] = 1.0  # a spiral
    m[5, 3:6] = 0.9  # inside the spiral but not connected to it
    m[3, 4] = 2.0  # the peak, at the spiral's inner end
    assert box_from_map(m) == (1, 1, 8, 8)
    rng = np.random.default_rng(0)
    maps = rng.random((20, 12, 17)) ** 4
    maps[3] = 0.0
    stacked = boxes_from_fine(maps, 0.5)
    assert stacked[3] is None
    assert stacked == [box_from_map(x, 0.5) for x in maps]


def _bfs_region(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of ``mask`` holding ``seed``, one cell at a time."""
    out = np.zeros_like(mask)
    todo = [seed] if mask[seed] else []
    while todo:
        y, x = todo.pop()
        if out[y, x]:
            continue
        out[y, x] = True
        for v, u in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= v < mask.shape[0] and 0 <= u < mask.shape[1] and mask[v, u] and not out[v, u]:
                todo.append((v, u))
    return out


def test_flood_fill_by_runs_equals_a_cell_by_cell_search():
    rng = np.random.default_rng(1)
    for density in (0.3, 0.55, 0.7, 0.9):  # from scattered cells to one winding region
        masks = rng.random((30, 13, 21)) < density
        seeds = np.zeros_like(masks)
        at = [(int(rng.integers(13)), int(rng.integers(21))) for _ in range(30)]
        for n, (y, x) in enumerate(at):
            seeds[n, y, x] = True
        region = _components(masks, seeds)
        for n, (y, x) in enumerate(at):
            np.testing.assert_array_equal(region[n], _bfs_region(masks[n], (y, x)))


def test_upsample_keeps_geometry_on_a_non_square_grid():
    gh, gw = 3, 5
    maps = torch.zeros(1, gh * gw)
    maps[0, 1 * gw + 4] = 1.0  # patch (row 1, col 4): right edge, middle row
    up = upsample(maps, (gh, gw), (30, 50))[0].numpy()
    y, x = np.unravel_index(up.argmax(), up.shape)
    assert 10 <= y < 20 and 40 <= x < 50


def test_boxes_from_maps_in_image_pixels():
    gh, gw = 4, 6
    maps = torch.zeros(1, gh * gw)
    maps[0, 2 * gw + 1] = 1.0
    (box,) = boxes_from_maps(maps, (gh, gw), (40, 60))
    # the patch (2, 1) covers x 10..20, y 20..30
    assert box_iou(box, (10, 20, 20, 30)) > 0.5


def test_patch_coverage_fractions():
    mask = np.zeros((16, 24), bool)
    mask[0:8, 0:4] = True  # half of patch (0, 0) of an 2x3 grid of 8x8 patches
    cov = patch_coverage(mask, (2, 3))
    assert cov[0, 0] == 0.5 and cov.sum() == 0.5


def test_word_matrix_merges_pieces():
    M = word_matrix([None, 0, 1, 1, 1, None], 2)
    assert M.shape == (2, 6)
    torch.testing.assert_close(M[1], torch.tensor([0, 0, 1 / 3, 1 / 3, 1 / 3, 0]))


def test_reduce_heads():
    w = torch.rand(2, 4, 3, 5)
    torch.testing.assert_close(reduce_heads(w, "mean"), w.mean(1))
    torch.testing.assert_close(reduce_heads(w, "max"), w.amax(1))
    torch.testing.assert_close(reduce_heads(w, 2), w[:, 2])


def test_markdown_table_lists_every_set():
    m = {"pointing": {"all": 0.5}, "box_iou": 0.25, "image_to_text": 1.0, "match": {"all": 0.75},
         "grounded": {"precision": 1.0, "recall": 0.5}}  # fmt: skip
    table = markdown({"train": m, "shifted": m})
    assert "| metric | train | shifted |" in table and "0.500" in table and "–" in table


def test_peak_of_an_object_straddling_four_patches_is_its_centre():
    """Rendering spreads each patch over its area: four equal patches peak at their shared corner."""
    from mmattn.api.maps import peak_points

    gh, gw = 4, 6
    maps = torch.zeros(1, gh * gw)
    for r, c in [(1, 2), (1, 3), (2, 2), (2, 3)]:
        maps[0, r * gw + c] = 1.0
    ((x, y),) = peak_points(maps, (gh, gw), (40, 60))
    assert abs(x - 30) <= 2 and abs(y - 20) <= 2  # the corner shared by the four patches
