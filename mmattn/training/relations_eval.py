"""Relational scenes in ``mmattn eval``: is the referent found when a same-shape distractor
stands on another side of the landmark ("the circle left of the square" with two circles)?

Metrics, per case ("same_colour", "colour_not_named"), per language and per Chinese word
order ("X在Y的左边" = ``zh_xy``, "Y左边的X" = ``zh_yx``) and per relation:
- referent: the centre of the referent phrase's box (``Grounding.phrases``, the API's answer)
  lies inside the referent's box; ``distractor``: inside a distractor's box instead;
- with ``positions=False`` the same with the encoders' positional encodings switched off
  (near chance is expected: only positions tell the referent from its distractor);
- match: the true caption judged a match (score > 0.5), a caption whose relation holds for
  neither object judged no match.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from mmattn.api.processor import MmattnProcessor
from mmattn.scenes import TRAIN
from mmattn.scenes.relational import CASES, RELATIONS, make_relational_sample

#: sizes of the held-out relational scenes
RELATION_SIZES = ((128, 128), (128, 96), (96, 128), (160, 120), (200, 150))


def relational_samples(n: int, seed: int = 20_000_003, config=TRAIN, sizes=RELATION_SIZES) -> list:
    """``n`` held-out relational scenes, cycling through cases, languages (Chinese in both
    word orders), relations and sizes so that every combination is evenly represented."""
    out = []
    langs = (("en", False), ("zh", False), ("zh", True))
    for i in range(n):
        lang, first = langs[i % 3]
        out.append(make_relational_sample(seed + i, *sizes[(i // 24) % len(sizes)], config, lang=lang,
                                          case=CASES[(i // 3) % 2], rel=RELATIONS[(i // 6) % 4], landmark_first=first))  # fmt: skip
    return out


def positions_off(model):
    """A copy of ``model`` whose text and image encoders add no positional encodings."""
    model = copy.deepcopy(model)
    model.text_encoder.pos = None
    model.image_encoder.pos = None
    for layer in model.fusion:  # an AnchorBias (mmattn.nn.anchor) is made of positions too
        layer.anchor = None
    return model


def referent_phrase(grounding, sample):
    """The phrase of ``grounding`` that holds the referent's words (object 0), or None."""
    ref_words = {i for i, w in enumerate(sample.caption.words) if w.ref == 0 and w.kind != "function"}
    for p in grounding.phrases:
        if ref_words & set(p.words):
            return p
    return None


def picked(box, sample) -> str:
    """Which object the centre of ``box`` falls in: "referent", "distractor" or "other"."""
    if box is None:
        return "other"
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = lambda b: b[0] <= cx < b[2] and b[1] <= cy < b[3]  # noqa: E731
    if inside(sample.objects[0].box):
        return "referent"
    if any(inside(sample.objects[k].box) for k in sample.distractors):
        return "distractor"
    return "other"


def evaluate_relations(model, tokenizer, samples, *, positions: bool = True, batch_size: int = 48) -> dict:
    """The metrics above on ``samples`` (from :func:`relational_samples`)."""
    from mmattn.api.grounder import Grounder

    if not positions:
        model = positions_off(model)
    cfg = model.config
    grounder = Grounder(model, MmattnProcessor(tokenizer, image_size=cfg.image_size, patch_size=cfg.patch_size), precision="float32")
    grounder.checks_world = False
    hits, dist, match = defaultdict(list), defaultdict(list), defaultdict(list)
    groups = defaultdict(list)
    for s in samples:
        groups[s.image.size].append(s)
    for chunk in (g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)):
        results = grounder.ground_batch([s.image for s in chunk], [s.caption.text for s in chunk], batch_size=len(chunk))
        for s, r in zip(chunk, results):
            p = referent_phrase(r, s)
            pick = picked(p.box if p else None, s)
            order = s.caption.lang if s.caption.lang == "en" else ("zh_yx" if s.caption.words[0].ref == 1 else "zh_xy")
            for key in ("all", s.case, s.caption.lang, order, s.caption.relation, f"{s.case}/{s.caption.lang}"):
                hits[key].append(pick == "referent")
                dist[key].append(pick == "distractor")
            match["true"].append(r.match_score > 0.5)
        negs = [(s, n) for s in chunk for n in s.negatives if n.neg_kind == "relation"]
        if negs:
            for _, r in zip(negs, grounder.ground_batch([s.image for s, _ in negs], [n.text for _, n in negs], batch_size=len(negs))):
                match["neither"].append(r.match_score < 0.5)
    mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    return {
        "scenes": len(samples),
        "positions": positions,
        "referent": {k: mean(v) for k, v in sorted(hits.items())},
        "distractor": {k: mean(v) for k, v in sorted(dist.items())},
        "match": {k: mean(v) for k, v in sorted(match.items())},
    }


def relations_markdown(results: dict[str, dict]) -> str:
    """A Markdown table, one column per evaluated set (e.g. positions on / off)."""
    names = list(results)
    keys = ["all", "same_colour", "colour_not_named", "same_colour/en", "same_colour/zh", "colour_not_named/en",
            "colour_not_named/zh", "en", "zh", "zh_xy", "zh_yx", "left", "right", "above", "below"]  # fmt: skip
    lines = ["| relational scenes | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    fmt = lambda v: "–" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    for k in keys:
        lines.append(f"| referent found, {k} | " + " | ".join(fmt(results[n]["referent"].get(k)) for n in names) + " |")
    lines.append("| distractor picked, all | " + " | ".join(fmt(results[n]["distractor"].get("all")) for n in names) + " |")
    lines.append("| match: true caption accepted | " + " | ".join(fmt(results[n]["match"].get("true")) for n in names) + " |")
    lines.append("| match: relation true of neither rejected | " + " | ".join(fmt(results[n]["match"].get("neither")) for n in names) + " |")
    return "\n".join(lines)
