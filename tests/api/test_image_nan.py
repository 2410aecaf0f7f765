"""A PIL float image holding NaN or infinity is refused like the same array (issue 27, finding 9)."""

import warnings

import numpy as np
import pytest
from PIL import Image

from mmattn.api.image import load_image


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("everywhere", [True, False])
def test_a_float_pil_image_with_nan_or_infinity_is_refused(bad, everywhere):
    a = np.full((16, 16), 0.5, dtype=np.float32)
    if everywhere:
        a[:] = bad
    else:
        a[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_image(a)  # the array: refused before issue 27 too
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        with pytest.raises(ValueError, match=r"PIL mode F\) holds NaN or infinite"):
            load_image(Image.fromarray(a, mode="F"))


def test_a_finite_float_pil_image_is_still_read():
    a = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    im = load_image(Image.fromarray(a, mode="F"))
    assert im.mode == "RGB" and np.asarray(im)[0, 0, 0] == 0 and np.asarray(im)[-1, -1, 0] == 255
