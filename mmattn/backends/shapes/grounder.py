"""The shapes world's backend: the shipped model (model type ``mmattn``) behind the grounding API.

An mmattn checkpoint (``config.json`` of a :class:`~mmattn.models.grounding_model.GroundingConfig`,
which names no ``model_type``, ``model.safetensors`` and ``tokenizer.json``) loads as a
:class:`ShapesGrounder`: the generic :class:`~mmattn.api.grounder.Grounder` plus what the
shapes world adds, the check that an image looks like a shapes scene
(:func:`~mmattn.backends.shapes.worldcheck.check_image`: the model was trained on generated
scenes only, so a photograph is reported and nothing in it is marked found).
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from mmattn.api.grounder import Grounder
from mmattn.api.processor import MmattnProcessor
from mmattn.backends.shapes.worldcheck import WorldCheck, check_image
from mmattn.models.grounding_model import GroundingModel
from mmattn.models.tokenizer import load_tokenizer


class ShapesGrounder(Grounder):
    """A :class:`~mmattn.api.grounder.Grounder` on a :class:`~mmattn.models.grounding_model.GroundingModel`
    trained on the shapes world."""

    model_types = ("mmattn",)
    checks_world = True  #: images are checked against the shapes world before grounding
    has_positions = True  #: its encoders add positional encodings that a question may switch off

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu", precision: str = "auto", **overrides) -> ShapesGrounder:
        """Load an mmattn checkpoint folder (or hub id)."""
        if overrides:
            raise TypeError(f"unexpected options for an mmattn checkpoint: {', '.join(overrides)} (they are the CLIP backend's)")
        path = os.fspath(path)
        model = GroundingModel.load(path)
        name = Path(path).name if Path(path).is_dir() else path
        processor = MmattnProcessor(load_tokenizer(path), image_size=model.config.image_size, patch_size=model.config.patch_size)
        return cls(model, processor, name=name, device=device, precision=precision)

    def check_image(self, image: Image.Image) -> WorldCheck:
        """Whether ``image`` looks like a shapes-world scene (:func:`~mmattn.backends.shapes.worldcheck.check_image`)."""
        return check_image(image)
