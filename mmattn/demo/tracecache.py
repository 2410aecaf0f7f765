"""A bounded cache of traces: one forward pass per (image content, caption, model, options).

The demo asks many questions of one grounding (every tab, every click, every word, layer,
head and direction); each is a reading of the same :class:`~mmattn.trace.Trace`. The cache
keys a trace by a digest of the image's pixels, the caption and the options that change the
forward pass (gradients for Grad-CAM), keeps the most recently used ``size`` traces, and runs
concurrent identical requests once (the second waits for the first).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future

from PIL import Image

from mmattn.api.trace import Trace


def image_digest(image: Image.Image) -> str:
    """A digest of an image's content (mode, size and pixels), the same for the same picture
    however it arrived (file, upload, array)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class TraceCache:
    """``get(image, caption, gradients=...)`` -> the trace, computed at most once while cached.

    Traces are recorded with the fusion attentions' inputs (the step-by-step view reads
    them); a Grad-CAM trace (``gradients=True``) also serves the questions without gradients."""

    def __init__(self, grounder, size: int = 32):
        if size < 1:
            raise ValueError(f"the cache must hold at least one trace (got size={size})")
        self.grounder = grounder
        self.size = size
        self._lock = threading.Lock()
        self._traces: OrderedDict[str, Future] = OrderedDict()

    def key(self, digest: str, caption: str, gradients: bool) -> str:
        return "|".join((self.grounder.name, digest, "grad" if gradients else "plain", caption))

    def __len__(self) -> int:
        return len(self._traces)

    def lookup(self, key: str) -> Trace | None:
        """The finished trace under ``key``, if cached (no computation)."""
        with self._lock:
            f = self._traces.get(key)
            if f is None or not f.done() or f.exception() is not None:
                return None
            self._traces.move_to_end(key)
            return f.result()

    def get(self, image: Image.Image, caption: str, *, gradients: bool = False, digest: str | None = None) -> tuple[str, Trace]:
        """(key, trace) for ``image`` (an RGB PIL image) and ``caption``; runs the model only
        if no cached trace answers the question."""
        digest = digest or image_digest(image)
        keys = [self.key(digest, caption, True)] + ([] if gradients else [self.key(digest, caption, False)])
        mine = False  # whether this call computes the trace (others asking meanwhile wait for it)
        with self._lock:
            for k in keys:
                f = self._traces.get(k)
                if f is not None and not (f.done() and f.exception() is not None):
                    self._traces.move_to_end(k)
                    break
            else:
                k, f, mine = keys[-1], Future(), True
                self._traces[k] = f
                while len(self._traces) > self.size:
                    self._traces.popitem(last=False)
        if mine:
            try:
                f.set_result(self.grounder.trace(image, caption, gradients=gradients, inputs=True))
            except BaseException as e:
                f.set_exception(e)
                with self._lock:
                    if self._traces.get(k) is f:
                        del self._traces[k]
                raise
        return k, f.result()
