"""Training checkpoints on disk: written atomically, read back by ``--resume``, snapshots checked.

A checkpoint folder (``OUT/last``, a snapshot ``OUT/at-{M}min``) holds the published model
(``config.json`` + ``model.safetensors``), the tokenizer, the optimizer state
(``optimizer.safetensors``), ``raw.safetensors`` (the training weights behind an averaged
model, with ``--ema``) and ``train_state.json``: the step, the minutes trained, the evaluation
history of the whole run and the train config. It is written to ``FOLDER.tmp``, fsynced and
swapped in whole (:mod:`mmattn.fileio`), so that a crash leaves the previous checkpoint or the
new one, never a part.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch.optim.swa_utils import AveragedModel

from mmattn.io import files
from mmattn.io.checkpoint import CheckpointError, read_json
from mmattn.models.grounding_model import GroundingModel
from mmattn.training.config import TrainConfig

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 50_000_000  #: a train_state.json larger than this is refused unread


def save_checkpoint(path: str, model: GroundingModel, tokenizer, optimizer, step: int, cfg: TrainConfig,
                    extra: dict | None = None, raw: GroundingModel | None = None) -> None:  # fmt: skip
    """Write a full checkpoint to ``path`` atomically: it is written to ``path.tmp``, every
    file is fsynced, and the folder is swapped in (:func:`mmattn.fileio.replace_dir`, the
    previous one kept as ``path.old`` until then), so a crash never leaves a half-written one.
    ``model`` is the published model (``model.safetensors``); ``raw``, when given, the
    training weights behind an averaged model, kept in ``raw.safetensors`` to resume from."""
    tmp = path + ".tmp"
    files.remove(tmp)
    try:
        with files.os_errors(tmp):
            _write_checkpoint(tmp, model, tokenizer, optimizer, step, cfg, extra, raw)
        files.replace_dir(tmp, path, old=path + ".old")
    except BaseException:
        files.remove(tmp)  # the previous checkpoint is untouched
        raise


def _write_checkpoint(tmp: str, model, tokenizer, optimizer, step: int, cfg, extra, raw) -> None:
    """The files of a checkpoint, into the folder ``tmp`` (see :func:`save_checkpoint`)."""
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if raw is not None:
        save_model(raw, os.path.join(tmp, "raw.safetensors"))
    if optimizer is not None:
        tensors, meta = {}, {"param_groups": optimizer.state_dict()["param_groups"]}
        for i, st in optimizer.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
        state = {"step": step, "train_config": dataclasses.asdict(cfg), "optimizer": meta, **(extra or {})}
        files.write_json(os.path.join(tmp, "train_state.json"), state, indent=2)


def copy_checkpoint(src: str, dst: str) -> None:
    """Copy the checkpoint folder ``src`` to ``dst`` (a snapshot) as atomically as it was saved."""
    tmp = dst + ".tmp"
    files.remove(tmp)
    try:
        shutil.copytree(src, tmp)
        files.replace_dir(tmp, dst, old=dst + ".old")
    except BaseException:
        files.remove(tmp)
        raise


#: the files of a checkpoint written by :func:`save_checkpoint` with an optimizer
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "train_state.json")


def missing_files(folder: str) -> list[str]:
    """The files a complete checkpoint has and ``folder`` lacks (all of them if it is no folder),
    and ``train_state.json`` if it is not readable."""
    missing = [f for f in CHECKPOINT_FILES if not os.path.isfile(os.path.join(folder, f))]
    if "train_state.json" not in missing:
        try:
            read_json(os.path.join(folder, "train_state.json"), MAX_STATE_BYTES, "train state")
        except CheckpointError:
            missing.append("a readable train_state.json")
    return missing


def check_writable(folder: str) -> None:
    """``folder`` exists (made if need be) and a file can be written in it; else an OSError
    that says so, before any training step is spent."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OSError(e.errno, f"cannot write to the output folder {folder!r} ({e.strerror or e}): "
                               "pass --out a folder you can write to") from None  # fmt: skip


def check_resumable(folder: str) -> None:
    """A CheckpointError naming what ``folder`` lacks to resume from (a missing or unreadable
    file), with what to do."""
    missing = missing_files(folder)
    if missing:
        raise CheckpointError(f"cannot resume from {folder}: it has no {', '.join(missing)}; restore it, "
                              "or start afresh in another --out (or without --resume)")  # fmt: skip


def checkpoint_dir(path: str) -> str:
    """``path``, or ``path.old`` if a crash came between the two renames of save_checkpoint."""
    return path + ".old" if not os.path.isdir(path) and os.path.isdir(path + ".old") else path


def load_train_state(path: str, model: GroundingModel, optimizer, ema: AveragedModel | None = None) -> dict:
    """Restore the training weights, the optimizer state and (given ``ema``) the averaged
    weights from a checkpoint; returns its ``train_state.json`` (``step``, ``minutes``,
    ``history``, ...)."""
    path = checkpoint_dir(path)
    loaded = GroundingModel.load(path)
    state = read_json(os.path.join(path, "train_state.json"), MAX_STATE_BYTES, "train state")
    raw = os.path.join(path, "raw.safetensors")
    try:
        if os.path.isfile(raw):  # model.safetensors holds the average; the training weights are here
            load_model(model, raw, strict=True)
        else:
            model.load_state_dict(loaded.state_dict(), strict=True)
        if ema is not None:
            ema.module.load_state_dict(loaded.state_dict(), strict=True)
            ema.n_averaged.fill_(int(state.get("ema_updates", 0)))
    except (RuntimeError, TypeError, ValueError) as e:  # another model's sizes, a damaged raw.safetensors, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the checkpoint in {path} does not fit the model of these options ({first[:300]}): pass the "
                              "same --model as the run that wrote it, or start afresh in another --out") from e  # fmt: skip
    file = os.path.join(path, "optimizer.safetensors")
    try:
        tensors = load_file(file)
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"{file} is not a readable safetensors file ({e}): restore it, or start afresh "
                              "in another --out (or without --resume)") from e  # fmt: skip
    try:
        opt_state: dict = {}
        for key, v in tensors.items():
            i, k = key.split(".", 1)
            opt_state.setdefault(int(i), {})[k] = v
        optimizer.load_state_dict({"state": opt_state, "param_groups": state["optimizer"]["param_groups"]})
    except (KeyError, TypeError, ValueError) as e:  # a state that does not fit this model's optimizer
        raise CheckpointError(f"the optimizer state in {path} does not fit the model ({type(e).__name__}: {e}): "
                              "start afresh in another --out (or without --resume)") from e  # fmt: skip
    return state


def snapshot_dir(cfg: TrainConfig, minutes: float) -> str:
    """Where the snapshot of ``minutes`` (``--snapshots``) is kept: OUT/at-{minutes}min."""
    return os.path.join(cfg.out, f"at-{minutes:g}min")


def taken_snapshots(cfg: TrainConfig, log_problems: bool = True) -> set[float]:
    """The minutes of ``cfg.snapshots`` whose folder holds a complete checkpoint. An
    incomplete one (a crash while an older version copied it) is reported and taken again at
    the next step, which is then later than its minutes."""
    taken = set()
    for m in cfg.snapshots:
        folder = snapshot_dir(cfg, m)
        if not os.path.lexists(folder):
            continue
        missing = missing_files(folder)
        if not missing:
            taken.add(m)
        elif log_problems:
            log.warning("snapshot %s is incomplete (no %s): it is taken again at the next step", folder, ", ".join(missing))
    return taken
