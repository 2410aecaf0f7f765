"""gradio 6.31 writes output pictures to its cache non-atomically, and slowly.

``gradio.processing_utils.save_pil_to_cache`` writes each output image to a content-addressed
path (hash of the bytes -> ``<cache>/<hash>/image.webp``) with a plain ``write_bytes`` on
every request. Two identical concurrent requests can then rewrite a file while it is being
served: truncated downloads, "Too much data for declared Content-Length" (15-20 of 64
requests failed with 16 users sending the same input). It also encodes with its default
settings: WebP takes about 30x longer to encode than JPEG, and PNG at zlib level 6 about
twice as long as level 1 for barely smaller files.

:func:`install` replaces it with a version that encodes our own pictures (no metadata) as
PNG at level 1 or JPEG at quality 90, writes to a temporary file in the same folder and
``os.replace``-s it into place, and skips files that are already there.

Upstream check: ``tests/test_patches.py`` fails once gradio's own function writes through
a temporary file (``os.replace`` / ``tempfile`` in its source).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from PIL import Image

ORIGINAL = processing_utils.save_pil_to_cache  #: gradio's own (the upstream check reads it)
PNG_LEVEL = 1
JPEG_QUALITY = 90


def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    fmt = {"jpg": "jpeg"}.get(format.lower(), format.lower())
    if fmt in ("png", "jpeg") and not img.info:  # our own pictures (no metadata to keep): faster settings
        with io.BytesIO() as buf:
            img.save(buf, fmt, **({"compress_level": PNG_LEVEL} if fmt == "png" else {"quality": JPEG_QUALITY}))
            data = buf.getvalue()
    else:
        data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if not (path.is_file() and path.stat().st_size == len(data)):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return str(path)


save_pil_to_cache._mmattn_atomic = True  # type: ignore[attr-defined]


def install() -> None:
    if not getattr(processing_utils.save_pil_to_cache, "_mmattn_atomic", False):
        processing_utils.save_pil_to_cache = save_pil_to_cache
