"""Checking a checkpoint folder's files before anything is built from them.

A checkpoint is ``config.json`` + ``model.safetensors`` (+ ``tokenizer.json``). Nothing in it
is trusted: the config's fields are checked against the bounds of
:class:`mmattn.model.GroundingConfig`, the tensors' names and shapes are read from the
safetensors header (no tensor is loaded) and compared with the model the config describes,
the tokenizer's ids must fit the vocabulary, and the weights must be finite. Each problem is
a :class:`CheckpointError` that names the file and the field or tensor at fault.
"""

from __future__ import annotations

import json
import os
import re

import torch
from safetensors import safe_open
from torch.overrides import TorchFunctionMode

#: larger files are refused before they are read: a config is a few hundred bytes and the
#: tokenizer.json of a 250,000-word vocabulary about 20 MB
MAX_CONFIG_BYTES = 1_000_000
MAX_TOKENIZER_BYTES = 50_000_000

#: config fields that count numbered blocks in the weights: field -> (tensor prefix, blocks the field adds)
COUNTED = {
    "text_layers": ("text_encoder.blocks.", 0),
    "image_layers": ("image_encoder.blocks.", 0),
    "fusion_layers": ("fusion.", 0),
    "match_layers": ("match_blocks.", 1),  # the first match block is match_block
}
EMBEDDING = "text_encoder.embed.weight"  #: (vocab_size, dim)
FIRST_MLP = "fusion.0.mlp_t.fc1.weight"  #: (int(dim * mlp_ratio), dim)


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the model."""


def read_json(file: str, limit: int = MAX_CONFIG_BYTES, what: str = "mmattn config") -> dict:
    """A JSON object from ``file``, refused (CheckpointError naming the file) if it is larger
    than ``limit`` bytes, not UTF-8 JSON, or not an object."""
    size = os.path.getsize(file)
    if size > limit:
        raise CheckpointError(f"{file} is {size:,} bytes, more than the {limit:,} a checkpoint's file may have: is it the right file?")
    try:
        with open(file, encoding="utf-8") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file} is not a valid {what} (expected a JSON object, got {type(obj).__name__})")
    return obj


class _NoInitOnMeta(TorchFunctionMode):
    """Skips in-place writes (``normal_``, ``zeros_``, ...) to meta tensors, which hold no values.

    Why it exists: on the meta device ``Tensor.normal_`` (an ``nn.Embedding``'s initialiser) runs
    through ``torch._refs``, whose first call imports ``torch._dynamo``: 1.5 s of the demo's 7 s
    start-up on a 2-core AVX2 EPYC, for a model built only to read its shapes. (So does
    arithmetic on meta tensors: the learned position tables are drawn in place for that.)
    A torch-function mode is thread-local, so a model built in another thread is untouched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes it by keyword
        if name.endswith("_") and not name.startswith("__") and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def meta_state(build) -> dict[str, torch.Tensor]:
    """The state dict of the model ``build()`` makes, built on the meta device: every name,
    shape and dtype, no memory, no initialiser run (a tampered size costs nothing)."""
    with torch.device("meta"), _NoInitOnMeta():
        return build().state_dict()


def tensor_shapes(file: str) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from the safetensors header of ``file``, without loading a tensor."""
    try:
        with safe_open(file, framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"{file} is not a readable safetensors file ({e}); re-save or re-download it") from e


#: safetensors' dtype names of torch's dtypes
DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
          torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}  # fmt: skip


def tensor_dtypes(file: str) -> dict[str, str]:
    """Every tensor's dtype ("F32", "I64", "BOOL", ...) from the safetensors header of ``file``."""
    try:
        with safe_open(file, framework="pt") as f:
            return {k: str(f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"{file} is not a readable safetensors file ({e}); re-save or re-download it") from e


def check_dtypes(file: str, found: dict[str, str], expected: dict[str, torch.dtype], half: bool = False) -> None:
    """Each tensor's dtype in ``file`` against the model's: a float16, float64, int64 or bool
    tensor where the model holds float32 would be cast without a word (a bool turns weights
    into 0/1). ``half``: float32 weights may also be stored in float16 or bfloat16 (hub
    checkpoints often are)."""
    wrong = []
    for k, dtype in expected.items():
        want = DTYPES.get(dtype, str(dtype))
        ok = {want, "F16", "BF16"} if half and want == "F32" else {want}
        if k in found and found[k] not in ok:
            wrong.append(f"{k}: file {found[k]} vs model {want}")
    if wrong:
        raise CheckpointError(f"{file} holds tensors of the wrong dtype: {_few(wrong)}; re-save or re-download it")


def check_tensors(file: str, found: dict[str, tuple], expected: dict[str, tuple], config: dict, config_file: str) -> None:
    """``found`` (the file's shapes) against ``expected`` (the model's); the error also names
    the config fields that disagree with the weights (``vocab_size``, ``dim``, layer counts)."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [f"{k}: file {found[k]} vs model {expected[k]}" for k in expected if k in found and found[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing tensors {_few(missing)}")
    if extra:
        problems.append(f"unexpected tensors {_few(extra)}")
    if shapes:
        problems.append(f"wrong shapes {_few(shapes)}")
    if problems:
        fields = ", ".join(f"{k}={config[k]} (the weights say {v})" for k, v in fields_in_weights(found).items() if config.get(k) != v)
        hint = f" [in {config_file}: {fields}]" if fields else ""
        raise CheckpointError(f"{file} does not fit the model in its config.json: " + "; ".join(problems) + hint)


def fields_in_weights(found: dict[str, tuple]) -> dict[str, int]:
    """The config fields that the tensors' names and shapes give away: ``vocab_size`` and
    ``dim`` (the token embedding is vocab_size x dim), ``mlp_ratio`` (the first MLP's width
    over dim), ``embed_dim``, ``relation_heads`` and the layer counts (numbered blocks)."""
    fields = {}
    if len(found.get(EMBEDDING, ())) == 2:
        fields["vocab_size"], fields["dim"] = found[EMBEDDING]
        if len(found.get(FIRST_MLP, ())) == 2 and fields["dim"]:
            fields["mlp_ratio"] = found[FIRST_MLP][0] / fields["dim"]
    if len(found.get("text_proj.weight", ())) == 2:
        fields["embed_dim"] = found["text_proj.weight"][0]
    fields["relation_heads"] = found["relation.roles.weight"][0] // 3 if len(found.get("relation.roles.weight", ())) == 2 else 0
    for name, (prefix, extra) in COUNTED.items():
        blocks = {m.group(1) for k in found if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        fields[name] = len(blocks) + extra
    return fields


def tokenizer_ids(file: str) -> int:
    """One more than the largest token id in a ``tokenizer.json`` (its vocabulary and added
    tokens): the rows of the embedding it needs. CheckpointError naming the file if corrupt."""
    tok = read_json(file, MAX_TOKENIZER_BYTES, "tokenizer")
    try:
        vocab = tok["model"]["vocab"]
        ids = list(vocab.values() if isinstance(vocab, dict) else range(len(vocab)))
        ids += [t["id"] for t in tok.get("added_tokens") or []]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise ValueError("token ids must be integers >= 0")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{file} is not a valid tokenizer ({e.__class__.__name__}: {e}); re-save or re-download it") from e
    return max(ids, default=-1) + 1


def check_tokenizer(file: str, vocab_size: int, config_file: str) -> None:
    """The tokenizer beside a model may only produce ids below the model's ``vocab_size``."""
    needed = tokenizer_ids(file)
    if needed > vocab_size:
        raise CheckpointError(f"{config_file}: vocab_size={vocab_size} is too small for {file}, whose ids go up to {needed - 1}")


def check_finite(file: str, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights that hold NaN or infinity (a diverged or damaged checkpoint)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{file} holds NaN or infinite weights in {_few(bad)}: the checkpoint is damaged; "
                              "re-save or re-download it")  # fmt: skip


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")
