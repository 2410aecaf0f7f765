"""Write the demo's example scenes: assets/examples/*.png + captions.json (filename -> caption).

    python assets/make_examples.py            # into assets/examples (overwrites)

Six scenes from the procedural shapes world (``mmattn.data.make_sample``), English and
Chinese captions, square and non-square sizes. Deterministic: same seeds, same files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (seed, width, height, language)
SCENES = [
    (11, 160, 160, "en"),
    (12, 224, 160, "zh"),
    (13, 128, 192, "en"),
    (14, 256, 160, "en"),
    (15, 192, 192, "zh"),
    (16, 240, 144, "en"),
]


def make_examples(folder: str | Path = HERE / "examples") -> Path:
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))
    from mmattn.scenes import make_sample

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    captions = {}
    for seed, w, h, lang in SCENES:
        s = make_sample(seed, w, h, lang=lang)
        name = f"scene_{seed}_{lang}.png"
        s.image.save(folder / name)
        captions[name] = s.caption.text
    (folder / "captions.json").write_text(json.dumps(captions, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return folder


if __name__ == "__main__":
    out = make_examples(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "examples")
    print(f"wrote {len(SCENES)} examples to {out}")
