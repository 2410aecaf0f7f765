"""Helpers shared by the CLIP backend's tests (tests/backends/clip/): the hub offline with no
sockets, and a random photograph. Their fixtures (a tiny random CLIP and its grounders) are
in tests/backends/clip/conftest.py."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import huggingface_hub.constants
import numpy as np
from PIL import Image


@contextlib.contextmanager
def offline(cache: Path | None = None):
    """HF_HUB_OFFLINE=1 as the hub library sees it, an optional empty cache, and no sockets at all."""
    saved = huggingface_hub.constants.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_CACHE
    connect = socket.socket.connect

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    if cache is not None:
        huggingface_hub.constants.HF_HUB_CACHE = str(cache)
    socket.socket.connect = refuse
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_CACHE = saved
        socket.socket.connect = connect


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Uniform random RGB noise: a picture outside every world the models know."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
