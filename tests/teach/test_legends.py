"""Legends everywhere: colour bars in each picture's own colours, labels in the page's language,
the 2-D encoding on a diverging scale centred on its own values, positions off side by side."""

import numpy as np
import pytest
from PIL import Image
from scene_helpers import CAPTIONS, two_shapes

from mmattn.api import pictures
from mmattn.teach import drawing, figures, recompute, views
from mmattn.teach.text import t


def has_colour_bar(picture: Image.Image, signed: bool) -> bool:
    """A row of the picture runs through the ramp it was coloured with, end to end."""
    a = np.asarray(picture.convert("RGB")).astype(int)
    ramp = (pictures.DIVERGING if signed else pictures.RAMP).astype(int)
    for row in a[::-1]:
        d0, d1 = np.abs(row - ramp[0]).sum(1), np.abs(row - ramp[-1]).sum(1)
        if d0.min() < 40 and d1.min() < 40 and d1.argmin() - d0.argmin() > picture.width // 2:
            return True
    return False


def test_the_font_draws_chinese():
    f = drawing.font(14)
    assert f.getmask("层").getbbox() is not None and f.getlength("第 0 层") > 20


def test_colour_bar_shows_its_range_and_wraps_its_label():
    bar = drawing.colour_bar(200, -2.0, 2.0, "a long label " * 6, signed=True)
    assert has_colour_bar(bar, True) and bar.height > 60  # the label took several lines
    assert has_colour_bar(drawing.colour_bar(200, 0.0, 0.2, "weight"), False)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_head_grids_have_colour_bars_and_labels_in_the_page_language(g, lang):
    tr = g.trace(two_shapes(), CAPTIONS[lang])
    t2i, i2t, info = views.heads_view(tr, None, lang)
    assert has_colour_bar(t2i, False) and has_colour_bar(i2t, False)
    other = views.heads_view(tr, None, "zh" if lang == "en" else "en")[0]
    top = np.asarray(t2i)[:24]  # the column labels ("head 0" / "头 0") differ by language
    assert top.shape != np.asarray(other)[:24].shape or not np.array_equal(top, np.asarray(other)[:24])


def test_the_2d_encoding_is_diverging_with_a_legend(g):
    pv = views.positions_view(g, two_shapes(), figures=False)
    pic = pv.grid_picture
    assert has_colour_bar(pic, True)
    a = np.asarray(pic.convert("RGB")).astype(int)[: pic.height // 2]
    blueish = ((a[..., 2] - a[..., 0]) > 60).mean()
    reddish = ((a[..., 0] - a[..., 2]) > 60).mean()
    assert blueish > 0.05 and reddish > 0.01  # not one brown: both ends of the scale are used


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_positions_off_side_by_side_with_each_outline_named(g, lang):
    tr = g.trace(two_shapes(), CAPTIONS[lang])
    p = recompute.positions_off(tr, recompute.without_positions(g).trace(tr.image, tr.caption.text))
    pic = views.positions_off_picture(p, tr, lang)
    view = pictures.resize_to_height(tr.image, views.POS_OFF_HEIGHT)
    assert pic.width >= 2 * view.width  # with and without, side by side
    colours = views.word_colours(p.words)
    legend = np.asarray(pic.convert("RGB")).astype(int)[view.height + 60 :]  # under the two titled pictures
    shown = [i for i, found in enumerate(p.grounded_on) if found]
    assert shown
    for i in shown:  # each found word's swatch is in the legend under the pictures
        rgb = np.array([int(colours[i][k : k + 2], 16) for k in (1, 3, 5)])
        assert (np.abs(legend - rgb).sum(-1) < 12).sum() > 100, p.words[i]
    assert t("pos_off_with", lang) != t("pos_off_without", lang)


def test_the_pe_similarity_figure_fills_its_card():
    fig = figures.pe_similarity_figure(recompute.positional_1d(16, 32))
    assert fig.layout.xaxis.scaleanchor is None and fig.layout.xaxis.constrain is None
