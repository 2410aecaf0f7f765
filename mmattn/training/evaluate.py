"""Evaluation on held-out shapes scenes: ``mmattn eval CHECKPOINT``.

Metrics (content words = colour, shape and size words that refer to an object):
- pointing: the peak of a content word's map lies inside its object's mask; broken down by
  word kind, by ambiguity (another object shares the colour or the shape), by language;
- box IoU: the box of the map (region >= BOX_FRACTION of its peak, around the peak) against the
  object's box;
- image->text: at the centre of each mentioned object, the content word the patch attends to
  most is one of that object's words;
- match: accuracy on true captions and on counterfactuals (one colour / shape / size /
  relation changed), and how often the true caption outscores its counterfactual;
- grounded flag: precision / recall of "this word is located in the image" (content words
  yes; function and relation words, and counterfactual words naming nothing in the scene, no).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from mmattn.api.maps import box_iou, boxes_from_maps, peak_points, reduce_heads, word_matrix, word_minimum
from mmattn.api.processor import MmattnProcessor
from mmattn.backends.shapes.worldcheck import abstention_rate
from mmattn.io import files
from mmattn.scenes import SHIFTED, TRAIN, make_sample
from mmattn.training.batches import CONTENT, _attribute_present

log = logging.getLogger(__name__)

#: sizes of held-out scenes: the training sizes and others the model never saw
EVAL_SIZES = ((96, 96), (128, 96), (96, 128), (160, 120), (200, 100), (120, 200), (320, 240))


def held_out_samples(n: int, seed: int = 10_000_019, config=TRAIN, sizes=EVAL_SIZES) -> list:
    """``n`` fresh scenes (seeds never used by training), cycling through ``sizes``."""
    return [make_sample(seed + i, *sizes[i % len(sizes)], config) for i in range(n)]


def _readings(grounder, images, captions, layer: int, heads="mean") -> list[dict]:
    """One forward pass per group of same-sized images (one caption each), read per item.

    Every word the model read is kept (the metrics index the dataset's words), and maps are
    not rescaled (boxes and peaks do not depend on a map's scale)."""
    items = []
    for t in grounder.iter_traces(images, captions, batch_size=len(images), progress=False):
        cap = t.caption
        M = word_matrix(cap.word_ids, len(cap.all_words), len(cap.tokens))  # (W, T)
        items.append({
            "maps": M @ t.token_maps("attention", layer, heads),  # (W, P)
            "i2t": reduce_heads(torch.from_numpy(t.image_to_text[t.layer(layer)]), heads) @ M.T,  # (P, W)
            "grounded": word_minimum(torch.sigmoid(torch.from_numpy(t.grounded_logits)).numpy(), cap.word_ids, len(cap.all_words)),  # (W,)
            "match": t.match_score,
            "grid": t.grid,
        })  # fmt: skip
    return items


def evaluate(model, tokenizer, samples, *, layer: int = -1, heads="mean", batch_size: int = 64, progress: bool = True) -> dict:
    """All metrics on ``samples`` (from :func:`held_out_samples`) as a nested dict, in float32."""
    from mmattn.backends.shapes.grounder import ShapesGrounder  # late: the CLI's --help needs no backend

    cfg = model.config
    grounder = ShapesGrounder(model, MmattnProcessor(tokenizer, image_size=cfg.image_size, patch_size=cfg.patch_size), precision="float32")
    groups = defaultdict(list)
    for s in samples:
        groups[s.image.size].append(s)
    hits = defaultdict(list)
    ious, i2t_hits, match, pairs, flags = [], [], defaultdict(list), [], []
    bar = tqdm(total=len(samples), desc="eval", disable=not progress)
    for chunk in (g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)):
        imgs = [s.image for s in chunk]
        pos = _readings(grounder, imgs, [s.caption.text for s in chunk], layer, heads)
        for s, r in zip(chunk, pos):
            W, H = s.image.size
            words = s.caption.words
            boxes = boxes_from_maps(r["maps"], r["grid"], (H, W))
            peaks = peak_points(r["maps"], r["grid"], (H, W))
            match["true"].append(r["match"] > 0.5)
            for w, word in enumerate(words):
                content = word.kind in CONTENT and word.ref is not None
                flags.append((bool(r["grounded"][w] > 0.5), content))
                if not content:
                    continue
                obj = s.objects[word.ref]
                x, y = peaks[w]  # the peak of the word's map as the API renders it
                hit = bool(obj.mask[y, x])
                for key in ("all", word.kind, "ambiguous" if s.ambiguous else "unambiguous", s.caption.lang):
                    hits[key].append(hit)
                ious.append(box_iou(boxes[w], obj.box))
            gh, gw = r["grid"]
            for k in {word.ref for word in words if word.kind in CONTENT and word.ref is not None}:
                o = s.objects[k]
                cx, cy = o.center
                p = min(int(cy / H * gh), gh - 1) * gw + min(int(cx / W * gw), gw - 1)
                content = [w for w, word in enumerate(words) if word.kind in CONTENT and word.ref is not None]
                best = max(content, key=lambda w: float(r["i2t"][p, w]))
                i2t_hits.append(words[best].ref == k)
        negs = [(s, n) for s in chunk for n in s.negatives]
        if negs:
            neg_out = _readings(grounder, [s.image for s, _ in negs], [n.text for _, n in negs], layer, heads)
            true_score = {id(s): r["match"] for s, r in zip(chunk, pos)}
            for (s, n), r in zip(negs, neg_out):
                match[n.neg_kind].append(r["match"] < 0.5)
                match["false"].append(r["match"] < 0.5)
                pairs.append(true_score[id(s)] > r["match"])
                for w in n.changed:
                    if n.words[w].kind in CONTENT and not _attribute_present(n.words[w].text, s.objects):
                        flags.append((bool(r["grounded"][w] > 0.5), False))
        bar.update(len(chunk))
    bar.close()
    pred = np.array([f[0] for f in flags])
    truth = np.array([f[1] for f in flags])
    tp = float((pred & truth).sum())
    mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    all_match = match["true"] + match["false"]
    return {
        "scenes": len(samples),
        "layer": layer,
        "pointing": {k: mean(v) for k, v in sorted(hits.items())},
        "box_iou": mean(ious),
        "image_to_text": mean(i2t_hits),
        "match": {"all": mean(all_match), **{k: mean(v) for k, v in sorted(match.items())}, "pairwise": mean(pairs)},
        "grounded": {"precision": tp / max(1.0, float(pred.sum())), "recall": tp / max(1.0, float(truth.sum()))},
        "abstained": abstention_rate(s.image for s in samples),  # scenes wrongly flagged as outside the shapes world
    }


def markdown(results: dict[str, dict]) -> str:
    """A Markdown table, one column per evaluated set."""
    names = list(results)
    rows = [("pointing, all", lambda m: m["pointing"].get("all"))]
    for k in ("colour", "shape", "size", "ambiguous", "unambiguous", "en", "zh"):
        rows.append((f"pointing, {k}", lambda m, k=k: m["pointing"].get(k)))
    rows += [
        ("box IoU (mean)", lambda m: m["box_iou"]),
        ("image→text", lambda m: m["image_to_text"]),
        ("match, all", lambda m: m["match"]["all"]),
    ]
    for k in ("true", "colour", "shape", "size", "relation", "pairwise"):
        rows.append((f"match, {k}", lambda m, k=k: m["match"].get(k)))
    rows += [("grounded precision", lambda m: m["grounded"]["precision"]), ("grounded recall", lambda m: m["grounded"]["recall"]),
             ("flagged as not the shapes world", lambda m: m.get("abstained"))]  # fmt: skip
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, get in rows:
        cells = []
        for n in names:
            v = get(results[n])
            cells.append("–" if v is None or v != v else f"{v:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmattn eval", description="Evaluate a checkpoint on held-out shapes scenes.")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--scenes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=10_000_019)
    p.add_argument("--layer", type=int, default=None, help="fusion layer (default: the model's documented default)")
    p.add_argument("--sets", default="train,shifted,relations",
                   help="comma-separated: train (training style), shifted (rendered differently), relations (a same-shape "
                        "distractor only the relation tells apart, with positions on and off)")  # fmt: skip
    p.add_argument("--json", dest="json_out", default=None, help="write the metrics as JSON here")
    p.add_argument("--md", default=None, help="write the Markdown table here")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from mmattn.api.grounder import DEFAULT_LAYER, resolve_checkpoint
    from mmattn.models.grounding_model import GroundingModel
    from mmattn.models.tokenizer import load_tokenizer

    path = resolve_checkpoint(args.checkpoint)
    model, tok = GroundingModel.load(path), load_tokenizer(path)
    layer = DEFAULT_LAYER if args.layer is None else args.layer
    configs = {"train": TRAIN, "shifted": SHIFTED}
    results, relations = {}, {}
    for name in args.sets.split(","):
        if name == "relations":
            from mmattn.training.relations_eval import evaluate_relations, relational_samples

            samples = relational_samples(args.scenes, 20_000_003 + args.seed - 10_000_019)  # the default seed gives the documented set
            relations["positions on"] = evaluate_relations(model, tok, samples)
            relations["positions off"] = evaluate_relations(model, tok, samples, positions=False)
            continue
        if name not in configs:
            raise SystemExit(f"unknown set {name!r}: choose from {', '.join([*configs, 'relations'])}")
        samples = held_out_samples(args.scenes, args.seed, configs[name])
        results[name] = evaluate(model, tok, samples, layer=layer)
    table = markdown(results) if results else ""
    if relations:
        from mmattn.training.relations_eval import relations_markdown

        table = (table + "\n\n" if table else "") + relations_markdown(relations)
        results["relations"] = relations
    sys.stdout.write(table + "\n")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        files.write_json(args.json_out, {"checkpoint": str(path), "scenes": args.scenes, "seed": args.seed, "results": results})
    if args.md:
        files.write_text(args.md, table + "\n")


if __name__ == "__main__":
    main()
