"""The forward pass of a model with relations (AnchorBias and/or fusion self-attention)
against a base model (default: the shipped one), measured in the same run:
`python bench/relations.py [CHECKPOINT] [--base v15] [--batch 1]`.

Both models ground the same batches (the API's path: every fusion attention returned), the
two alternating so that a busy machine slows both alike; prints the median time per batch
of each, their ratio (issue #26's bound: 1.5x), the parameters and file sizes, and the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from machine import cpu_model  # noqa: E402

from mmattn.api.processor import MmattnProcessor  # noqa: E402
from mmattn.models.grounding_model import GroundingModel  # noqa: E402
from mmattn.models.tokenizer import load_tokenizer  # noqa: E402
from mmattn.scenes.relational import make_relational_sample  # noqa: E402
from mmattn.training.train import initial_model  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint", nargs="?", default=None, help="model with relations (default: the base + an untrained AnchorBias, and the base + self-attention)")
    ap.add_argument("--base", default="assets/model", help="the model to compare with (v15: `git show 7252d6c:assets/model/<file>` into a folder)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    base = GroundingModel.load(args.base).eval()
    tok = load_tokenizer(args.base)
    variants = {f"base ({args.base})": base}
    if args.checkpoint:
        variants[args.checkpoint] = GroundingModel.load(args.checkpoint).eval()
    else:
        variants["anchor_bias"] = initial_model(args.base, {"anchor_bias": True})[1].eval()
        variants["fusion_self_attention"] = initial_model(args.base, {"fusion_self_attention": True})[1].eval()
    proc = MmattnProcessor(tok, image_size=128, patch_size=8)
    samples = [make_relational_sample(i, 128, 128) for i in range(args.batch)]
    enc = proc.encode([s.caption.text for s in samples])
    px = proc.pixels([s.image for s in samples])
    times = {k: [] for k in variants}
    with torch.inference_mode():
        for rep in range(args.reps + 2):
            for name, m in variants.items():
                t = time.perf_counter()
                m(enc.ids, px, enc.attention_mask, output_fusion_attentions=True)
                if rep >= 2:  # warm-up
                    times[name].append(time.perf_counter() - t)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"batch of {args.batch} relational scenes at 128x128, median of {args.reps}\n")
    print("| model | parameters | ms per batch | ratio to the base |\n|---|---|---|---|")
    ref = statistics.median(times[f"base ({args.base})"])
    for name, m in variants.items():
        med = statistics.median(times[name])
        print(f"| {name} | {sum(p.numel() for p in m.parameters()):,} | {med * 1000:.1f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()
