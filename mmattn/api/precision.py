"""Which arithmetic the model runs in.

``precision="auto"`` (the default) is **float32 for every pass**: an answer never depends on
the batch it was computed in, nor on the CPU it ran on (``ground_batch(images, captions)[i]``
equals ``ground(images[i], captions[i])`` to 1e-6). Until issue #25 ``auto`` switched batches
of 4 or more to bfloat16 on CPUs with bfloat16 instructions, so the same picture got another
answer in a batch (maps moved by up to 0.020, 12 peaks of 64 held-out scenes moved).

``precision="bfloat16"`` runs every pass under bfloat16 autocast, single questions and batches
alike, when the caller asks for it: faster where the processor has bfloat16 instructions
(AMD EPYC with AVX-512 BF16: 2.6x at batch 32, 1.2x *slower* at batch 1), 9x *slower* on an
AVX2-only CPU (33 vs 306 pairs/s), where asking for it warns. How far it moves the maps and
their peaks on held-out scenes: ``python bench/precision.py`` and docs/benchmarks.md.
"""

from __future__ import annotations

import functools
import logging
import warnings

import torch

log = logging.getLogger(__name__)

ARITHMETICS = ("float32", "bfloat16")  #: what a model can run in (training chooses one of these)
PRECISIONS = ("auto", *ARITHMETICS)  #: what a Grounder may be asked for
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  #: /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


@functools.cache
def cpu_has_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (Linux: the flags in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in BF16_FLAGS)
    except OSError:
        pass
    return False


def has_fast_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively (CPU instructions, or a CUDA GPU that supports it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bfloat16()


def check_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``precision`` if valid; asking for bfloat16 on hardware without it warns that it is slower."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if precision == "bfloat16" and not has_fast_bfloat16(device):
        warnings.warn(f"precision='bfloat16' on a {torch.device(device).type} without bfloat16 instructions is slower than "
                      "float32 (9x on an AVX2-only CPU): use precision='auto' (float32)", stacklevel=3)  # fmt: skip
    return precision


def arithmetic(precision: str, device: torch.device | str = "cpu", batch: int = 1) -> str:
    """What a forward pass of ``batch`` pairs runs in: ``"float32"`` or ``"bfloat16"``.

    The same for every ``batch`` and ``device`` (the arguments stay for callers that pass
    them): ``auto`` is float32, so that a result does not depend on what else was in its batch."""
    return "float32" if precision == "auto" else precision
