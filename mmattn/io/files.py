"""Writes that cannot escape their folder or half-happen.

A file is written under a fresh temporary name in its target's folder (created with
``O_EXCL``, so nothing planted under that name is followed), flushed and fsynced, then moved
over the target with :func:`os.replace`. Readers see the old file or the new one, never a
part of one; a symlink at the target is replaced by the file, and what it pointed to is left
alone; on any error (a full disk, an exception in the writer) the temporary file is removed
and the target is as it was.

A folder of files (a result, a checkpoint) is built as a new folder beside its target and
swapped in with :func:`replace_dir`, so that the target holds the old set of files or the new
one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _beside(path: Path, tag: str) -> Path:
    """A hidden, unused-looking name next to ``path`` (``.NAME.XXXXXXXX.tag``)."""
    return path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.{tag}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and move it to ``path``."""
    path = Path(path)
    tmp = _beside(path, "tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o666)  # the usual permissions (less the umask), not mkstemp's 0o600
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def os_errors(what: str | os.PathLike):
    """Turn a library's I/O failure into the OSError it is: safetensors raises a
    ``SafetensorError`` ("... I/O error: No space left on device (os error 28)") on a full
    disk, which callers that handle OSError (a full disk, no permission) would miss."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        found = re.search(r"os error (\d+)", str(e))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, f"{os.strerror(code)} while writing {what}", os.fspath(what)) from e


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 2) -> Path:
    """:func:`atomic_write` of ``obj`` as JSON (UTF-8, non-ASCII characters kept)."""
    return write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make the names in ``folder`` (a rename, a new file) durable. A no-op where folders
    cannot be opened (Windows) or fsynced (some network file systems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under ``folder`` (symlinks are not followed): for files
    that another library wrote (``save_pretrained``) before they are moved into place."""
    for root, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def new_dir_beside(target: str | os.PathLike) -> Path:
    """A new, empty, hidden folder next to ``target`` (its parent is created if needed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _beside(target, "tmp")
        try:
            tmp.mkdir()  # the usual permissions; fails rather than reuse anything already there
            return tmp
        except FileExistsError:
            continue


def remove(path: str | os.PathLike) -> None:
    """Remove a file, a symlink (not what it points to) or a folder tree; nothing if absent."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike, old: str | os.PathLike | None = None) -> Path:
    """Swap the finished folder ``tmp`` in at ``target``: ``tmp``'s files are fsynced, the
    previous ``target`` (a folder, or a symlink, which is replaced and not followed) is
    renamed to ``old`` (default: a hidden name beside it), ``tmp`` is renamed to ``target``
    and ``old`` is removed. A crash between the two renames leaves the previous folder at
    ``old``. A file at ``target`` is refused (NotADirectoryError) and ``tmp`` kept."""
    tmp, target = Path(tmp), Path(target)
    if os.path.lexists(target) and not target.is_symlink() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file, not a folder: pass a folder path or remove the file")
    fsync_tree(tmp)
    old = Path(old) if old is not None else _beside(target, "old")
    remove(old)
    moved = False
    if os.path.lexists(target):
        os.replace(target, old)
        moved = True
    try:
        os.replace(tmp, target)
    except BaseException:
        if moved:  # put the previous folder back
            os.replace(old, target)
        raise
    fsync_dir(target.parent)
    if moved:
        remove(old)
    return target
