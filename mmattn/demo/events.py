"""How the page's events call the handlers (no gradio here): a handler's dict becomes the
tuple of its event's outputs, then the status line; a user error keeps every output as it
is and says why in the status line (one log line, no traceback)."""

from __future__ import annotations

import functools
import logging

from mmattn.demo.handlers import SKIP, ordered
from mmattn.teach import views

log = logging.getLogger("mmattn.demo")


def keep_on_error(fn, names, give_back=None):
    """``fn(*args) -> dict`` as an event handler returning ``(*outputs named names, status)`` (the
    handler's own "status" if it gives one, else "").
    ``give_back``: called first (returns freed memory to the system between requests)."""
    names = list(names)

    @functools.wraps(fn)
    def run(*args):
        if give_back is not None:
            give_back()
        try:
            result = fn(*args)
            return (*ordered(result, names), result.get("status", ""))
        except (ValueError, TypeError) as e:
            msg = getattr(e, "message", None) or str(e)
            log.info("refused (%s): %s", getattr(fn, "__name__", "handler"), msg)
            return (*(SKIP for _ in names), f"⚠️ {views.md_text(msg)}")

    return run
