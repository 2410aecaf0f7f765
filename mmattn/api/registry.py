"""The backend registry: a checkpoint's ``config.json`` ``model_type`` -> the backend that loads it.

As transformers' Auto classes, ``Grounder.from_pretrained(path)`` reads the model type
(:func:`model_type`) and loads the checkpoint with the registered backend
(:func:`backend_for`). Backends are named as ``"module:Class"`` strings and imported only
when a checkpoint of theirs is loaded, so the API layer has no import of any backend (the
CLIP backend's transformers models cost seconds to import), and a backend outside mmattn
registers itself with :func:`register`::

    from mmattn.api.registry import register
    register("my_type", "my_package.grounder:MyGrounder")   # or the class itself

A backend class declares the model types it loads (:attr:`~mmattn.api.backend.Backend.model_types`);
see :mod:`mmattn.api.backend` for what it must provide.
"""

from __future__ import annotations

import importlib
import os

from mmattn.io.checkpoint import CheckpointError
from mmattn.io.hub import hub_file, is_hub_id, read_json

#: the model type of a checkpoint whose config.json names none (the shipped model's checkpoints)
DEFAULT_TYPE = "mmattn"
#: model type -> "module:Class" (or a class, once registered as one)
BACKENDS: dict[str, str | type] = {
    "mmattn": "mmattn.backends.shapes.grounder:ShapesGrounder",
    "clip": "mmattn.backends.clip.grounder:ClipGrounder",
    "chinese_clip": "mmattn.backends.clip.chinese:ChineseClipGrounder",
}


def register(model_type: str, backend: str | type) -> None:
    """Load checkpoints of ``model_type`` with ``backend`` (a class or ``"module:Class"``)."""
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"model_type must be a non-empty string (got {model_type!r})")
    if isinstance(backend, str) and backend.count(":") != 1:
        raise ValueError(f"backend must be a class or 'module:Class' (got {backend!r})")
    BACKENDS[model_type] = backend


def backend_for(model_type: str) -> type:
    """The backend class registered for ``model_type`` (imported now if named by a string)."""
    if model_type not in BACKENDS:
        raise CheckpointError(f"no backend loads model_type {model_type!r}: known types are {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[model_type]
    if isinstance(backend, str):
        module, _, name = backend.partition(":")
        backend = getattr(importlib.import_module(module), name)
        BACKENDS[model_type] = backend
    if model_type not in getattr(backend, "model_types", ()):
        raise TypeError(f"{backend.__qualname__} is registered for model_type {model_type!r} but its model_types are "
                        f"{getattr(backend, 'model_types', ())!r}")  # fmt: skip
    return backend


def model_type(path: str | os.PathLike) -> str:
    """The ``model_type`` of the checkpoint in ``path`` (a folder or hub id): its config.json's,
    or :data:`DEFAULT_TYPE` where it names none or cannot be read (that backend's loader
    then says what is wrong). A type no backend loads counts as the default too: an mmattn
    config has no ``model_type``, and one that claims another is refused by that loader."""
    path = os.fspath(path)
    if os.path.isdir(path):
        file = os.path.join(path, "config.json")
        if not os.path.isfile(file):
            return DEFAULT_TYPE
        try:
            config = read_json(file)
        except CheckpointError:
            return DEFAULT_TYPE
    elif is_hub_id(path):
        config = read_json(hub_file(path, "config.json"))
    else:
        return DEFAULT_TYPE  # a missing folder: the default loader says so
    kind = config.get("model_type")
    return kind if isinstance(kind, str) and kind in BACKENDS else DEFAULT_TYPE
