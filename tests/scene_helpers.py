"""The scene and captions the teaching and Chinese-word tests share: a red circle on the left,
a blue square on the right (the shapes world's colours), and the caption that describes it."""

from PIL import Image, ImageDraw

CAPTIONS = {"en": "the red circle left of the blue square", "zh": "红色的圆形在蓝色正方形的左边"}


def two_shapes() -> Image.Image:
    """160×120: a red circle at x 20..60 and a blue square at x 100..140, both at y 40..80."""
    im = Image.new("RGB", (160, 120), (128, 128, 128))
    d = ImageDraw.Draw(im)
    d.ellipse([20, 40, 60, 80], fill=(220, 30, 30))
    d.rectangle([100, 40, 140, 80], fill=(30, 60, 220))
    return im
