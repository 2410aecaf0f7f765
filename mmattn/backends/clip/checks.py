"""Checking a CLIP or Chinese-CLIP checkpoint's weights before transformers builds the model.

transformers fills a missing weight at random (and only says so in a long load report),
loads NaN, and raises its own errors on a truncated file or a wrong shape. The CLIP backend
checks what the mmattn loader checks (:mod:`mmattn.io.checkpoint`), in the same order:
the safetensors header against the state dict that the folder's config describes (built on
the meta device: nothing allocated) — every tensor present, none extra, shapes, dtypes —
then the values, which must be finite. Each problem is one
:class:`~mmattn.io.checkpoint.CheckpointError` naming the file and the first tensor at fault.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from safetensors import safe_open

from mmattn.io.checkpoint import CheckpointError, _few, check_dtypes, meta_state, tensor_dtypes, tensor_shapes

#: buffers that older transformers versions saved and today's ignore when loading
IGNORED_EXTRAS = ("position_ids", "token_type_ids")


def weight_files(folder: str) -> list[str]:
    """``model.safetensors``, or the shards its index names, in ``folder``."""
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        return [single]
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index} is not a valid safetensors index ({e}); re-save or re-download it") from e
        files = [os.path.join(folder, s) for s in shards]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise CheckpointError(f"{index} names weight files that are missing: {_few(missing)}")
        return files
    raise CheckpointError(f"no model.safetensors in {folder}: a CLIP checkpoint folder needs its weights in safetensors form")


def check_clip_weights(folder: str, model_class, config) -> None:
    """The weights in ``folder`` against ``model_class(config)``: CheckpointError naming the
    file and the first problem (missing, unexpected, wrong shape or dtype, not finite)."""
    meta = meta_state(lambda: model_class._from_config(config, attn_implementation="eager"))
    files = weight_files(folder)
    shapes: dict[str, tuple] = {}
    dtypes: dict[str, str] = {}
    where: dict[str, str] = {}
    for file in files:  # 1. the headers: names, shapes, dtypes (no tensor read)
        found = tensor_shapes(file)
        shapes |= found
        dtypes |= tensor_dtypes(file)
        where |= dict.fromkeys(found, file)
    name = files[0] if len(files) == 1 else os.path.join(folder, "model.safetensors.index.json")
    missing = sorted(set(meta) - set(shapes))
    extra = sorted(k for k in set(shapes) - set(meta) if not k.endswith(IGNORED_EXTRAS))
    if missing:
        raise CheckpointError(f"{name} does not fit the model in its config.json: missing tensors {_few(missing)} "
                              f"({len(missing)} of {len(meta)}); re-save or re-download it")  # fmt: skip
    if extra:
        raise CheckpointError(f"{name} does not fit the model in its config.json: unexpected tensors {_few(extra)}")
    wrong = [f"{k}: file {shapes[k]} vs model {tuple(v.shape)}" for k, v in meta.items() if shapes[k] != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{name} does not fit the model in its config.json: wrong shapes {_few(wrong)}")
    for file in files:
        check_dtypes(file, dtypes, {k: v.dtype for k, v in meta.items() if where[k] == file}, half=True)
    for file in files:  # 2. the values, one tensor at a time (memory-mapped)
        try:
            with safe_open(file, framework="pt") as f:
                for k in f.keys():
                    if k in meta and meta[k].is_floating_point() and not _finite(f.get_tensor(k)):
                        raise CheckpointError(f"{file} holds NaN or infinite weights in {k}: the checkpoint is damaged; "
                                              "re-save or re-download it")  # fmt: skip
        except CheckpointError:
            raise
        except Exception as e:  # safetensors raises its own error types on corrupt files
            raise CheckpointError(f"{file} is not a readable safetensors file ({e}); re-save or re-download it") from e


def _finite(t: torch.Tensor) -> bool:
    """All of ``t`` finite (numpy's isfinite where it can: 10x torch's on a busy 2-core CPU)."""
    if t.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(t.numpy()).all())
    return bool(torch.isfinite(t).all())
