"""The ``mmattn`` command: ``mmattn train``, ``mmattn eval``, ``mmattn ground``."""

from __future__ import annotations

import os
import sys

USAGE = """usage: mmattn {train,eval,ground,ground-many,world} ...

  train    train a grounding model on generated shapes scenes
           (--clip FOLDER [--jsonl FILE]: train the CLIP backend's fusion instead)
  eval     evaluate a checkpoint on held-out scenes (pointing, boxes, match, ...)
  ground   ground a caption in an image: overlays and JSON
  ground-many  ground every row of a CSV (image, caption) into JSON Lines, resumable;
           --ray ADDRESS runs it on a Ray cluster
  world    what a model knows: its shapes, colours, sizes and relations (--lang zh for Chinese)

Run `mmattn COMMAND --help` for the options of each. Errors are one line on stderr
(MMATTN_DEBUG=1 shows the traceback)."""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE + "\n")
        return
    command, rest = argv[0], argv[1:]
    if command == "train" and any(a.split("=")[0] in ("--clip", "--jsonl") for a in rest):
        from mmattn.training.clip_train import main as run  # the CLIP backend's fusion, on frozen CLIP towers
    elif command == "train":
        from mmattn.training.train import main as run
    elif command == "eval":
        from mmattn.training.evaluate import main as run
    elif command == "ground":
        from mmattn.cli.ground import main as run
    elif command == "ground-many":
        from mmattn.cli.ground_many import main as run
    elif command == "world":
        from mmattn.cli.world import main as run
    else:
        sys.stderr.write(f"mmattn: unknown command {command!r}\n\n{USAGE}\n")
        raise SystemExit(2)
    try:
        run(rest)
    except KeyboardInterrupt:
        sys.stderr.write(f"mmattn {command}: interrupted\n")
        raise SystemExit(130) from None
    except (ValueError, TypeError, OSError) as e:  # CheckpointError is a ValueError; bugs of other kinds keep their traceback
        if os.environ.get("MMATTN_DEBUG"):
            raise
        sys.stderr.write(f"mmattn {command}: error: {one_line(e)}\n")
        raise SystemExit(1) from None


def one_line(e: BaseException) -> str:
    """An exception as one line: its message (the first line of it), or its type if it has none."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)  # without the "[Errno N]" prefix
    text = " ".join(text.split()) if text.strip() else type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text += f": {e.filename}"
    return text[:2000]


if __name__ == "__main__":
    main()
