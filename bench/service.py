"""Benchmark: the Gradio app as a service, driven over its HTTP API.

    python bench/service.py                  # 500 requests in all, < 3 minutes
    python bench/service.py --requests 60    # quick smoke run
    python bench/service.py --model path/to/checkpoint

Starts ``python app.py`` as a subprocess on a free port and calls it the way any HTTP client
does (``POST /gradio_api/call/<endpoint>``, then the result's event stream; each test image
uploaded once, as a browser uploads it once when it is chosen). ``gradio_client`` is timed
too, in one phase: it polls its queue every 50 ms (``gradio_client/utils.py``), which adds
about 65 ms to every call whatever the server does. Measured:
- start-up: process start -> first successful /ground response;
- /ground latency p50 / p95 and requests/s with 1 user asking new questions (a forward pass
  each) and asking the same question again (its cached trace), and with 16 concurrent users
  (half of them send the *same* image and caption, which is what exposed gradio's output-cache
  race; these clients download the output files, like a browser);
- /words_at latency with 1 user (image -> text);
- the server's RSS after 10 requests, once the trace cache is full (about 150), and after
  ``--requests`` requests (the rest are sent by 4 concurrent users, one /ground for two
  /words_at).
Prints a Markdown table. Every loop is bounded (a deadline stops it early; the table says so).
Uses the shipped model (assets/model) or MMATTN_MODEL / --model; without one, a tiny random
model from tests/app_fixtures.py (then the numbers say little about the real model).
"""

from __future__ import annotations

import argparse
import io
import json
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

import httpx
from machine import cpu_model  # bench/machine.py, beside this script
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop a server as Ctrl-C does (it cleans up after itself); kill it if it has not gone in 10 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


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


class Rest:
    """One user of the app's HTTP API (its own connection)."""

    def __init__(self, url: str):
        self.url, self.http = url, httpx.Client(**HTTPX)

    def upload(self, path: str) -> dict:
        with open(path, "rb") as f:
            server_path = self.http.post(f"{self.url}gradio_api/upload", files={"files": f}).json()[0]
        return {"path": server_path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api: str, *data):
        """The endpoint's outputs; raises RuntimeError with the app's message on an error."""
        event = self.http.post(f"{self.url}gradio_api/call/{api}", json={"data": list(data)}).json()["event_id"]
        body = self.http.get(f"{self.url}gradio_api/call/{api}/{event}").text
        kind, _, rest = body.partition("\ndata: ")
        if not kind.endswith("complete"):
            raise RuntimeError(f"{api}: {body[:200]}")
        return json.loads(rest.split("\n\n", 1)[0])

    def download(self, file: dict) -> bytes:
        r = self.http.get(file["url"])
        r.raise_for_status()
        return r.content


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

    tmp = Path(tempfile.mkdtemp(prefix="mmattn-bench-"))
    model = args.model or os.environ.get("MMATTN_MODEL")
    note = ""
    if model is None and not (ROOT / "assets" / "model" / "model.safetensors").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from app_fixtures import make_tiny_checkpoint

        model = str(make_tiny_checkpoint(tmp / "tiny"))
        note = "**No shipped model: a tiny random model was used; these numbers say little about the real one.**"
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    if model:
        env["MMATTN_MODEL"] = model
    images = scenes(tmp)
    url = f"http://127.0.0.1:{port}/"
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    t_start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    total = 0
    ground = lambda c, f, caption: c.call("ground", f, caption, "attention", 1, "mean", True, None)  # noqa: E731
    try:
        # ---- start-up: process start -> first /ground answer ----
        user = Rest(url)
        files = None
        while files is None:
            if proc.poll() is not None:
                print((tmp / "server.log").read_text()[-3000:])
                raise SystemExit(f"the app exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start within the budget")
            try:
                files = [user.upload(p) for p in images]
                ground(user, files[0], CAPTIONS[0])
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError):  # not up yet
                files = None
                time.sleep(0.1)
        startup = time.perf_counter() - t_start
        total = 1
        while total < 10:
            ground(user, files[total % len(files)], FRESH[-total])
            total += 1
        rss10 = rss_mb(proc.pid)

        # ---- 1 user: new questions (a forward pass each), the same question again (its cached trace), clicks ----
        one = Phase("/ground, 1 user, a new question each time")
        run_users(one, [user], 20, lambda i, k, c: ground(c, files[k % 3], FRESH[k % len(FRESH)]), deadline)
        again = Phase("/ground, 1 user, the same question again")
        run_users(again, [user], 20, lambda i, k, c: ground(c, files[0], CAPTIONS[0]), deadline)
        words = Phase("/words_at, 1 user (clicks on a grounded image)")
        run_users(words, [user], 20, lambda i, k, c: c.call("words_at", files[0], CAPTIONS[0], 10 + k, 50, "attention", 1, "mean", None), deadline)
        # the same clicks through gradio_client, for comparison (its 50 ms polling included)
        from gradio_client import Client, handle_file

        gc = Client(url, verbose=False, download_files=False, httpx_kwargs=HTTPX)
        words_gc = Phase("/words_at, 1 user, through gradio_client")
        run_users(words_gc, [gc], 20, lambda i, k, c: c.predict(handle_file(images[0]), CAPTIONS[0], 10 + k, 50, api_name="/words_at"),
                  deadline)  # fmt: skip
        # ---- N users, half of them identical, downloading the picture like a browser ----
        many = Phase(f"/ground, {args.users} users (half identical, pictures downloaded)")
        users = [Rest(url) for _ in range(args.users)]

        def concurrent_job(i, k, c):
            if i % 2 == 0:  # identical requests
                out = ground(c, files[0], CAPTIONS[0])
            else:
                out = ground(c, files[(i + k) % len(files)], FRESH[(7 * i + k) % len(FRESH)])
            Image.open(io.BytesIO(c.download(out[0]))).load()  # a complete picture came back

        run_users(many, users, 3, concurrent_job, deadline)
        total += sum(len(p.lat) + len(p.errors) for p in (one, again, words, words_gc, many))
        rss_mid, total_mid = rss_mb(proc.pid), total  # the trace cache (32 traces) is full by now
        # ---- fill up to --requests with 4 users: /ground and /words_at in turn ----
        fill = Phase("1/3 /ground + 2/3 /words_at, 4 users (filler)")
        rest = max(0, args.requests - total)

        def filler_job(i, k, c):
            f = files[(i + k) % len(files)]
            if k % 3 == 0:
                ground(c, f, FRESH[(i + 5 * k) % len(FRESH)])
            else:
                c.call("words_at", f, CAPTIONS[(i + k) % len(CAPTIONS)], 5 + k % 100, 5, "attention", 1, "mean", None)

        run_users(fill, users[:4], -(-rest // 4), filler_job, deadline)
        total += len(fill.lat) + len(fill.errors)
        rss_end = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        stop(proc)
        log.close()

    import torch  # only for the header

    phases = (one, again, words, words_gc, many, fill)
    print(f"## mmattn app service benchmark\n\nCPU: {cpu_model()}; {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}; model: `{model or 'assets/model'}`. {note}\n")  # fmt: skip
    print(f"- start-up (process start -> first /ground answer): **{startup:.1f} s**")
    print(f"- server RSS after 10 requests: **{rss10:.0f} MB**; after {total_mid} (the trace cache full): **{rss_mid:.0f} MB**; "
          f"after {total} requests: **{rss_end:.0f} MB**"
          + ("" if total >= args.requests else f" (stopped early by the {args.budget:.0f} s budget)"))  # fmt: skip
    print(f"- server still running at the end: {'yes' if alive else '**no**'}\n")
    print("| phase | requests | errors | p50 ms | p95 ms | requests/s |\n|---|---|---|---|---|---|")
    for ph in phases:
        print(ph.row())
    errs = [e for ph in phases for e in ph.errors]
    if errs:
        print("\nerrors (first 5):\n" + "\n".join(f"- {e}" for e in errs[:5]))
    print(f"\n(total wall time {time.monotonic() - start_all:.0f} s)")
    return 1 if errs or not alive else 0


if __name__ == "__main__":
    raise SystemExit(main())
