"""The work around the model: `python bench/pipeline.py [--rounds 5] [--profile]`.

On 64 held-out scenes (five image sizes, PNG bytes as read from disk, batch 32), in one
process, interleaved round by round so that both see the same load:
- ``iter_traces``: decoding, resizing, tokenising and the forward passes with their records
  (the model's part);
- ``ground_batch`` with every result's ``word_maps`` read (everything a caller gets).
Prints the CPU model, the load average, each one's pairs/s (median of the rounds and best)
and the ratio ground_batch / iter_traces per round (goal of issue #25: >= 0.85).
``--profile`` runs cProfile over ground_batch instead and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from machine import cpu_model  # noqa: E402

import mmattn  # noqa: E402
from mmattn.scenes import SHIFTED, TRAIN  # noqa: E402
from mmattn.training.evaluate import held_out_samples  # noqa: E402

SIZES = [(320, 240), (200, 120), (120, 200), (96, 96), (160, 120)]


def png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def pairs(n: int):
    samples = held_out_samples(n // 2, config=TRAIN, sizes=SIZES) + held_out_samples(
        n - n // 2, seed=10_500_007, config=SHIFTED, sizes=SIZES
    )
    return [png(s.image) for s in samples], [s.caption.text for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    images, captions = pairs(args.scenes)
    g = mmattn.Grounder.from_pretrained()
    n = len(images)

    def model_part() -> None:
        for _ in g.iter_traces(images, captions, batch_size=args.batch, progress=False):
            pass

    def everything() -> None:
        for r in g.ground_batch(images, captions, batch_size=args.batch, progress=False):
            r.word_maps  # noqa: B018 -- rendered at the image's size when read

    everything(), model_part()  # warm-up
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.rounds):
            everything()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    load0 = os.getloadavg()
    rates = {"iter_traces": [], "ground_batch, every word map read": []}
    ratios = []
    for _ in range(args.rounds):
        got = []
        for name, fn in (("iter_traces", model_part), ("ground_batch, every word map read", everything)):
            t = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - t))
            got.append(rates[name][-1])
        ratios.append(got[1] / got[0])
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{n} held-out scenes as PNG bytes, batch {args.batch}, {args.rounds} interleaved rounds")
    for name, r in rates.items():
        print(f"{name}: median {statistics.median(r):.0f} pairs/s, best {max(r):.0f}")
    print(
        f"ratio ground_batch / iter_traces: median {statistics.median(ratios):.2f}, per round {' '.join(f'{x:.2f}' for x in ratios)} (goal >= 0.85)"
    )


if __name__ == "__main__":
    main()
