"""Specification of mmattn.positional (and of why positions are needed at all).

- sinusoidal_1d is exactly PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...):
  bounded, one distinct vector per position, PE(pos + k) a fixed rotation of PE(pos), and
  PE @ PEᵀ depends only on |i - j|.
- 2-D encodings are row-major: patch (r, c) of a (gh, gw) grid is row r * gw + c, its first
  half of channels encodes r, its second half c. Learned tables follow the same layout.
- Without positions the text encoder is permutation-equivariant; with them it is not.
"""

import math

import pytest
import torch

from mmattn.models.encoders import TextEncoder
from mmattn.nn.positional import Learned1d, Learned2d, Sinusoidal1d, Sinusoidal2d, sinusoidal_1d, sinusoidal_2d


def formula(n: int, d: int) -> torch.Tensor:
    """The textbook formula, element by element, in float64 Python math."""
    pe = [[0.0] * d for _ in range(n)]
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            pe[pos][2 * i] = math.sin(angle)
            pe[pos][2 * i + 1] = math.cos(angle)
    return torch.tensor(pe, dtype=torch.float64).float()


def rotation(k: int, d: int) -> torch.Tensor:
    """M_k (d, d): one 2x2 rotation per frequency pair, such that PE(pos + k) = PE(pos) @ M_k."""
    m = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        b = k / 10000 ** (2 * i / d)
        c, s = math.cos(b), math.sin(b)
        # [sin a, cos a] @ [[c, -s], [s, c]] = [sin(a + b), cos(a + b)]
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return m


# ---- 1-D sinusoids ------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(1, 2), (50, 16), (33, 128)])
def test_sinusoidal_1d_is_the_formula(n, d):
    pe = sinusoidal_1d(n, d)
    assert pe.shape == (n, d) and pe.dtype == torch.float32
    assert torch.equal(pe, formula(n, d))


def test_sinusoidal_1d_position_zero_is_sin0_cos0():
    assert torch.equal(sinusoidal_1d(1, 8)[0], torch.tensor([0.0, 1.0] * 4))


def test_sinusoidal_1d_is_bounded_and_every_position_is_distinct():
    pe = sinusoidal_1d(200, 16)
    assert pe.min() >= -1 and pe.max() <= 1
    assert torch.unique(pe, dim=0).shape[0] == 200
    dist = torch.cdist(pe, pe) + torch.eye(200) * 10
    assert dist.min() > 1e-3  # not just different bits: clearly different vectors


@pytest.mark.parametrize("k", [1, 3, 10])
def test_shifting_by_k_is_one_fixed_linear_map(k):
    n, d = 60, 16
    pe = sinusoidal_1d(n + k, d).double()
    m = rotation(k, d)
    torch.testing.assert_close(pe[:n] @ m, pe[k : n + k], atol=1e-6, rtol=0)  # the same M_k for every pos


def test_shift_map_learned_on_some_positions_holds_on_others():
    """Solve PE(pos + k) = PE(pos) @ M by least squares on positions 0..39 only, then check 40..79."""
    k, d = 5, 8
    pe = sinusoidal_1d(85, d).double()
    m = torch.linalg.lstsq(pe[:40], pe[k : 40 + k]).solution
    torch.testing.assert_close(pe[40:80] @ m, pe[40 + k : 80 + k], atol=1e-3, rtol=0)
    torch.testing.assert_close(m, rotation(k, d), atol=1e-2, rtol=0)


def test_similarity_depends_only_on_distance():
    pe = sinusoidal_1d(40, 32).double()
    g = pe @ pe.T
    torch.testing.assert_close(g, g.T)
    for offset in range(-39, 40):
        diag = torch.diagonal(g, offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.diagonal(g), torch.full((40,), 16.0, dtype=torch.float64))  # sin²+cos² per pair


@pytest.mark.parametrize("n, d", [(-1, 8), (4, 0), (4, 7), (4, -2)])
def test_sinusoidal_1d_rejects_bad_sizes(n, d):
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_1d(n, d)


def test_sinusoidal_1d_of_zero_positions_is_empty():
    assert sinusoidal_1d(0, 8).shape == (0, 8)


# ---- 2-D sinusoids ------------------------------------------------------------------------


def test_sinusoidal_2d_is_row_major_rows_then_columns():
    gh, gw, d = 3, 5, 16
    pe = sinusoidal_2d(gh, gw, d)
    assert pe.shape == (gh * gw, d)
    rows, cols = sinusoidal_1d(gh, d // 2), sinusoidal_1d(gw, d // 2)
    for r in range(gh):
        for c in range(gw):
            assert torch.equal(pe[r * gw + c, : d // 2], rows[r]), (r, c)
            assert torch.equal(pe[r * gw + c, d // 2 :], cols[c]), (r, c)


def test_sinusoidal_2d_matches_the_order_flatten_reads_a_feature_map():
    gh, gw, d = 4, 3, 8
    grid = sinusoidal_2d(gh, gw, d).T.reshape(d, gh, gw)  # back to a (D, gh, gw) feature map
    assert torch.equal(grid.flatten(1).T, sinusoidal_2d(gh, gw, d))
    assert torch.equal(grid[: d // 2, 2, 1], sinusoidal_1d(gh, d // 2)[2])  # row channels at r=2
    assert torch.equal(grid[d // 2 :, 2, 1], sinusoidal_1d(gw, d // 2)[1])  # column channels at c=1


def test_sinusoidal_2d_patches_are_distinct():
    pe = sinusoidal_2d(6, 10, 32)
    assert torch.unique(pe, dim=0).shape[0] == 60


@pytest.mark.parametrize(
    "gh, gw, d, msg",
    [(3, 5, 6, "divisible by 4"), (3, 5, 2, "divisible by 4"), (0, 5, 8, "at least 1x1"), (3, -1, 8, "at least 1x1")],
)
def test_sinusoidal_2d_rejects_bad_sizes(gh, gw, d, msg):
    with pytest.raises(ValueError, match=msg):
        sinusoidal_2d(gh, gw, d)


def test_sinusoidal_modules_return_the_functions():
    assert torch.equal(Sinusoidal1d(12)(7), sinusoidal_1d(7, 12))
    assert torch.equal(Sinusoidal2d(12)(2, 3), sinusoidal_2d(2, 3, 12))
    assert list(Sinusoidal1d(12).parameters()) == []  # fixed, nothing to learn


# ---- learned tables -----------------------------------------------------------------------


def test_learned_1d_shape_and_prefix():
    pos = Learned1d(10, 8)
    assert pos(4).shape == (4, 8)
    assert torch.equal(pos(4), pos.table[:4])
    assert pos(10).shape == (10, 8)


def test_learned_1d_rejects_sequences_longer_than_its_table():
    with pytest.raises(ValueError, match="11.*10"):
        Learned1d(10, 8)(11)


def test_learned_2d_shape_and_row_major_mapping():
    gh, gw, d = 3, 5, 8
    pos = Learned2d(4, 6, d)
    pe = pos(gh, gw)
    assert pe.shape == (gh * gw, d)
    for r in range(gh):
        for c in range(gw):
            assert torch.equal(pe[r * gw + c], torch.cat([pos.rows[r], pos.cols[c]])), (r, c)


def test_learned_2d_is_trainable():
    pos = Learned2d(4, 6, 8)
    pos(2, 3).sum().backward()
    assert pos.rows.grad[:2].abs().sum() > 0 and (pos.rows.grad[2:] == 0).all()
    assert pos.cols.grad[:3].abs().sum() > 0 and (pos.cols.grad[3:] == 0).all()


@pytest.mark.parametrize("gh, gw", [(5, 3), (2, 7), (9, 9)])
def test_learned_2d_rejects_grids_larger_than_its_tables(gh, gw):
    with pytest.raises(ValueError, match="exceeds"):
        Learned2d(4, 6, 8)(gh, gw)


def test_learned_2d_needs_an_even_dim():
    with pytest.raises(ValueError, match="even"):
        Learned2d(4, 4, 7)


# ---- the text encoder: order matters only through positions ---------------------------------


def text_encoder(positions: str) -> TextEncoder:
    return TextEncoder(50, 32, 4, 2, positions=positions).eval()


def test_without_positions_the_text_encoder_is_permutation_equivariant():
    enc = text_encoder("none")
    ids = torch.randint(5, 50, (2, 9))
    perm = torch.randperm(9)
    with torch.no_grad():
        feats, _ = enc(ids)
        feats_perm, _ = enc(ids[:, perm])
    torch.testing.assert_close(feats_perm, feats[:, perm], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_with_positions_word_order_changes_the_features(positions):
    enc = text_encoder(positions)
    ids = torch.randint(5, 50, (2, 9))
    perm = torch.tensor([8, 0, 1, 2, 3, 4, 5, 6, 7])  # a rotation: no token stays at its place
    with torch.no_grad():
        feats, _ = enc(ids)
        feats_perm, _ = enc(ids[:, perm])
    assert not torch.allclose(feats_perm, feats[:, perm], atol=1e-3)


def test_text_encoder_rejects_unknown_positions():
    with pytest.raises(ValueError, match="positions"):
        TextEncoder(50, 32, 4, 1, positions="rotary")
