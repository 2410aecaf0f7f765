"""Write the demo's example scenes: assets/examples/*.png + captions.json (filename -> caption).

    python assets/make_examples.py            # into assets/examples (overwrites)
    python assets/make_examples.py FOLDER

The scenes and their seeds are in ``mmattn.demo.examples`` (the page makes them there on first use).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from a checkout

from mmattn.demo.examples import EXAMPLES_DIR, RELATIONAL, SCENES, make_examples  # noqa: E402

if __name__ == "__main__":
    out = make_examples(Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES_DIR)
    print(f"wrote {len(SCENES) + len(RELATIONAL)} examples to {out}")
