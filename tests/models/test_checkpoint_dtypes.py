"""An mmattn checkpoint's tensor dtypes are checked as its shapes are (issue 27, finding 10):
before, float16, float64, int64 and bool tensors were cast on load without a word (a bool
tensor turned weights into 0/1)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmattn.api.grounder import DEFAULT_MODEL
from mmattn.io.checkpoint import CheckpointError
from mmattn.models.grounding_model import GroundingModel


@pytest.fixture(scope="module")
def state():
    return load_file(f"{DEFAULT_MODEL}/model.safetensors")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool])
def test_a_weight_of_the_wrong_dtype_is_refused_naming_it(tmp_path, state, dtype):
    folder = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_MODEL, folder)
    name = "fusion.0.mlp_t.fc1.weight"
    save_file({**state, name: state[name].to(dtype)}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="wrong dtype") as e:
        GroundingModel.load(folder)
    assert name in str(e.value) and str(folder / "model.safetensors") in str(e.value)


def test_an_integer_buffer_stored_as_float_is_refused(tmp_path, state):
    ints = [k for k, v in state.items() if v.dtype == torch.int64]
    assert ints  # the shipped model has integer tensors: their dtype is checked too
    folder = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_MODEL, folder)
    save_file({**state, ints[0]: state[ints[0]].float()}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"{ints[0]}: file F32 vs model I64"):
        GroundingModel.load(folder)


def test_the_shipped_model_still_loads():
    assert isinstance(GroundingModel.load(DEFAULT_MODEL), GroundingModel)
