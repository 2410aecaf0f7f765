"""glibc's allocator keeps the freed buffers of concurrent requests in many per-thread arenas.

With one malloc arena per worker thread, the megabytes a request frees (maps, pictures)
stay mapped in many half-empty arenas, and the server's resident memory creeps up under
concurrent users. :func:`install` caps the arenas at 2 (``mallopt(M_ARENA_MAX, 2)``) and
:func:`give_back` returns freed memory to the system (``malloc_trim(0)``) between requests.
Off glibc (macOS, musl), or with ``MMATTN_MALLOC_TUNING=0``, both do nothing.

Upstream check: none can tell when glibc stops needing this; ``bench/service.py`` measures
memory over 500 requests (run it with ``MMATTN_MALLOC_TUNING=0`` to compare).
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8
_LIBC = None


def install() -> None:
    global _LIBC
    if _LIBC is not None or os.environ.get("MMATTN_MALLOC_TUNING", "1") != "1":
        return
    try:
        _LIBC = ctypes.CDLL("libc.so.6")
        _LIBC.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        _LIBC = None


def give_back() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
