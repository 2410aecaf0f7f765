"""Benchmark: the Gradio app as a service, driven by gradio_client.

    python bench/service.py                  # 500 requests in all, < 3 minutes
    python bench/service.py --requests 60    # quick smoke run
    python bench/service.py --model path/to/checkpoint

Starts ``python app.py`` as a subprocess on a free port and measures
- start-up: process start -> first successful /ground response;
- /ground latency p50 / p95 and requests/s with 1 user asking new questions (a forward pass
  each) and asking the same question again (its cached trace), and with 16 concurrent users
  (half of them send the *same* image and caption, which is what exposed gradio's output-cache
  race; these clients download the output files, like a browser);
- /words_at latency with 1 user (image -> text);
- the server's RSS after 10 and after ``--requests`` requests (the rest are sent by 4
  concurrent users, one /ground for two /words_at, without downloading files).
Prints a Markdown table. Every loop is bounded (a deadline stops it early; the table says so).
Uses the shipped model (assets/model) or MMATTN_MODEL / --model; without one, a tiny random
model from tests/app_fixtures.py (then the numbers say little about the real model).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HTTPX = {"timeout": 120}  # slow answers count as latency, not as errors
CAPTIONS = [
    "a red circle left of a blue square",
    "a blue square",
    "一个红色的圆",
    "the large red circle is left of the small blue square",
]


#: distinct captions: every request of the "new question" phases is a forward pass
FRESH = [f"a {c} {s} {r} a {c2} {s2}" for c, c2 in (("red", "blue"), ("green", "yellow"), ("pink", "cyan"))
         for s, s2 in (("circle", "square"), ("star", "heart"), ("triangle", "cross"))
         for r in ("left of", "right of", "above")]  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def scenes(folder: Path) -> list[str]:
    paths = []
    for i, (w, h) in enumerate([(160, 120), (240, 160), (128, 192), (640, 480)]):
        im = Image.new("RGB", (w, h), (225, 225, 225))
        d = ImageDraw.Draw(im)
        r = min(w, h) // (5 + i)
        d.ellipse([w // 4 - r, h // 2 - r, w // 4 + r, h // 2 + r], fill=(220, 30, 30))
        d.rectangle([3 * w // 4 - r, h // 2 - r, 3 * w // 4 + r, h // 2 + r], fill=(30, 60, 220))
        paths.append(str(folder / f"scene{i}.png"))
        im.save(paths[-1])
    return paths


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


class Phase:
    def __init__(self, name: str):
        self.name, self.lat, self.errors, self.wall = name, [], [], 0.0
        self.lock = threading.Lock()

    def row(self) -> str:
        n = len(self.lat)
        rps = n / self.wall if self.wall else float("nan")
        return (f"| {self.name} | {n} | {len(self.errors)} | {1000 * pct(self.lat, 0.5):.0f} | {1000 * pct(self.lat, 0.95):.0f} | "
                f"{rps:.2f} |")  # fmt: skip


def run_users(phase: Phase, clients, jobs_per_user: int, job, deadline: float) -> None:
    def user(i, c):
        for k in range(jobs_per_user):
            if time.monotonic() > deadline:
                return
            t = time.perf_counter()
            try:
                job(i, k, c)
                with phase.lock:
                    phase.lat.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted and shown
                with phase.lock:
                    phase.errors.append(f"{e.__class__.__name__}: {str(e)[:120]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i, c), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 30))
    phase.wall = time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=500, help="total requests before the last RSS reading (default 500)")
    ap.add_argument("--users", type=int, default=16, help="concurrent users in the concurrency phase (default 16)")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: MMATTN_MODEL or the shipped model)")
    ap.add_argument("--budget", type=float, default=140.0, help="seconds for new requests (default 140; in-flight ones finish after)")
    args = ap.parse_args(argv)
    start_all = time.monotonic()
    deadline = start_all + args.budget

    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="mmattn-bench-"))
    model = args.model or os.environ.get("MMATTN_MODEL")
    note = ""
    if model is None and not (ROOT / "assets" / "model" / "model.safetensors").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from app_fixtures import make_tiny_checkpoint

        model = str(make_tiny_checkpoint(tmp / "tiny"))
        note = "**No shipped model: a tiny random model was used; these numbers say little about the real one.**"
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    if model:
        env["MMATTN_MODEL"] = model
    images = scenes(tmp)
    url = f"http://127.0.0.1:{port}/"
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    t_start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    total = 0
    try:
        # ---- start-up ----
        client = None
        while client is None:
            if proc.poll() is not None:
                print((tmp / "server.log").read_text()[-3000:])
                raise SystemExit(f"the app exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start within the budget")
            try:
                client = Client(url, verbose=False, download_files=False, httpx_kwargs=HTTPX)
                client.predict(handle_file(images[0]), CAPTIONS[0], api_name="/ground")
            except Exception:  # noqa: BLE001 - not up yet
                client = None
                time.sleep(0.2)
        startup = time.perf_counter() - t_start
        total = 1
        while total < 10:
            client.predict(handle_file(images[total % len(images)]), CAPTIONS[total % len(CAPTIONS)], api_name="/ground")
            total += 1
        rss10 = rss_mb(proc.pid)

        # ---- 1 user: new questions (each one a forward pass), then the same question again (its cached trace) ----
        one = Phase("/ground, 1 user, a new question each time")
        run_users(one, [client], 20, lambda i, k, c: c.predict(handle_file(images[k % 3]), FRESH[k % len(FRESH)],
                                                               api_name="/ground"), deadline)  # fmt: skip
        again = Phase("/ground, 1 user, the same question again")
        run_users(again, [client], 20, lambda i, k, c: c.predict(handle_file(images[0]), CAPTIONS[0], api_name="/ground"), deadline)
        words = Phase("/words_at, 1 user")
        run_users(words, [client], 20, lambda i, k, c: c.predict(handle_file(images[0]), CAPTIONS[0], 10 + k, 50,
                                                                 api_name="/words_at"), deadline)  # fmt: skip
        # ---- N users, half of them identical, downloading files like a browser ----
        many = Phase(f"/ground, {args.users} users (half identical, files downloaded)")
        dl = [Client(url, verbose=False, httpx_kwargs=HTTPX) for _ in range(args.users)]

        def concurrent_job(i, k, c):
            if i % 2 == 0:  # identical requests
                picture, *_ = c.predict(handle_file(images[0]), CAPTIONS[0], api_name="/ground")
            else:
                picture, *_ = c.predict(handle_file(images[(i + k) % len(images)]), FRESH[(7 * i + k) % len(FRESH)], api_name="/ground")
            Image.open(picture).load()  # a complete file came back

        run_users(many, dl, 3, concurrent_job, deadline)
        total += len(again.lat) + len(again.errors) + len(one.lat) + len(one.errors) + len(words.lat) + len(words.errors) + len(many.lat) + len(many.errors)
        # ---- fill up to --requests with 4 users, no downloads: /ground and /words_at in turn ----
        fill = Phase("1/3 /ground + 2/3 /words_at, 4 users (filler, no downloads)")
        rest = max(0, args.requests - total)
        fillers = [Client(url, verbose=False, download_files=False, httpx_kwargs=HTTPX) for _ in range(4)]

        def filler_job(i, k, c):
            image = handle_file(images[(i + k) % len(images)])
            if k % 3 == 0:
                c.predict(image, "a blue square", api_name="/ground")
            else:
                c.predict(image, CAPTIONS[(i + k) % len(CAPTIONS)], 5 + k, 5, api_name="/words_at")

        run_users(fill, fillers, -(-rest // 4), filler_job, deadline)
        total += len(fill.lat) + len(fill.errors)
        rss_end = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    import torch  # only for the header

    print(f"## mmattn app service benchmark\n\nCPU: {cpu_model()}; {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}; model: `{model or 'assets/model'}`. {note}\n")  # fmt: skip
    print(f"- start-up (process start -> first /ground response): **{startup:.1f} s**")
    print(f"- server RSS after 10 requests: **{rss10:.0f} MB**; after {total} requests: **{rss_end:.0f} MB**"
          + ("" if total >= args.requests else f" (stopped early by the {args.budget:.0f} s budget)"))  # fmt: skip
    print(f"- server still running at the end: {'yes' if alive else '**no**'}\n")
    print("| phase | requests | errors | p50 ms | p95 ms | requests/s |\n|---|---|---|---|---|---|")
    for ph in (one, again, words, many, fill):
        print(ph.row())
    errs = one.errors + again.errors + words.errors + many.errors + fill.errors
    if errs:
        print("\nerrors (first 5):\n" + "\n".join(f"- {e}" for e in errs[:5]))
    print(f"\n(total wall time {time.monotonic() - start_all:.0f} s)")
    return 1 if errs or not alive else 0


if __name__ == "__main__":
    raise SystemExit(main())
