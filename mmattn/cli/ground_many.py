"""``mmattn ground-many CAPTIONS.csv --out results.jsonl [--ray ADDRESS]``: a CSV of pairs, one JSON line per row.

The CSV has an ``image`` column (a file path, relative to the CSV's folder or absolute) and
a ``caption`` column; other columns are copied into each line. A line is the row's number
(``row``, 0 = the first data row), its columns and the result columns of
:mod:`mmattn.scale.rows` (``words``, ``boxes``, ``grounded``, ``scores``, ``match_score``,
``notice``, ``error``). A row whose image cannot be read gets its ``error``; the others go on.

Resumable: lines are appended one ``write`` each as results come, so a killed run leaves a
file of whole lines (a line cut by a full disk is dropped on the next run), and a rerun skips
the rows already written. Lines come in input order locally, in the order the workers finish
with ``--ray``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmattn ground-many", description="Ground every (image, caption) row of a CSV; one JSON line per row.")
    p.add_argument("csv", help="CSV file with 'image' (a path) and 'caption' columns; other columns are copied to the output")
    p.add_argument("--out", required=True, help="JSON Lines file to write (appended to: rows already in it are skipped)")
    p.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="run on a Ray cluster (e.g. 'auto' or ray://head:10001); needs mmattn[ray]"
    )
    p.add_argument("--concurrency", type=int, default=None, help="Ray actors (default: the cluster's CPUs / --cpus-per-actor)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0)
    p.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the shipped model)")
    p.add_argument("--method", default="attention", choices=("attention", "rollout", "gradcam"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk", type=int, default=256, help="rows grounded between two writes (local runs)")
    return p


def read_rows(path: Path) -> list[dict]:
    """The CSV's rows, each with its number in ``row`` and its image path made absolute."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("image", "caption") if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path} has no {' or '.join(map(repr, missing))} column (its columns: {', '.join(reader.fieldnames or [])})"
                )
            rows = []
            for n, r in enumerate(reader):
                r = {k: v for k, v in r.items() if k is not None}
                r["image"] = os.fspath((path.parent / r["image"]).absolute()) if r.get("image") else ""
                rows.append({"row": n, **r})
            return rows
    except FileNotFoundError:
        raise ValueError(f"no CSV file at {str(path)!r}: check the path") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path} is not a readable CSV ({e})") from None


def done_rows(out: Path) -> set[int]:
    """Row numbers already in ``out``; a last line without its newline (cut by a full disk or a
    crash mid-write) is removed so that the file stays whole lines."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(out, "r+b") as f:
            f.truncate(keep)
    done = set()
    for n, line in enumerate(data[:keep].splitlines(), 1):
        if not line.strip():
            continue
        try:
            done.add(int(json.loads(line)["row"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{out} line {n} is not a result line of mmattn ground-many: pass a new --out file") from None
    return done


class Writer:
    """Appends one JSON line per result with a single write() each (a kill leaves whole lines)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: dict) -> None:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        written = os.write(self.fd, data)
        if written != len(data):  # a full disk: leave no half line behind for the next run to trip on
            raise OSError(f"only {written} of {len(data)} bytes written")

    def close(self) -> None:
        os.close(self.fd)


def run_local(rows: list[dict], args, write, bar) -> None:
    from mmattn.api.grounder import Grounder
    from mmattn.scale.rows import ground_rows

    g = Grounder.from_pretrained(args.model)
    it = iter(rows)
    while chunk := list(itertools.islice(it, args.chunk)):
        results = ground_rows(g, [r["image"] for r in chunk], [r["caption"] for r in chunk], batch_size=args.batch_size, method=args.method)
        for r, res in zip(chunk, results):
            write({**r, **res})
        bar.update(len(chunk))


def run_ray(rows: list[dict], args, write, bar) -> None:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ValueError('--ray needs ray[data]: pip install "mmattn[ray]"') from None
    from mmattn.scale.distributed import ground_dataset

    ray.init(address=args.ray, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts the rows written
        concurrency = args.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // args.cpus_per_actor))
        ds = ground_dataset(ray.data.from_items(rows), concurrency=concurrency, model=args.model, method=args.method,
                            batch_size=args.batch_size, num_cpus=args.cpus_per_actor)  # fmt: skip
        for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
            for line in batch.to_dict("records"):
                write(_plain(line))
            bar.update(len(batch))
    finally:
        ray.shutdown()


def _plain(value):
    """Numpy values of a Ray batch -> JSON's types."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN: pandas' missing value
        return None
    return value


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    out = Path(args.out)
    try:
        if args.batch_size < 1 or args.chunk < 1:
            raise ValueError(f"--batch-size and --chunk must be >= 1 (got {args.batch_size} and {args.chunk})")
        rows = read_rows(Path(args.csv))
        done = done_rows(out)
    except ValueError as e:
        sys.stderr.write(f"mmattn ground-many: {e}\n")
        raise SystemExit(2) from None
    todo = [r for r in rows if r["row"] not in done]
    if done:
        sys.stderr.write(f"{out}: {len(rows) - len(todo)} of {len(rows)} rows already written, {len(todo)} to go\n")
    if not todo:
        return
    writer = Writer(out)
    try:
        with tqdm(total=len(rows), initial=len(rows) - len(todo), desc="grounding", unit="row") as bar:
            (run_ray if args.ray else run_local)(todo, args, writer.write, bar)
    except (ValueError, FileNotFoundError, OSError) as e:
        sys.stderr.write(f"mmattn ground-many: {e}\n")
        raise SystemExit(2) from None
    finally:
        writer.close()
