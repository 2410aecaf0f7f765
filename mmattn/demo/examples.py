"""The page's example scenes: ``assets/examples/*.png`` with their captions in English
(``captions.json``: file -> caption) and in Chinese (``captions_zh.json``): the same scenes
in the page's language. Made from the shapes world on first use if missing
(``python assets/make_examples.py`` remakes them)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("mmattn.demo")
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"
#: (seed, width, height, language it was first captioned in: its file name) of each example scene
SCENES = [(11, 160, 160, "en"), (12, 224, 160, "zh"), (13, 128, 192, "en"), (14, 256, 160, "en"), (32, 192, 192, "zh"),
          (16, 240, 144, "en")]  # fmt: skip
#: (seed, width, height, case, relation) of each relational example: two objects of one shape
#: that only the relation tells apart (mmattn.scenes.relational), for the Positions-off jump
RELATIONAL = [(337, 240, 176, "same_colour", "left")]
CAPTIONS = {"en": "captions.json", "zh": "captions_zh.json"}  #: the captions' file, per language
#: the caption of the scene the page opens on (``first_scene``), grounded: a relation between two objects
FIRST_CAPTION = {"en": "the red circle left of the blue square", "zh": "红色的圆形在蓝色正方形的左边"}


def first_scene(size: tuple[int, int] = (224, 160)):
    """The scene the page opens on: a red circle left of a blue square, from the shapes world's
    own palette, sizes and background (drawn, not sampled, so that the caption fits it)."""
    import numpy as np

    from mmattn.scenes.render import PALETTE, TRAIN, draw_shape, finish, render_background

    w, h = size
    rng = np.random.default_rng(7)
    canvas = render_background(rng, w, h, TRAIN, "plain")
    r = sum(TRAIN.large_radius[0]) / 2 * min(w, h)
    draw_shape(canvas, "circle", PALETTE["red"]["train"][0], (w * 0.27, h * 0.52), r, 0.0)
    draw_shape(canvas, "square", PALETTE["blue"]["train"][0], (w * 0.72, h * 0.48), r, 0.0)
    return finish(canvas, rng, TRAIN)


def make_examples(folder: str | Path = EXAMPLES_DIR) -> Path:
    """Write the example scenes into ``folder`` with their captions in both languages
    (deterministic: same seeds, same files; a seed draws the same scene in either language)."""
    from mmattn.scenes import make_sample
    from mmattn.scenes.relational import make_relational_sample

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    captions: dict[str, dict[str, str]] = {lang: {} for lang in CAPTIONS}
    for seed, w, h, first in SCENES:
        name = f"scene_{seed}_{first}.png"
        for lang in CAPTIONS:
            s = make_sample(seed, w, h, lang=lang)
            if lang == first:
                s.image.save(folder / name)
            captions[lang][name] = s.caption.text
    for seed, w, h, case, rel in RELATIONAL:
        name = f"relational_{seed}.png"
        for lang in CAPTIONS:
            s = make_relational_sample(seed, w, h, lang=lang, case=case, rel=rel, landmark_first=False if lang == "zh" else None)
            if lang == "en":
                s.image.save(folder / name)
            captions[lang][name] = s.caption.text
    for lang, file in CAPTIONS.items():
        (folder / file).write_text(json.dumps(captions[lang], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return folder


def load_examples(folder: str | Path = EXAMPLES_DIR, lang: str = "en") -> list[list[str]]:
    """[[path, caption], ...] of the examples in ``folder`` captioned in ``lang`` (made first if
    missing; [] if they cannot be)."""
    folder = Path(folder)
    captions = folder / CAPTIONS[lang]
    if not captions.is_file():
        try:
            make_examples(folder)
        except Exception as e:  # the scene generator may be missing: run without examples
            log.warning("no examples (%s: %s)", e.__class__.__name__, e)
            return []
    try:
        table = json.loads(captions.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("unreadable %s: %s", captions, e)
        return []
    return [[str(folder / f), c] for f, c in table.items() if (folder / f).is_file()]
