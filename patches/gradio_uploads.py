"""gradio 6.31 decodes an uploaded image in full before any handler can look at it.

``gr.Image(type="pil")`` opens and decodes the upload in its ``preprocess``: a 12 KB PNG of
100 megapixels ties up a worker for seconds and gigabytes, and an image sent to
``/gradio_api/call/<endpoint>`` as a ``data:`` URL (``gradio.image_utils.preprocess_image``)
skips ``max_file_size`` altogether (a 300 KB, 79-megapixel PNG cost 674 MB). A file that is
empty, not an image, or truncated fails there with gradio's generic error.

:func:`guard` wraps one component's ``preprocess``: it reads only the header (from the file,
or from the decoded bytes of a ``data:`` URL), refuses what ``check(width, height)`` refuses
(it raises ``gr.Error``), then decodes at once, so that a truncated file fails here with a
message that says what to do. Done on the instance: a ``gr.Image`` subclass would make gradio
write a ``.pyi`` stub beside the app.

Upstream check: ``tests/test_patches.py`` fails once gradio checks the pixel count of a
``data:`` URL image before decoding it.
"""

from __future__ import annotations

import base64
import binascii
import io
import os

import gradio as gr
from PIL import Image

from .gradio_inputs import refuse as _refuse


def _header_size(payload) -> tuple[int, int] | None:
    """(width, height) from the upload's header without decoding the pixels; None if it has no source."""
    url = getattr(payload, "url", None) or ""
    path = getattr(payload, "path", None)
    if url.startswith("data:"):
        try:
            data = base64.b64decode(url.split(",", 1)[1], validate=False)
        except (IndexError, binascii.Error, ValueError) as e:
            raise _refuse("The image's data: URL is not valid base64. Send a PNG or JPEG file.", title="Not an image") from e
        if not data:
            raise _refuse("The uploaded image is empty (0 bytes). Upload a PNG or JPEG image.", title="Empty file")
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    if path:
        if os.path.getsize(path) == 0:
            raise _refuse("The uploaded file is empty (0 bytes). Upload a PNG or JPEG image.", title="Empty file")
        with Image.open(path) as im:  # reads the header only
            return im.size
    return None


def guard(component: gr.Image, check) -> gr.Image:
    """Make ``component`` (a ``gr.Image(type="pil")``) call ``check(width, height)`` before
    decoding, and turn unreadable uploads into clear messages."""
    original = component.preprocess

    def preprocess(payload):
        if payload is None:
            return None
        try:
            size = _header_size(payload)
            if size is not None:
                check(*size)
            image = original(payload)
            if isinstance(image, Image.Image):
                check(*image.size)
                image.load()  # decode now: a truncated file fails here, not later
            return image
        except gr.Error:
            raise
        except Image.DecompressionBombError as e:
            raise _refuse(f"The image is far too large ({e}). Downscale it and upload it again.", title="Image too large") from e
        except Exception as e:  # UnidentifiedImageError, OSError (truncated), ...
            raise _refuse("Could not read the uploaded file as an image (it is not an image, or it is damaged or "
                           "truncated). Upload a PNG or JPEG file.", title="Not an image") from e  # fmt: skip

    component.preprocess = preprocess
    return component

