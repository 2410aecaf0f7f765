"""Turning whatever the caller has into the model's pixels, with one resize policy.

**Resize policy.** The image is scaled (up or down) so that its longer side is
``image_size`` pixels (128 for the shipped model) and its aspect ratio is kept; then each
side is rounded to the nearest multiple of ``patch_size`` (at least one patch). The patch
grid is ``(gh, gw) = (height // patch_size, width // patch_size)``. Maps computed on that
grid are resized back to the caller's image, so patch (r, c) covers rows r/gh..(r+1)/gh and
columns c/gw..(c+1)/gw of the original image, whatever its size.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

MEAN, STD = 0.5, 0.25  #: pixel normalisation: (x / 255 - MEAN) / STD
MAX_PIXELS = 40_000_000  #: larger images are refused before they are decoded


def target_size(width: int, height: int, image_size: int = 128, patch_size: int = 8) -> tuple[int, int]:
    """The (width, height) the model sees for an image of the given size (see module doc)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"the image is empty ({width}x{height} pixels): pass an image with at least one pixel")
    scale = image_size / max(width, height)

    def fit(n: int) -> int:
        return max(patch_size, round(n * scale / patch_size) * patch_size)

    return fit(width), fit(height)


def load_image(image) -> Image.Image:
    """A PIL RGB image from a PIL image, an (H, W), (H, W, 3) or (H, W, 4) array, a path or bytes.

    EXIF orientation is applied; transparent pixels are composited on white; 16-bit and
    other modes are converted. Raises TypeError / ValueError with a hint on bad input.
    """
    if image is None:
        raise TypeError("no image given: pass a PIL.Image, a numpy array (H, W, 3) or a file path")
    if isinstance(image, (str, Path, bytes, bytearray)):
        source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image
        if not isinstance(image, (bytes, bytearray)) and not Path(image).is_file():
            raise ValueError(f"no image file at {str(image)!r}: check the path")
        try:
            with Image.open(source) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(
                        f"the image is too large ({im.width}x{im.height} pixels, at most {MAX_PIXELS:,}): downscale it first"
                    )
                im.load()
                image = im.copy()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise ValueError(f"could not read the image ({e.__class__.__name__}: {e}): pass a valid PNG or JPEG") from e
    elif isinstance(image, np.ndarray):
        image = _from_array(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image, numpy array or file path, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"the image is empty ({image.width}x{image.height} pixels): pass an image with at least one pixel")
    if image.width * image.height > MAX_PIXELS:
        raise ValueError(f"the image is too large ({image.width}x{image.height} pixels, at most {MAX_PIXELS:,}): downscale it first")
    image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _from_array(a: np.ndarray) -> Image.Image:
    """An (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of pixels -> a PIL image.

    Accepted values: uint8 as they are; other integers in 0..255 (an array of only 0s and 1s
    is black and white); floats in [0, 1] (times 255) or in [0, 255]; booleans. NaN,
    infinity and values outside these ranges are refused with a ValueError that says how to
    convert the array, never clipped into a picture that the caller did not mean."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"expected an array of shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"the image is empty (array of shape {a.shape}): pass an image with at least one pixel")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ValueError(f"the image is too large ({a.shape[1]}x{a.shape[0]} pixels, at most {MAX_PIXELS:,}): downscale it first")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind in "iu" and a.dtype != np.uint8:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"integer pixel values must lie in 0..255, but this {a.dtype} array holds {lo}..{hi}: "
                             "convert it to 8 bits first (a 16-bit image: (a // 257).astype(np.uint8))")  # fmt: skip
        a = a.astype(np.uint8) * (255 if hi <= 1 else 1)
    elif a.dtype.kind == "f":
        a = np.asarray(a, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError("the image array holds NaN or infinite values: replace them first (e.g. np.nan_to_num(a)) "
                             "and pass pixels in [0, 1] or [0, 255]")  # fmt: skip
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"float pixel values must lie in [0, 1] or [0, 255], but this array holds {lo:g}..{hi:g}: "
                             "rescale it first, e.g. (a - a.min()) / (a.max() - a.min())")  # fmt: skip
        a = (a * 255 if hi <= 1.0 else a).astype(np.uint8)  # floats in [0, 1] or in [0, 255]
    elif a.dtype != np.uint8:
        raise TypeError(f"expected an array of numbers (uint8, other integers, floats or booleans), got dtype {a.dtype}")
    return Image.fromarray(np.ascontiguousarray(a))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if not np.isfinite(a).all():  # as for an array (_from_array): never made-up pixels
            raise ValueError(f"the image (PIL mode {im.mode}) holds NaN or infinite values: replace them first "
                             "(e.g. Image.fromarray(np.nan_to_num(np.asarray(im))))")  # fmt: skip
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def to_tensor(image: Image.Image, image_size: int = 128, patch_size: int = 8) -> torch.Tensor:
    """Resize by the module's policy (antialiased bilinear, the filter of Pillow's
    ``Image.BILINEAR``, on 8-bit pixels: 5x faster than Pillow here) and normalise.
    A PIL RGB image -> (3, h, w) float32."""
    width, height = target_size(image.width, image.height, image_size, patch_size)
    a = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)  # (3, H, W) uint8
    if (image.width, image.height) != (width, height):
        a = F.interpolate(a[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0]
    return (a.float() / 255 - MEAN) / STD
