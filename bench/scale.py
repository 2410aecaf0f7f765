"""Ray Data throughput from 1 to 2 workers: `python bench/scale.py [--pairs 512]`.

On a local Ray cluster (``ray.init(num_cpus=2)``), ``ground_dataset`` over the same held-out
pairs (PNG bytes in the dataset, batch 32) with 1 and then 2 actors of one CPU each (Ray
gives an actor of one CPU one torch thread). For each: the wall time from the call to the last
row, actors' start-up included, and the steady rate (rows after the first batch / time after
the first batch). For scale, ``ground_batch`` in this process on both cores, on the same pairs.
Prints the CPU model and the load average: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model  # noqa: E402

import mmattn  # noqa: E402
from mmattn.scenes import SHIFTED, TRAIN  # noqa: E402
from mmattn.training.evaluate import held_out_samples  # noqa: E402

SIZES = [(320, 240), (200, 120), (120, 200), (96, 96), (160, 120)]


def png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    import ray
    import ray.data

    from mmattn.scale.distributed import ground_dataset

    n = args.pairs
    samples = held_out_samples(n // 2, config=TRAIN, sizes=SIZES) + held_out_samples(
        n - n // 2, seed=10_500_007, config=SHIFTED, sizes=SIZES
    )
    items = [{"id": i, "image": png(s.image), "caption": s.caption.text} for i, s in enumerate(samples)]
    load0 = os.getloadavg()
    g = mmattn.Grounder.from_pretrained()
    g.ground_batch([it["image"] for it in items[:64]], [it["caption"] for it in items[:64]], progress=False)  # warm-up
    t = time.perf_counter()
    g.ground_batch([it["image"] for it in items], [it["caption"] for it in items], batch_size=args.batch, progress=False)
    local = n / (time.perf_counter() - t)
    root = str(Path(__file__).resolve().parent.parent)  # the actors import this checkout's mmattn
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": root}}
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = {}
    try:
        for workers in (1, 2):
            ds = ground_dataset(ray.data.from_items(items), concurrency=workers, batch_size=args.batch)
            t0 = time.perf_counter()
            first = None
            got = 0
            for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
                got += len(batch)
                if first is None:
                    first, first_rows = time.perf_counter(), got
            end = time.perf_counter()
            assert got == n, got
            rows[workers] = (n / (end - t0), (n - first_rows) / (end - first) if end > first else float("nan"), first - t0)
    finally:
        ray.shutdown()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; ray {ray.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load0)}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{n} held-out pairs (PNG bytes, five sizes up to 320x240), batch {args.batch}")
    print("| run | rows/s, all included | rows/s after the first batch | first batch after |\n|---|---|---|---|")
    for w, (total, steady, first) in rows.items():
        print(f"| ground_dataset, {w} actor{'s' if w > 1 else ''} of 1 CPU | {total:.1f} | {steady:.1f} | {first:.1f} s |")
    print(f"| ground_batch in process, 2 threads (for scale) | {local:.1f} | | |")
    print(f"2 actors / 1 actor: {rows[2][0] / rows[1][0]:.2f}x all included, {rows[2][1] / rows[1][1]:.2f}x after the first batch")


if __name__ == "__main__":
    main()
