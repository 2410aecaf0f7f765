"""What bfloat16 does to the answers: `python bench/precision.py [--scenes 64]`.

``precision="bfloat16"`` is used only when the caller asks for it (issue #25); this measures
how far it moves the answers on held-out scenes (``held_out_samples``, SHIFTED render config
and the training one, five image sizes): every pair grounded alone in float32 (``ground()``,
the default) against ``ground_batch`` (batch 32) in float32 and in bfloat16:
- the largest difference of any word map at the image's size, and of the patch-grid maps;
- how many word-map peaks (the patch of a word's largest value) moved, of how many words;
- how many boxes and grounded flags changed; the largest match-score difference.
On a CPU without bfloat16 instructions (AVX2 only) autocast still rounds to bfloat16 (in
software, 9x slower), so the numbers are bfloat16's; the accumulation order of native
bfloat16 kernels (AVX-512 BF16, AMX) differs, so the figures there differ a little.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import cpu_model  # noqa: E402

import mmattn  # noqa: E402
from mmattn.api.precision import cpu_has_bfloat16  # noqa: E402
from mmattn.scenes import SHIFTED, TRAIN  # noqa: E402
from mmattn.training.evaluate import held_out_samples  # noqa: E402

SIZES = [(320, 240), (200, 120), (120, 200), (96, 96), (160, 120)]


def compare(ref, other) -> dict:
    words = sum(len(r.words) for r in ref)
    out = {"words": words, "map": 0.0, "patch": 0.0, "peaks": 0, "boxes": 0, "flags": 0, "match": 0.0}
    for a, b in zip(ref, other, strict=True):
        out["map"] = max(out["map"], float(np.abs(a.word_maps - b.word_maps).max(initial=0)))
        out["patch"] = max(out["patch"], float(np.abs(a.patch_maps - b.patch_maps).max(initial=0)))
        out["peaks"] += int((a.patch_maps.argmax(1) != b.patch_maps.argmax(1)).sum()) if len(a.words) else 0
        out["boxes"] += sum(x != y for x, y in zip(a.boxes, b.boxes))
        out["flags"] += sum(x != y for x, y in zip(a.grounded, b.grounded))
        out["match"] = max(out["match"], abs(a.match_score - b.match_score))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=64)
    args = ap.parse_args()
    half = args.scenes // 2
    samples = held_out_samples(half, config=TRAIN, sizes=SIZES) + held_out_samples(
        args.scenes - half, seed=10_500_007, config=SHIFTED, sizes=SIZES
    )
    images, captions = [s.image for s in samples], [s.caption.text for s in samples]
    g = mmattn.Grounder.from_pretrained()  # default precision: auto (float32)
    ref = [g.ground(im, c) for im, c in zip(images, captions)]
    rows = {"float32 (default), batch 32": compare(ref, g.ground_batch(images, captions, batch_size=32, progress=False))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "slower on this CPU": known
        gb = type(g)(g.model, g.processor, precision="bfloat16")
    rows["bfloat16, batch 32"] = compare(ref, gb.ground_batch(images, captions, batch_size=32, progress=False))
    rows["bfloat16, one at a time"] = compare(ref, [gb.ground(im, c) for im, c in zip(images, captions)])
    print(f"CPU: {cpu_model()} (bfloat16 instructions: {'yes' if cpu_has_bfloat16() else 'no'}), torch {torch.__version__}")
    print(
        f"{len(samples)} held-out scenes ({half} TRAIN-style, {args.scenes - half} SHIFTED), {rows['bfloat16, batch 32']['words']} words; "
        "reference: ground() one pair at a time in float32"
    )
    print("| run | max word-map diff | max patch-map diff | peaks moved | boxes changed | flags changed | max match-score diff |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['map']:.2g} | {r['patch']:.2g} | {r['peaks']} / {r['words']} | {r['boxes']} | {r['flags']} | {r['match']:.2g} |"
        )


if __name__ == "__main__":
    main()
