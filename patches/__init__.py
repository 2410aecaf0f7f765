"""Workarounds of behaviours of the demo's dependencies, one module each.

Each module says what the dependency does wrong, in which version, and what the workaround
changes; ``tests/test_patches.py`` has, for each, a test that fails once the dependency no
longer needs it (so it can be deleted). Nothing here is numerical: the maths lives in ``mmattn``.

- :mod:`patches.gradio_stubs`: gradio rewrites its type stubs at every import (1 s of start-up).
- :mod:`patches.gradio_cache`: gradio's output cache is written non-atomically (a race under
  identical concurrent requests) and encodes pictures slowly.
- :mod:`patches.gradio_uploads`: gradio decodes an uploaded image fully before any check (a
  small PNG of 100 megapixels, or a ``data:`` URL, costs gigabytes).
- :mod:`patches.gradio_sessions`: gradio builds the config of every block for each new session
  (12 ms of every API call).
- :mod:`patches.malloc`: glibc keeps freed request buffers in many per-thread arenas.
"""
