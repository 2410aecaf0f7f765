"""Which arithmetic the model runs in: ``precision="auto"`` picks what is fast on this CPU.

bfloat16 autocast is only fast where the processor has bfloat16 instructions. Measured with
``python bench/grounding.py`` (forward passes alone, batch 32, the shipped model):
- AMD EPYC with AVX2 only: bfloat16 ran 9x *slower* than float32 (33 vs 306 pairs/s);
- AMD EPYC with AVX-512 BF16: bfloat16 2.6x as fast at batch 32, 1.2x *slower* at batch 1
  (see :data:`AUTO_MIN_BATCH`).
So ``auto`` takes bfloat16 only where ``/proc/cpuinfo`` lists ``avx512_bf16`` or ``amx_bf16``
(or on a CUDA device that supports it), and there only for batches (:data:`AUTO_MIN_BATCH`);
asking for bfloat16 elsewhere warns.
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


#: with ``auto``, batches of at least this many pairs run in bfloat16 (on hardware with
#: bfloat16 arithmetic): at batch 1 autocast's casts of the weights cost more than the faster
#: products save. Forward pass of the shipped model, bfloat16 / float32 time, AMD EPYC with
#: AVX-512 BF16, 320x240 scenes: batch 1 1.21x, 2 0.96x, 4 0.71x, 8 0.54x, 16 0.42x, 32 0.38x
AUTO_MIN_BATCH = 4


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
                      "float32 (9x on an AVX2-only CPU): use precision='auto' or 'float32'", stacklevel=3)  # fmt: skip
    return precision


def arithmetic(precision: str, device: torch.device | str = "cpu", batch: int = 1) -> str:
    """What a forward pass of ``batch`` pairs runs in: ``"float32"`` or ``"bfloat16"``."""
    if precision == "auto":
        return "bfloat16" if batch >= AUTO_MIN_BATCH and has_fast_bfloat16(device) else "float32"
    return precision
