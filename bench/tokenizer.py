"""What thread safety costs the tokenizer: ``encode_split`` (unpadded calls, padded in torch;
safe from any number of threads) against the padded call it replaced (which raced), on the
shipped model's tokenizer, single-threaded, in the same run.

    python bench/tokenizer.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402
from mmattn.api.grounder import DEFAULT_MODEL  # noqa: E402
from mmattn.models.tokenizer import Encoded, encode_split, load_tokenizer, split_words  # noqa: E402

CAPTIONS = ["a red circle left of a blue square", "红色的圆形在蓝色正方形的左边", "a big green triangle", "小的黄色三角形",
            "the small white star above the purple ellipse and the green circle"]  # fmt: skip


def padded(tokenizer, words, max_tokens: int = 32) -> Encoded:
    """The pre-issue-27 encode_split: an unpadded pass, then a padded one (not thread-safe)."""
    words = [list(w) for w in words]
    pieces = tokenizer([w or [""] for w in words], is_split_into_words=True, add_special_tokens=False)
    truncated = []
    for b in range(len(words)):
        wid = [w for w in pieces.word_ids(b) if w is not None]
        truncated.append(len(wid) > max_tokens - 2)
        if truncated[-1]:
            words[b] = words[b][: wid[max_tokens - 2]]
    enc = tokenizer([w or [""] for w in words], is_split_into_words=True, padding="longest", return_tensors="pt")
    return Encoded(enc["input_ids"], enc["attention_mask"].bool(), [enc.word_ids(b) for b in range(len(words))], words, truncated)


def main() -> None:
    tok = load_tokenizer(DEFAULT_MODEL)
    rng = random.Random(0)
    for size in (1, 32):
        work = [[split_words(tok, rng.choice(CAPTIONS)) for _ in range(size)] for _ in range(2000 // size)]
        best = {}
        for name, fn in (("padded (old)", padded), ("encode_split", encode_split)) * 3:
            t = time.perf_counter()
            for b in work:
                fn(tok, b)
            best[name] = min(best.get(name, 1e9), (time.perf_counter() - t) / len(work) * 1e6)
        print(
            f"batch {size:2d}: "
            + ", ".join(f"{k} {v:.0f} us" for k, v in best.items())
            + f"; ratio {best['encode_split'] / best['padded (old)']:.2f}"
        )
    print("CPU:", cpu_model())


if __name__ == "__main__":
    main()
