"""``mmattn ground IMAGE "caption" [--out DIR] [--json]``: overlays and JSON for one pair."""

from __future__ import annotations

import argparse
import json
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmattn ground", description="Ground the words of a caption in an image.")
    p.add_argument("image", help="image file (PNG, JPEG, ...)")
    p.add_argument("caption", help='the caption, e.g. "a red circle left of the blue square"')
    p.add_argument("--out", default=None, help="folder for the result: grounding.json, maps.npy (the patch-grid maps) and one overlay PNG per word; "
                   "it is replaced as a whole, and a folder holding other files is refused")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the shipped model)")
    p.add_argument("--method", default="attention", choices=("attention", "rollout", "gradcam"))
    p.add_argument("--layer", type=int, default=None, help="fusion layer (default: the documented default)")
    p.add_argument("--heads", default="mean", help="'mean', 'max' or a head index")
    p.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="the model's arithmetic: auto (default) is float32; bfloat16 only when asked for")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from mmattn.api.grounder import Grounder

    heads = int(args.heads) if args.heads.lstrip("-").isdigit() else args.heads
    try:
        g = Grounder.from_pretrained(args.model, precision=args.precision)
        r = g.ground(args.image, args.caption, method=args.method, layer=args.layer, heads=heads)
    except (ValueError, TypeError, FileNotFoundError) as e:
        sys.stderr.write(f"mmattn ground: {e}\n")
        raise SystemExit(2) from None
    if args.out:
        try:
            r.save(args.out)
        except OSError as e:  # a full disk, no permission, a file in the way: the folder is as it was
            sys.stderr.write(f"mmattn ground: could not write the result to {args.out}: {e.strerror or e}\n")
            raise SystemExit(2) from None
        except ValueError as e:  # a folder holding other files
            sys.stderr.write(f"mmattn ground: {e}\n")
            raise SystemExit(2) from None
    if args.json:
        sys.stdout.write(json.dumps(r.to_json(), ensure_ascii=False, indent=1) + "\n")
    else:
        lines = [f"match score {r.match_score:.3f}" + (f"   ({r.notice})" if r.notice else "")]
        lines.append(f"{'word':<12} {'grounded':<9} {'score':>6}  box")
        unknown = set(r.unknown_words)
        for w, gnd, s, b in zip(r.words, r.grounded, r.grounded_scores, r.boxes):
            score = "  not in the vocabulary" if w in unknown else f"{s:6.3f}  {b if b else '-'}"
            lines.append(f"{pad(w, 12)} {'yes' if gnd else 'no':<9} {score}")
        if r.phrases:
            lines += ["", f"{'phrase':<20} {'score':>6}  {'box':<22} anchored to"]
            for p in r.phrases:
                anchor = f"{p.relation} {r.phrases[p.anchor].text}" if p.anchor is not None else "-"
                lines.append(f"{pad(p.text, 20)} {p.score:6.3f}  {str(p.box) if p.box else '-':<22} {anchor}")
        if r.out_of_world and g.checks_world:  # say what the model does know
            from mmattn.backends.shapes.vocabulary import model_world

            lines += ["", model_world(g.tokenizer).describe("en", markdown=False)]
        if args.out:
            lines.append(f"overlays, maps.npy and grounding.json written to {args.out}")
        sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal columns: a Chinese character takes two."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)
