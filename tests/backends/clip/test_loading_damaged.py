"""Damaged CLIP and Chinese-CLIP folders are refused before a model is built (issue 27, finding 1).

Each folder is a random checkpoint from :mod:`mmattn.backends.clip.random_clip` with one
thing broken; loading it must raise one :class:`CheckpointError` that names the file and the
problem (transformers would fill missing weights at random, load NaN, or raise its own errors)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmattn.api.grounder import Grounder
from mmattn.backends.clip.grounder import ClipGrounder, is_clip_checkpoint
from mmattn.backends.clip.random_clip import save_random_chinese_clip, save_random_clip
from mmattn.io.checkpoint import CheckpointError

KINDS = {"clip": save_random_clip, "chinese-clip": save_random_chinese_clip}


@pytest.fixture(scope="module", params=sorted(KINDS))
def pristine(request, tmp_path_factory):
    return KINDS[request.param](tmp_path_factory.mktemp(request.param) / "ckpt")


def damaged(pristine, tmp_path, change) -> str:
    """A copy of ``pristine`` whose model.safetensors state dict went through ``change``."""
    folder = tmp_path / "damaged"
    shutil.copytree(pristine, folder)
    file = folder / "model.safetensors"
    state = load_file(file)
    state = change(state)
    if state is not None:
        save_file(state, file, metadata={"format": "pt"})
    return folder


def first_weight(state) -> str:
    return next(k for k in sorted(state) if k.endswith("q_proj.weight"))


def drop_half(state):
    return dict(sorted(state.items())[::2])


def one_nan(state):
    k = first_weight(state)
    state[k] = state[k].clone()
    state[k][0, 0] = float("nan")
    return state


def wrong_shape(state):
    k = first_weight(state)
    state[k] = torch.zeros(state[k].shape[0], state[k].shape[1] + 1)
    return state


def extra_tensor(state):
    return {**state, "text_model.surprise.weight": torch.zeros(2)}


def cast(dtype):
    def change(state):
        k = first_weight(state)
        state[k] = state[k].to(dtype)
        return state

    change.__name__ = f"as_{dtype}".replace("torch.", "")
    return change


DAMAGE = [  # (change, what the message must say)
    (drop_half, "missing tensors"),
    (one_nan, "NaN"),
    (wrong_shape, "wrong shapes"),
    (extra_tensor, "unexpected tensors text_model.surprise.weight"),
    (cast(torch.float64), "wrong dtype"),
    (cast(torch.int64), "wrong dtype"),
    (cast(torch.bool), "wrong dtype"),
]


@pytest.mark.parametrize("change, says", DAMAGE, ids=[c.__name__ for c, _ in DAMAGE])
def test_a_damaged_weight_file_is_refused_naming_file_and_problem(pristine, tmp_path, change, says):
    folder = damaged(pristine, tmp_path, change)
    with pytest.raises(CheckpointError) as e:
        Grounder.from_pretrained(folder)
    msg = str(e.value)
    assert str(folder / "model.safetensors") in msg and says in msg, msg
    assert "\n" not in msg
    if change not in (drop_half, extra_tensor):
        assert "q_proj.weight" in msg  # the tensor at fault


def test_half_precision_weights_still_load(pristine, tmp_path):
    """Hub checkpoints are often stored in float16: that is not damage."""
    folder = damaged(pristine, tmp_path, cast(torch.float16))
    assert Grounder.from_pretrained(folder).ground(torch.rand(3, 32, 32).numpy().transpose(1, 2, 0), "a red ball").words


def test_a_truncated_weight_file_is_refused(pristine, tmp_path):
    folder = damaged(pristine, tmp_path, lambda s: None)
    file = folder / "model.safetensors"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as e:
        Grounder.from_pretrained(folder)
    assert str(file) in str(e.value)


def test_a_missing_weight_file_is_refused(pristine, tmp_path):
    folder = damaged(pristine, tmp_path, lambda s: None)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        Grounder.from_pretrained(folder)


def test_an_mmattn_folder_claiming_to_be_clip_is_not_taken_for_one(tmp_path):
    """Before: a random ViT-B was built (4 s, +600 MB) and a load report of hundreds of lines printed."""
    from mmattn.api.grounder import DEFAULT_MODEL

    folder = tmp_path / "liar"
    shutil.copytree(DEFAULT_MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "clip"}))
    assert not is_clip_checkpoint(folder)
    with pytest.raises(CheckpointError, match="model_type"):
        Grounder.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="is not a CLIP config"):
        ClipGrounder.from_pretrained(folder)
