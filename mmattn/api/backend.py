"""The backend interface: what a kind of checkpoint gives the generic :class:`~mmattn.api.grounder.Grounder`.

A backend is a :class:`~mmattn.api.grounder.Grounder` subclass that loads one or more
``config.json`` model types (:attr:`Backend.model_types`) and answers the questions the
shared code asks of every backend; :mod:`mmattn.api.registry` maps a model type to it, so
that ``Grounder.from_pretrained(path)`` never names a backend. The shared code (the forward
pass, the trace, the maps, the views) asks only these questions, never ``isinstance`` or
``hasattr``:

=========================  ===================================================================
``backend``                which kind of model grounds (a phrase the demo shows)
``methods``                the map methods it offers (``METHODS``, plus e.g. ``"legrad"``)
``model_types``            the ``config.json`` ``model_type`` values it loads
``from_pretrained``        load a checkpoint folder or hub id of one of those types
``knows(word)``            whether a word is in its vocabulary (else reported unknown)
``suggest(word)``          a close known word for an unknown one ("did you mean"), or None
``check_image(image)``     whether an image looks like its training world (a
                           :class:`WorldVerdict`), or None where it reads any image
``backward_maps(...)``     extra (B, T, P) maps from a backward pass (LeGrad), or None
``has_positions``          whether its positional encodings can be switched off
                           (``Grounder.trace(..., positions=False)``)
=========================  ===================================================================

Shipped backends: the shapes world's model (:mod:`mmattn.backends.shapes.grounder`, model
type ``mmattn``, also any folder whose ``config.json`` names no model type) and the CLIP
backend (:mod:`mmattn.backends.clip`, ``clip`` and ``chinese_clip``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from PIL import Image



@runtime_checkable
class WorldVerdict(Protocol):
    """Whether an image looks like a backend's training world (e.g.
    :class:`mmattn.backends.shapes.worldcheck.WorldCheck`)."""

    in_world: bool
    reason: str  #: one English sentence saying why
    reason_zh: str  #: the same in Chinese


@runtime_checkable
class Backend(Protocol):
    """What every backend provides (see the module doc); :class:`~mmattn.api.grounder.Grounder`
    gives the defaults (every word of the tokenizer known, no world check, no extra maps)."""

    backend: str
    methods: tuple[str, ...]
    model_types: ClassVar[tuple[str, ...]]
    has_positions: bool

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu", precision: str = "auto", **overrides) -> Backend: ...

    def knows(self, word: str) -> bool: ...

    def suggest(self, word: str) -> str | None: ...

    def check_image(self, image: Image.Image) -> WorldVerdict | None: ...

    def backward_maps(self, ids: torch.Tensor, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None: ...
