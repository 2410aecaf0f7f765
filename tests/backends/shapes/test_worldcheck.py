"""Specification of mmattn.worldcheck.

- Shapes-world scenes are in the world at every size, in both render configs, after JPEG
  compression, after fitting to 512 px, and in RGBA; so are the shipped example scenes.
- Photographs are not (a handful of scikit-image's, skipped without it), nor are a smooth
  colour gradient, a grey-scale scene or an image smaller than any scene; each verdict says
  which rule fired, in English and Chinese.
- The score is the largest rule ratio and the verdict is ``score <= 1``; the background
  levels the rule accepts cover every level the renderer draws.
- abstention_rate is the flagged fraction; bad inputs raise.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattn.backends.shapes.worldcheck import LEVELS, MIN_SIDE, REASONS, WorldCheck, abstention_rate, check_image
from mmattn.scenes import SHIFTED, TRAIN, make_sample

EXAMPLES = Path(__file__).resolve().parents[3] / "assets" / "examples"


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("config", [TRAIN, SHIFTED], ids=lambda c: c.name)
@pytest.mark.parametrize("size", [(96, 96), (200, 100), (320, 240), (640, 480), (1024, 768)])
def test_scenes_of_every_size_are_in_the_world(size, config):
    for seed in range(3):
        check = check_image(make_sample(seed, *size, config).image)
        assert check.in_world, (size, seed, check)


@pytest.mark.parametrize("quality", [90, 75, 50])
def test_jpeg_scenes_are_in_the_world(quality):
    for seed, size in enumerate([(96, 128), (160, 120), (320, 240), (640, 480)]):
        check = check_image(jpeg(make_sample(seed, *size, SHIFTED if seed % 2 else TRAIN).image, quality))
        assert check.in_world, (size, quality, check)


def test_resized_and_rgba_scenes_are_in_the_world():
    big = make_sample(7, 1024, 768).image
    small = make_sample(8, 128, 96).image
    for image in (big.resize((512, 384), Image.BICUBIC), small.resize((512, 384), Image.BICUBIC), big.convert("RGBA")):
        assert check_image(image).in_world


def test_shipped_examples_are_in_the_world():
    files = sorted(EXAMPLES.glob("*.png"))
    assert files
    for f in files:
        assert check_image(Image.open(f)).in_world, f.name


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera", "retina"])
def test_photographs_are_not(name):
    skdata = pytest.importorskip("skimage.data")
    photo = Image.fromarray(getattr(skdata, name)())
    for image in (photo, photo.resize((photo.width // 2, photo.height // 2)), jpeg(photo.convert("RGB"), 75)):
        check = check_image(image)
        assert not check.in_world and check.score > 1
        assert check.rule in check.ratios and check.ratios[check.rule] == check.score
        assert (check.reason, check.reason_zh) == REASONS[check.rule]


def test_shading_is_not():
    """A flat red square on a muted colour gradient: in-between colours away from the
    square, as a photograph's shading has."""
    y, x = np.mgrid[0:256, 0:256]
    a = np.stack([100 + x // 5, 100 + y // 5, 120 - (x + y) // 10], axis=-1).astype(np.uint8)  # chroma 0-100
    a[100:140, 100:140] = (220, 30, 30)
    check = check_image(Image.fromarray(a))
    assert not check.in_world and check.rule == "shading"


def test_a_grey_scene_has_no_coloured_shape():
    check = check_image(make_sample(3, 160, 120).image.convert("L"))
    assert not check.in_world and check.rule == "colourless"


def test_images_smaller_than_any_scene_are_not():
    check = check_image(make_sample(3, 160, 120).image.resize((MIN_SIDE - 1, 40)))
    assert not check.in_world and check.rule == "too_small" and check.score == check.ratios["too_small"] > 1


def test_score_is_the_largest_ratio_and_decides():
    for image in (make_sample(5, 160, 120).image, Image.new("RGB", (100, 100), (20, 200, 40))):
        check = check_image(image)
        assert isinstance(check, WorldCheck)
        assert check.score == max(check.ratios.values())
        assert check.in_world == (check.score <= 1) == (check.rule == "in_world")


def test_verdicts_are_deterministic():
    image = make_sample(11, 320, 240).image
    assert check_image(image) == check_image(image.copy())


def test_background_levels_cover_the_renderer():
    for config in (TRAIN, SHIFTED):
        darkest = min(lo for lo, _ in config.gray) - config.tint
        brightest = max(hi for _, hi in config.gray) + config.tint
        assert LEVELS[0] < darkest and brightest < LEVELS[1], config.name


def test_abstention_rate():
    scene, grey = make_sample(1, 128, 128).image, Image.new("RGB", (128, 128), (90, 90, 90))
    assert abstention_rate([scene, grey]) == 0.5
    assert abstention_rate(iter([scene])) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        abstention_rate([])


def test_rejects_what_is_not_an_image():
    with pytest.raises(TypeError, match="ndarray"):
        check_image(np.zeros((64, 64, 3), np.uint8))
