"""Start-up to the first answer: `python bench/startup.py [--rounds 5]`.

Starts ``python app.py`` on a free port ``--rounds`` times, one after another, and times each
from the process's start to its first successful ``/ground`` answer (the image uploaded and
grounded as soon as the server accepts it), as bench/service.py's start-up figure does.
Prints the CPU model, the load average and the median and range (issue #25 goal: <= 5 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine import cpu_model
from service import CAPTIONS, ROOT, Rest, free_port, scenes, stop


def start_once(images: list[str], log: Path) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT)
        user = Rest(f"http://127.0.0.1:{port}/")
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the app exited with code {proc.returncode}: {log.read_text()[-2000:]}")
                if time.perf_counter() - t > 180:
                    raise SystemExit("the app did not answer within 180 s")
                try:
                    user.call("ground", user.upload(images[0]), CAPTIONS[0], "attention", 1, "mean", True, None)
                    return time.perf_counter() - t
                except (httpx.HTTPError, RuntimeError, ValueError, KeyError):  # not up yet
                    time.sleep(0.05)
        finally:
            stop(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mmattn-startup-"))
    images = scenes(tmp)
    load0 = os.getloadavg()
    times = [start_once(images, tmp / "server.log") for _ in range(args.rounds)]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"start-up to the first /ground answer, {args.rounds} starts: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}; goal <= 5 s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
