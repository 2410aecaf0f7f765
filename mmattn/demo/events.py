"""How the page's events call the handlers (no gradio here): a handler's dict becomes the
tuple of its event's outputs, then the status line; a user error keeps every output as it
is and says why in the status line (one log line, no traceback). A view's numbers come with
their download file, written in the same event."""

from __future__ import annotations

import functools
import logging

from mmattn.demo.export import export_or_none
from mmattn.demo.handlers import SKIP, ordered
from mmattn.teach import views

log = logging.getLogger("mmattn.demo")


#: a view's JSON -> (its download button, the file's stem). Written by the event that shows the
#: numbers: a ``.change`` event per button cost the browser three more events per Ground click,
#: each of which makes gradio's page copy the state of every output twice (about 150 ms of
#: Chromium's time per click on a 2-core AVX2 EPYC, bench/browser.py)
DOWNLOADS = {"heads_data": ("heads_export", "heads"), "steps_data": ("steps_export", "steps"), "pos_data": ("pos_export", "positions")}


def with_downloads(names) -> list[str]:
    """An event's output names, with the download button of each view's numbers among them."""
    names = list(names)
    return names + [DOWNLOADS[n][0] for n in names if n in DOWNLOADS and DOWNLOADS[n][0] not in names]


def add_downloads(result: dict) -> dict:
    """``result`` with a download file for each view's numbers it sets (none where it leaves them as they are)."""
    for nums, (button, stem) in DOWNLOADS.items():
        value = result.get(nums, SKIP)
        if button not in result and not (isinstance(value, dict) and value.get("__type__") == "update"):
            result[button] = export_or_none(value, stem)
    return result


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
            result = add_downloads(fn(*args))
            return (*ordered(result, names), result.get("status", ""))
        except (ValueError, TypeError) as e:
            msg = getattr(e, "message", None) or str(e)
            log.info("refused (%s): %s", getattr(fn, "__name__", "handler"), msg)
            return (*(SKIP for _ in names), f"⚠️ {views.md_text(msg)}")

    return run
