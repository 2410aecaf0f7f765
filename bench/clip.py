"""CLIP backend speed against CLIPSeg: `python bench/clip.py`.

Both with random weights (timing does not depend on them), in one run, on the same 320x240
image and the same caption words:
- **mmattn CLIP backend** at the sizes of openai/clip-vit-base-patch16: ``Grounder.ground()``
  end to end (resize, tokenise, both towers, fusion, per-word maps at the image's size,
  flags, boxes): one pass gives a map for every word;
- **CLIPSeg** (``transformers.CLIPSegForImageSegmentation``), forward only, at its 352 px
  input, with one prompt per word, batched as it is used (the image repeated per prompt):
  its default config (ViT-B/32), and the sizes of CIDAS/clipseg-rd64-refined (ViT-B/16).
Goal (issue #6): mmattn ≤ 1.0x CLIPSeg's time per image. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

CAPTION = "a dog on the grass next to a red car"  # 10 words: one CLIPSeg prompt each


def timed(fn, n: int) -> float:
    """Median seconds of ``n`` calls (after one warm-up call)."""
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def clip_grounder(tmp: Path):
    """The CLIP backend on a random CLIP with ViT-B/16 sizes (built in memory, no 600 MB file)."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from mmattn.backends.clip.grounder import ClipGrounder
    from mmattn.backends.clip.model import ClipGroundingConfig, ClipGroundingModel
    from mmattn.backends.clip.random_clip import WORDS, clip_config, write_tokenizer_files

    files = write_tokenizer_files(tmp, [*WORDS, "next", "to"])
    tok = CLIPTokenizer(vocab=str(files / "vocab.json"), merges=str(files / "merges.txt"))
    cfg = clip_config("vit-b16", special_ids=(tok.bos_token_id, tok.eos_token_id, tok.pad_token_id))
    clip = CLIPModel._from_config(cfg, attn_implementation="eager").eval()
    vc = cfg.vision_config
    model = ClipGroundingModel(clip, tok, ClipGroundingConfig(dim=cfg.projection_dim, patch_size=vc.patch_size, image_size=vc.image_size))
    return ClipGrounder(model, tok, CLIPImageProcessor(), name="random ViT-B/16")


def clipseg(patch_size: int):
    """CLIPSeg with random weights: the default config, or ViT-B/16 patches as in rd64-refined."""
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    if patch_size == 32:
        cfg = CLIPSegConfig()
    else:
        cfg = CLIPSegConfig(vision_config={"patch_size": patch_size}, use_complex_transposed_convolution=True)
    return CLIPSegForImageSegmentation._from_config(cfg, attn_implementation="sdpa").eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per model (after one warm-up)")
    ap.add_argument("--no-b16", action="store_true", help="skip CLIPSeg with ViT-B/16 patches (the slowest row)")
    args = ap.parse_args()
    import tempfile

    from mmattn.scenes import make_sample

    image = make_sample(0, 320, 240).image
    words = CAPTION.split()
    with tempfile.TemporaryDirectory() as tmp:
        g = clip_grounder(Path(tmp))
    r = g.ground(image, CAPTION)
    assert r.words == words and r.word_maps.shape == (len(words), 240, 320), (r.words, r.word_maps.shape)

    ids = torch.randint(0, 49000, (len(words), 5))  # one short prompt per word; a real tokenizer gives ~3-5 tokens
    px = torch.randn(1, 3, 352, 352).expand(len(words), -1, -1, -1)  # the image, resized to 352 px, once per prompt

    def run_clipseg(m):
        with torch.inference_mode():
            return m(input_ids=ids, pixel_values=px).logits  # (W, 352, 352)

    rows = []
    ours = timed(lambda: g.ground(image, CAPTION), args.repeats)
    grid = f"{g.model.config.image_size} px longer side, grid {r.grid[0]}x{r.grid[1]}"
    rows.append(("mmattn CLIP backend, ViT-B/16 sizes: `ground()` end to end", grid, "1 caption", ours))
    for patch in (32,) if args.no_b16 else (32, 16):
        m = clipseg(patch)
        t = timed(lambda m=m: run_clipseg(m), args.repeats)
        name = "default config (ViT-B/32)" if patch == 32 else "rd64-refined sizes (ViT-B/16)"
        rows.append((f"CLIPSeg {name}: forward", "352x352", f"{len(words)} prompts", t))
        del m
    print(f"320x240 image, caption {CAPTION!r} ({len(words)} words), random weights, torch threads {torch.get_num_threads()}, "
          f"{args.repeats} timed calls each (median)")  # fmt: skip
    print("| model | input | prompts per image | time per image | mmattn / this |\n|---|---|---|---|---|")
    for name, size, prompts, t in rows:
        print(f"| {name} | {size} | {prompts} | {t * 1e3:.0f} ms | {ours / t:.2f}× |")
    for name, _, _, t in rows[1:]:  # CLIPSeg's time grows with the words, ours hardly does
        per = t / len(words)
        n = int(ours // per) + 1
        print(f"{name.split(':')[0]}: {per * 1e3:.0f} ms per prompt; mmattn is faster from {n} word{'s' * (n > 1)} on")


if __name__ == "__main__":
    main()
