"""The package's face: ``import mmattn`` gives the public API, and the old flat module paths
(``mmattn.clip_grounding``, ``mmattn.model`` ...) are aliases of the modules at their new
homes for one release, each warning once with a DeprecationWarning."""

from __future__ import annotations

import subprocess
import sys

from app_fixtures import ROOT

import mmattn


def test_the_public_api_is_at_the_top():
    from mmattn.api.grounder import Grounder
    from mmattn.api.grounding import Grounding

    assert mmattn.Grounder is Grounder and mmattn.Grounding is Grounding


MOVED = {"clip_grounding": "mmattn.backends.clip.grounder", "model": "mmattn.models.grounding_model",
         "attention": "mmattn.nn.attention", "train_state": "mmattn.training.state", "explain": "mmattn.teach.recompute"}


def test_an_old_path_warns_and_is_the_same_module():
    """In a fresh interpreter (an alias warns on its first import only)."""
    code = f"""
import importlib, warnings
for old, new in {MOVED!r}.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = importlib.import_module("mmattn." + old)
    assert alias is importlib.import_module(new), (old, alias)
    assert [w.category for w in caught] == [DeprecationWarning], (old, [str(w.message) for w in caught])
    assert new in str(caught[0].message), caught[0].message
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_short_path_mmattn_distributed_is_the_scale_module_without_a_warning():
    """Issue #25 names `mmattn.distributed`; it lives in the scale layer (fresh interpreter)."""
    code = """
import importlib, warnings
with warnings.catch_warnings():
    warnings.simplefilter("error")
    from mmattn.distributed import GroundingPredictor, ground_dataset
    short = importlib.import_module("mmattn.distributed")
import mmattn.scale.distributed as real
assert short is real and ground_dataset is real.ground_dataset and GroundingPredictor is real.GroundingPredictor
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
