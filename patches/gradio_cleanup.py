"""gradio 6.31 leaves its cache folders behind, and a SIGTERM removes nothing at all.

Every output picture and upload lives in a folder of its own (``<cache>/<hash>/image.jpeg``).
``gradio.route_utils.delete_files_created_by_app`` (run every ``delete_cache[0]`` seconds
and at a graceful shutdown) removes the files but never their folders: 4,454 folders (4,448
empty) after 4,000 requests. SIGTERM (what a container or Spaces sends) has no handler, so
the process dies at once and removes nothing, uploads and outputs included; the demo's own
JSON downloads (``mmattn-exports-<pid>``) stay after any exit.

:func:`install` wraps gradio's function so that each folder it empties goes with its files
and expired downloads are removed on the same schedule; :func:`serve` launches the demo with
SIGTERM handled as Ctrl-C (gradio then closes the server and its shutdown removes the
files) and, on the way out, removes what is left: the files the app keeps in the cache
(examples), its empty folders and the downloads folder.

Upstream check: ``tests/test_patches.py`` fails once gradio's function removes the folders.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from gradio import route_utils

ORIGINAL = route_utils.delete_files_created_by_app  #: gradio's own (the upstream check reads it)
log = logging.getLogger("mmattn.app")
_EXPORTS: list[tuple[Path, int]] = []  #: (folder, age in seconds) of download folders to keep small


def _rmdir_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only if empty
    except OSError:
        pass


def delete_files_created_by_app(blocks, age: int | None) -> None:
    """gradio's clean-up, then each folder it emptied, and downloads older than their age."""
    before = set().union(*blocks.temp_file_sets) if blocks.temp_file_sets else set()
    ORIGINAL(blocks, age)
    for file in before:
        path = Path(file)
        if not path.exists():
            _rmdir_empty(path.parent)
    for folder, keep in _EXPORTS:
        expire_exports(folder, 0 if age is None else keep)


delete_files_created_by_app._mmattn_folders = True  # type: ignore[attr-defined]


def expire_exports(folder: Path, age: float) -> None:
    """Remove files in ``folder`` older than ``age`` seconds (all when ``age`` is 0), and the folder once empty."""
    now = time.time()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for f in entries:
        try:
            if age <= 0 or now - f.stat().st_mtime > age:
                f.unlink()
        except OSError:
            pass
    if age <= 0:
        _rmdir_empty(Path(folder))


def install(exports: str | os.PathLike | None = None, age: int = 600) -> None:
    """Use the folder-removing clean-up; ``exports`` (a downloads folder) is emptied of files
    older than ``age`` seconds on gradio's schedule and removed at shutdown."""
    if exports is not None and all(Path(exports) != f for f, _ in _EXPORTS):
        _EXPORTS.append((Path(exports), age))
        atexit.register(shutil.rmtree, Path(exports), ignore_errors=True)
    if not getattr(route_utils.delete_files_created_by_app, "_mmattn_folders", False):
        route_utils.delete_files_created_by_app = delete_files_created_by_app


def remove_everything(blocks) -> None:
    """At shutdown: every file the app put in gradio's cache (kept example copies included),
    the folders that held them, and the downloads folders."""
    kept = set()
    for component in blocks.blocks.values():
        kept.update(getattr(component, "keep_in_cache", set()))
    files = kept.union(*blocks.temp_file_sets) if blocks.temp_file_sets else kept
    for file in files:
        path = Path(file)
        try:
            path.unlink()
        except OSError:
            pass
        _rmdir_empty(path.parent)
    for folder, _ in _EXPORTS:
        shutil.rmtree(folder, ignore_errors=True)
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder())
    try:
        leftovers = list(root.iterdir())
    except OSError:
        leftovers = []
    for folder in leftovers:  # empty folders gradio made at start-up (vibe_edit_history), or emptied above
        if folder.is_dir():
            _rmdir_empty(folder)


def _as_ctrl_c(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def serve(demo, **launch_kwargs) -> None:
    """``demo.launch(**launch_kwargs)`` that a SIGTERM stops as Ctrl-C does (gradio closes
    the server; its shutdown removes the files), then removes what is left (see module doc)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        demo.launch(**launch_kwargs)
    except KeyboardInterrupt:  # a signal before the server was up
        pass
    finally:
        try:
            demo.close(verbose=False)
        except Exception as e:  # already closed, or closing failed: still remove the files
            log.info("closing the demo: %s", e)
        remove_everything(demo)
        log.info("stopped; removed the cache files and downloads of this server")
