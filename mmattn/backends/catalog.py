"""The models a page or a program can offer: the shipped one, local folders, hub ids.

:func:`model_choices` lists them without loading anything and without a network request
(a hub id is looked up in the local Hugging Face cache only); :func:`load` loads one, and
fails in one line (a :class:`~mmattn.checkpoint.CheckpointError`) within a few seconds when
it cannot be had: a missing folder, or a hub id that is not cached while the hub cannot be
reached (:func:`mmattn.io.hub.hub_reachable` asks once, without retries).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmattn.api.grounder import DEFAULT_MODEL

#: photo backends offered by default (downloaded once when the hub can be reached)
DEFAULT_HUB = ("openai/clip-vit-base-patch16", "OFA-Sys/chinese-clip-vit-base-patch16")


@dataclass(frozen=True)
class ModelChoice:
    label: str  #: shown in a picker
    path: str  #: folder or hub id, for Grounder.from_pretrained
    kind: str  #: "shipped", "folder" or "hub"
    note: str  #: one line: what it is, or why it may not load


def _is_hub_id(name: str) -> bool:
    return not os.path.isdir(name) and name.count("/") == 1 and not name.startswith((".", "~", "/"))


def _cached(repo: str) -> bool:
    """Whether hub repo ``repo`` has a config.json in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:  # a malformed id, an unreadable cache: not cached
        return False


def describe(path: str) -> ModelChoice:
    """A :class:`ModelChoice` for a folder or hub id (nothing is loaded)."""
    p = os.fspath(path)
    if Path(p).resolve() == DEFAULT_MODEL.resolve():
        return ModelChoice("shipped: shapes world (English, Chinese)", str(DEFAULT_MODEL), "shipped",
                           "the model trained here on coloured shapes; it knows no photographs")  # fmt: skip
    if os.path.isdir(p):
        ok = os.path.isfile(os.path.join(p, "config.json"))
        return ModelChoice(f"folder: {Path(p).name}", p, "folder", "a local checkpoint" if ok else f"no config.json in {p}")
    if _is_hub_id(p):
        note = "in the local cache" if _cached(p) else "not cached: downloaded on first use if the hub can be reached"
        return ModelChoice(f"hub: {p}", p, "hub", note)
    return ModelChoice(f"missing: {p}", p, "folder", f"no folder at {p!r}")


def model_choices(extra: Iterable[str] = (), hub: Iterable[str] = DEFAULT_HUB) -> list[ModelChoice]:
    """The shipped model, then ``extra`` folders or hub ids (e.g. from ``MMATTN_MODELS``), then
    the default photo backends; duplicates once."""
    seen, out = set(), []
    for path in [str(DEFAULT_MODEL), *extra, *hub]:
        c = describe(path)
        if c.label not in seen:
            seen.add(c.label)
            out.append(c)
    return out


def load(choice: ModelChoice | str, *, precision: str = "auto"):
    """``Grounder.from_pretrained`` for a choice; one-line ``CheckpointError`` if it cannot load."""
    from mmattn.api.grounder import Grounder
    from mmattn.io.checkpoint import CheckpointError

    path = choice.path if isinstance(choice, ModelChoice) else os.fspath(choice)
    try:
        return Grounder.from_pretrained(path, precision=precision)
    except CheckpointError:
        raise
    except (FileNotFoundError, OSError, ValueError) as e:
        raise CheckpointError(f"{path!r} could not be loaded: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
