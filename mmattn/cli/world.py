"""``mmattn world [CHECKPOINT] [--lang en|zh]``: what a model knows (its world and vocabulary)."""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmattn world", description="Say what a grounding model knows: its world and its words.")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--lang", default="en", choices=("en", "zh"), help="language of the description")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from mmattn.api.grounder import resolve_checkpoint
    from mmattn.backends.shapes.vocabulary import ModelWorld
    from mmattn.models.grounding_model import CheckpointError

    try:
        world = ModelWorld.from_pretrained(resolve_checkpoint(args.checkpoint))
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        sys.stderr.write(f"mmattn world: {e}\n")
        raise SystemExit(2) from None
    sys.stdout.write(world.describe(args.lang, markdown=False) + "\n")


if __name__ == "__main__":
    main()
