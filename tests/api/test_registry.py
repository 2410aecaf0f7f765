"""The backend registry and interface (mmattn/api/registry.py, mmattn/api/backend.py):
``Grounder.from_pretrained`` reads a checkpoint's model type and loads it with the backend
registered for it; the API layer imports no backend until one is asked for."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from app_fixtures import ROOT, model_dir
from PIL import Image

from mmattn.api import registry
from mmattn.api.backend import Backend, WorldVerdict
from mmattn.api.grounder import Grounder
from mmattn.backends.shapes.grounder import ShapesGrounder
from mmattn.io.checkpoint import CheckpointError


def test_an_mmattn_folder_is_the_shapes_backend_and_answers_the_interface():
    assert registry.model_type(model_dir()) == "mmattn"  # its config.json names no model_type
    g = Grounder.from_pretrained(model_dir())
    assert type(g) is ShapesGrounder and isinstance(g, Backend) and g.checks_world and g.has_positions
    verdict = g.check_image(Image.new("RGB", (64, 64), (128, 128, 128)))
    assert isinstance(verdict, WorldVerdict) and verdict.in_world is False  # grey and nothing else: no shape
    assert g.backward_maps(None, None, None) is None and g.suggest("sqare") == "square"


def test_the_shipped_model_loads_without_an_argument():
    assert type(Grounder.from_pretrained()) is ShapesGrounder


def test_a_registered_backend_loads_its_model_type(tmp_path, monkeypatch):
    class Toy(ShapesGrounder):
        model_types = ("toy",)
        loaded: list = []

        @classmethod
        def from_pretrained(cls, path, **kwargs):
            cls.loaded.append(path)
            base = ShapesGrounder.from_pretrained(model_dir())  # the weights of any mmattn checkpoint
            return cls(base.model, base.processor, name="toy")

    folder = tmp_path / "toy"
    shutil.copytree(model_dir(), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "toy"}))
    monkeypatch.setitem(registry.BACKENDS, "toy", Toy)
    assert registry.model_type(folder) == "toy"
    with pytest.raises(CheckpointError, match="model_type"):  # the mmattn loader refuses the extra field
        ShapesGrounder.from_pretrained.__func__(ShapesGrounder, folder)
    g = Grounder.from_pretrained(folder)
    assert type(g) is Toy and Toy.loaded == [str(folder)] and g.name == "toy"


def test_a_type_no_backend_loads_goes_to_the_default_loader_and_bad_registrations_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    shutil.copytree(model_dir(), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "nobody"}))
    assert registry.model_type(folder) == registry.DEFAULT_TYPE
    with pytest.raises(CheckpointError, match="no backend loads model_type 'nobody'"):
        registry.backend_for("nobody")
    with pytest.raises(ValueError, match="module:Class"):
        registry.register("x", "no.colon.here")
    monkeypatch.setitem(registry.BACKENDS, "liar", "mmattn.backends.shapes.grounder:ShapesGrounder")
    with pytest.raises(TypeError, match="registered for model_type 'liar'"):
        registry.backend_for("liar")


def test_the_api_layer_imports_no_backend_until_a_checkpoint_asks_for_one():
    code = (
        "import sys, mmattn\n"
        "from mmattn.api import grounder, trace, registry\n"
        "assert not [m for m in sys.modules if m.startswith('mmattn.backends')], sorted(sys.modules)\n"
        "g = mmattn.Grounder.from_pretrained()\n"
        "assert 'mmattn.backends.shapes.grounder' in sys.modules and 'mmattn.backends.clip.grounder' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
