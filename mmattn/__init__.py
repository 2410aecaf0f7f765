"""mmattn: bidirectional multimodal cross-attention for grounding words in images.

    import mmattn
    g = mmattn.Grounder.from_pretrained()          # the shipped model in assets/model
    r = g.ground("scene.png", "a red circle left of the blue square")
    r.words, r.word_maps, r.grounded, r.boxes, r.match_score, r.words_at(x, y)
"""

from mmattn.api.grounder import Grounder
from mmattn.api.grounding import Grounding
from mmattn.models.grounding_model import CheckpointError, GroundingConfig, GroundingModel, GroundingOutput
from mmattn.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from mmattn.nn.positional import sinusoidal_1d, sinusoidal_2d

__all__ = [
    "CheckpointError",
    "Grounder",
    "Grounding",
    "GroundingConfig",
    "GroundingModel",
    "GroundingOutput",
    "MultiHeadAttention",
    "scaled_dot_product_attention",
    "sinusoidal_1d",
    "sinusoidal_2d",
]
__version__ = "0.1.0"

# ---- the old flat module paths, kept for one release ---------------------------------------------
# `mmattn.attention`, `mmattn.model`, `mmattn.clip_grounding`, ... are the same module objects as
# their new homes; importing one warns once with where it moved.
_MOVED = {
    "fileio": "mmattn.io.files", "checkpoint": "mmattn.io.checkpoint",
    "attention": "mmattn.nn.attention", "positional": "mmattn.nn.positional", "layers": "mmattn.nn.layers", "fusion": "mmattn.nn.fusion",
    "data": "mmattn.scenes", "data.render": "mmattn.scenes.render", "data.world": "mmattn.scenes.samples", "data.dataset": "mmattn.scenes.dataset",
    "encoders": "mmattn.models.encoders", "model": "mmattn.models.grounding_model", "tokenizer": "mmattn.models.tokenizer",
    "image": "mmattn.api.image", "processor": "mmattn.api.processor", "maps": "mmattn.api.maps", "viz": "mmattn.api.pictures",
    "result": "mmattn.api.grounding", "grounding": "mmattn.api.grounder", "trace": "mmattn.api.trace", "precision": "mmattn.api.precision",
    "vocabulary": "mmattn.backends.shapes.vocabulary", "worldcheck": "mmattn.backends.shapes.worldcheck",
    "clip": "mmattn.backends.clip.model", "clip_dense": "mmattn.backends.clip.dense", "legrad": "mmattn.backends.clip.legrad",
    "clip_grounding": "mmattn.backends.clip.grounder", "chinese_clip": "mmattn.backends.clip.chinese",
    "clip_random": "mmattn.backends.clip.random_clip", "catalog": "mmattn.backends.catalog",
    "train": "mmattn.training.train", "train_state": "mmattn.training.state", "batches": "mmattn.training.batches",
    "evaluate": "mmattn.training.evaluate", "clip_train": "mmattn.training.clip_train",
    "explain": "mmattn.teach.recompute", "figures": "mmattn.teach.figures", "views": "mmattn.teach.views",
    "tracecache": "mmattn.demo.tracecache", "ground_cli": "mmattn.cli.ground", "world_cli": "mmattn.cli.world",
}

#: short public paths for modules that live deeper in the layers (no warning: they stay)
_SHORT = {"distributed": "mmattn.scale.distributed"}  # `from mmattn.distributed import ground_dataset`


def _install_moved_modules() -> None:
    import importlib
    import importlib.abc
    import importlib.util
    import sys
    import warnings

    class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Finds `mmattn.<old or short name>` and hands back the module at its real path (the
        same object); an old name warns."""

        def find_spec(self, fullname, path=None, target=None):
            name = fullname.removeprefix("mmattn.")
            if fullname.startswith("mmattn.") and (name in _MOVED or name in _SHORT):
                return importlib.util.spec_from_loader(fullname, self)
            return None

        def create_module(self, spec):
            name = spec.name.removeprefix("mmattn.")
            new = _SHORT.get(name) or _MOVED[name]
            if name in _MOVED:
                warnings.warn(f"{spec.name} has moved to {new}; the old path is an alias for one release", DeprecationWarning, stacklevel=2)
            module = importlib.import_module(new)
            self._real_spec = module.__spec__
            return module

        def exec_module(self, module):
            module.__spec__ = self._real_spec  # the import system stamped the alias's spec on the real module

    if not any(type(f).__name__ == "MovedModules" for f in sys.meta_path):
        sys.meta_path.append(MovedModules())


def __getattr__(name: str):
    if name in _MOVED or name in _SHORT:  # `import mmattn; mmattn.grounding.Grounder`
        import importlib

        return importlib.import_module(f"mmattn.{name}")
    raise AttributeError(f"module 'mmattn' has no attribute {name!r}")


_install_moved_modules()
