"""A new question to the service against the library: `python bench/service_ratio.py [--questions 600]`.

Starts ``python app.py`` on a free port (as bench/service.py does; each test image uploaded
once, as a browser does) and, in this one process, interleaves question by question:
- a new ``/ground`` question over raw HTTP (``POST /gradio_api/call/ground`` and its event
  stream; a caption never asked before, so a forward pass each): the page's picture, table,
  match, notes and JSON;
- a new ``/grounding`` question the same way (another new caption): the JSON alone, what
  ``ground()`` gives, no picture;
- the same image file and caption through ``Grounder.ground()`` in this process, its
  ``word_maps`` read.
Prints the CPU model and load average, each p50 / p95 and the ratios (issue #25 goal: HTTP
p50 <= 3x in-process p50), and the server's RSS at the 150th and at the last new question
(goal: <= 40 MB growth from the 150th to the 600th).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine import cpu_model
from service import ROOT, Rest, free_port, pct, rss_mb, scenes, stop

sys.path.insert(0, str(ROOT))

COLOURS = ("red", "blue", "green", "yellow", "pink", "cyan")
SHAPES = ("circle", "square", "star", "heart", "triangle", "cross")
RELATIONS = ("left of", "right of", "above", "below")


def questions() -> list[str]:
    """Thousands of distinct captions of the shapes world."""
    return [
        f"a {c} {s} {r} a {c2} {s2}"
        for c, s, r, c2, s2 in itertools.product(COLOURS, SHAPES, RELATIONS, COLOURS, SHAPES)
        if (c, s) != (c2, s2)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=600)
    ap.add_argument("--mark", type=int, default=150, help="the question whose RSS is the baseline (default 150)")
    args = ap.parse_args()
    import mmattn

    tmp = Path(tempfile.mkdtemp(prefix="mmattn-bench-"))
    images = scenes(tmp)[:3]  # 160x120, 240x160, 128x192 (the 640x480 one is left to bench/service.py)
    g = mmattn.Grounder.from_pretrained()
    caps = questions()[: 2 * args.questions + 40]
    lean = caps[args.questions + 20 :]  # /grounding's captions: none asked before either
    http_lat, lean_lat, lib_lat = [], [], []
    rss = {}
    load0 = os.getloadavg()
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    for attempt in range(3):  # on a loaded machine gradio's own check of localhost can time out at launch
        port = free_port()
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
        user = Rest(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 180
        files = None
        while files is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                files = [user.upload(p) for p in images]
            except httpx.HTTPError:
                time.sleep(0.2)
        if files is not None:
            break
        proc.kill()
        print(f"the app did not start (attempt {attempt + 1}): {(tmp / 'server.log').read_text()[-300:]}", file=sys.stderr)
    else:
        raise SystemExit("the app did not start in three attempts")
    try:
        errors = []

        def ground(n, caption, api="ground"):
            args = ("attention", 1, "mean", True, None) if api == "ground" else ("attention", 1, "mean", None)
            try:
                return user.call(api, files[n], caption, *args)
            except RuntimeError as e:  # counted; the images uploaded again (a server may clear its upload cache)
                errors.append(str(e).splitlines()[-1][:160])
                files[:] = [user.upload(p) for p in images]
                return user.call(api, files[n], caption, *args)

        for k in range(10):  # warm-up (not counted, captions not reused)
            ground(k % 3, caps[-1 - k])
            ground(k % 3, caps[-11 - k], "grounding")
            g.ground(images[k % 3], caps[-1 - k]).word_maps  # noqa: B018
        for k in range(args.questions):
            n = k % 3
            t = time.perf_counter()
            ground(n, caps[k])
            http_lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            ground(n, lean[k], "grounding")
            lean_lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            g.ground(images[n], caps[k]).word_maps  # noqa: B018
            lib_lat.append(time.perf_counter() - t)
            if k + 1 in (args.mark, args.questions):
                rss[k + 1] = rss_mb(proc.pid)
            if (k + 1) % 50 == 0:
                print(f"{k + 1} questions: p50 {1000 * statistics.median(http_lat):.0f} ms over HTTP, "
                      f"{1000 * statistics.median(lib_lat):.0f} ms in process, server RSS {rss_mb(proc.pid):.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        stop(proc)
        log.close()
    import torch

    h50, g50, l50 = statistics.median(http_lat), statistics.median(lean_lat), statistics.median(lib_lat)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load0)}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.questions} new questions, interleaved (3 images of 160x120 to 240x160, 8-word captions)")
    print("| measure | p50 ms | p95 ms |\n|---|---|---|")
    print(f"| `/ground` over raw HTTP, a new question (picture, table, JSON) | {1000 * h50:.1f} | {1000 * pct(http_lat, 0.95):.1f} |")
    print(f"| `/grounding` over raw HTTP, a new question (the JSON alone) | {1000 * g50:.1f} | {1000 * pct(lean_lat, 0.95):.1f} |")
    print(f"| `Grounder.ground()` in process, word maps read | {1000 * l50:.1f} | {1000 * pct(lib_lat, 0.95):.1f} |")
    print(f"ratio of the p50s: /ground {h50 / l50:.2f}x, /grounding {g50 / l50:.2f}x (goal <= 3x); errors (each retried after uploading the images again): {len(errors)}")
    for e in errors[:3]:
        print(f"- {e}")
    a, b = args.mark, args.questions
    print(f"server RSS at new question {a}: {rss.get(a, float('nan')):.0f} MB, at {b}: {rss.get(b, float('nan')):.0f} MB, "
          f"growth {rss.get(b, float('nan')) - rss.get(a, float('nan')):.1f} MB (goal <= 40 MB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
