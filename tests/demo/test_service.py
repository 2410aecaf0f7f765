"""The service as a script or a container meets it (issue 27, findings 1-5 and 8): ``python
app.py`` in a subprocess, spoken to in raw HTTP, stopped with SIGTERM.

- MMATTN_MODEL naming a damaged checkpoint: the shipped model is served, one log line says why.
- Every bad input gets a message that names the input, shows what was given (cut) and what
  is allowed; never ``{"error": null}``; no traceback in the server's log.
- SIGTERM: the server stops and leaves its gradio temp folder and its downloads folder empty.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_fixtures import ROOT, free_port, shipped_model_ready, write_scene
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(not shipped_model_ready(), reason="the service test serves the shipped model")
CAPTION = "a red circle left of a blue square"


class Server:
    def __init__(self, root: Path):
        from mmattn.backends.clip.random_clip import save_random_clip

        self.damaged = save_random_clip(root / "damaged-clip")
        weights = self.damaged / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])  # truncated: main exited 1 on it
        self.temp, self.tmpdir, self.log_file = root / "gradio", root / "tmp", root / "server.log"
        self.temp.mkdir()
        self.tmpdir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.temp), "TMPDIR": str(self.tmpdir), "MMATTN_MODEL": str(self.damaged),
               "GRADIO_SERVER_PORT": str(self.port), "GRADIO_SERVER_NAME": "127.0.0.1", "PYTHONUNBUFFERED": "1",
               "GRADIO_ANALYTICS_ENABLED": "False"}  # fmt: skip
        self.log = open(self.log_file, "w")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            assert self.proc.poll() is None, f"the server exited with {self.proc.returncode}:\n{self.text()[-3000:]}"
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("the server did not start in 300 s:\n" + self.text()[-3000:])

    def text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def upload(self, path) -> dict:
        with open(path, "rb") as f:
            up = httpx.post(f"{self.url}/gradio_api/upload", files={"files": f}, timeout=60).json()[0]
        return {"path": up, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(path).name}

    def call(self, api: str, data: list) -> tuple[str, object]:
        """('complete', outputs) or ('error', message) of one raw HTTP call."""
        r = httpx.post(f"{self.url}/gradio_api/call/{api}", json={"data": data}, timeout=60)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        body = httpx.get(f"{self.url}/gradio_api/call/{api}/{r.json()['event_id']}", timeout=120).text
        event = body.split("event: ", 1)[1].split("\n", 1)[0]
        payload = json.loads(body.split("data: ", 1)[1].split("\n", 1)[0])
        if event == "error":
            return "error", payload["error"] if isinstance(payload, dict) else payload
        return event, payload

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("service"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def image(server, tmp_path_factory):
    return server.upload(write_scene(tmp_path_factory.mktemp("img") / "scene.png", 160, 120))


def test_a_damaged_mmattn_model_is_named_in_one_line_and_the_shipped_model_served(server, image):
    lines = [line for line in server.text().splitlines() if str(server.damaged) in line]
    assert len(lines) == 1 and "serving the shipped model" in lines[0] and "not a readable safetensors file" in lines[0], lines
    assert server.call("ground", [image, CAPTION, "attention", 1, "mean", True, None])[0] == "complete"


LONG = "x" * 100_000
BAD = [  # (endpoint, position, value, what the message must say)
    ("ground", 0, "/etc/passwd", ["The image must be an uploaded file", '"/etc/passwd"']),
    ("ground", 0, 3, ["The image must be an uploaded file", "got 3"]),
    ("ground", 0, {"path": "/tmp/never-uploaded.png", "meta": {"_type": "gradio.FileData"}}, ["was not uploaded"]),
    ("ground", 1, 12345, ["The caption must be text", "got 12345"]),
    ("ground", 1, ["a", "red", "circle"], ["The caption must be text", '["a", "red", "circle"]']),
    ("ground", 1, 3.5, ["The caption must be text", "got 3.5"]),
    ("ground", 1, True, ["The caption must be text", "got true"]),
    ("ground", 1, LONG, ["The caption is 100,000 characters long"]),
    ("ground", 2, "bogus", ['The method "bogus" is not in the list of choices', '"attention"']),
    ("ground", 3, 99, ["The layer 99 is not in the list of choices", "0, 1"]),
    ("ground", 3, True, ["The layer true is not in the list of choices"]),
    ("ground", 4, 9, ["Heads 9 is not in the list of choices", '"mean"']),
    ("ground", 5, "no", ["show_boxes must be true or false", 'got "no"']),
    ("ground", 6, "evil", ['The model "evil" is not in the list of choices', "shipped"]),
    ("heads", 2, "-1", ["word index -1 out of range", "(0..7)"]),
    ("heads", 2, "99", ["word index 99 out of range"]),
    ("heads", 2, LONG, ["not one of the caption's words", "(100,000 characters)"]),
    ("heads", 2, True, ["The word must be text or a number", "got true"]),
    ("positions", 1, 0, ["n must be a number 2..128", "got 0"]),
    ("positions", 1, 1e9, ["n must be a number 2..128", "got 1000000000.0"]),
    ("positions", 1, "8", ["n must be a number 2..128", 'got "8"']),
    ("words_at", 2, float("inf"), ["x must be a number"]),
]
GOOD = {
    "ground": lambda im: [im, CAPTION, "attention", 1, "mean", True, None],
    "heads": lambda im: [im, CAPTION, "red", None],
    "positions": lambda im: [None, 8, 8, "", 0, 0, None],
    "words_at": lambda im: [im, CAPTION, 3, 3, "attention", 1, "mean", None],
}


@pytest.mark.parametrize("api, at, value, says", BAD, ids=[f"{a}-{i}-{str(v)[:20]}" for a, i, v, _ in BAD])
def test_a_bad_input_is_named_with_what_was_given_and_what_is_allowed(server, image, api, at, value, says):
    data = GOOD[api](image)
    data[at] = value
    if value == float("inf"):  # not JSON: sent as the raw token Python's json writes
        r = httpx.post(f"{server.url}/gradio_api/call/{api}", content=json.dumps({"data": data}), timeout=60,
                       headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code in (200, 422), r.text[:300]
        if r.status_code == 422:
            return
        body = httpx.get(f"{server.url}/gradio_api/call/{api}/{r.json()['event_id']}", timeout=60).text
        event, message = body.split("event: ", 1)[1].split("\n", 1)[0], json.loads(body.split("data: ", 1)[1].split("\n", 1)[0])["error"]
    else:
        event, message = server.call(api, data)
    assert event == "error" and isinstance(message, str), (event, message)
    for s in says:
        assert s in message, message
    assert len(message) < 600, message[:700]  # a long value is cut


def test_the_server_logged_no_traceback_for_any_of_them(server):
    log = server.text()
    assert "Traceback" not in log, log[log.index("Traceback") - 200 :][:3000]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
NAMES = ["The image", "The caption", "The method", "The layer", "Heads", "show_boxes", "The model"]


@settings(max_examples=40, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(at=st.integers(0, 6), value=JSON)
def test_any_json_value_in_any_position_gets_a_message_naming_the_input(server, image, at, value):
    data = GOOD["ground"](image)
    data[at] = value
    event, message = server.call("ground", data)
    assert event in ("complete", "error")
    if event == "error":
        assert isinstance(message, str) and message.strip(), message  # never null
        if value is not None and not isinstance(value, (str, dict) if at in (0, 1) else bool if at == 5 else str):
            assert NAMES[at] in message, (at, value, message)


def test_sigterm_stops_the_server_and_leaves_nothing_behind(server, image, tmp_path):
    for caption in (CAPTION, "a blue square", "一个红色的圆"):  # output pictures in gradio's cache
        assert server.call("ground", [image, caption, "attention", 1, "mean", True, None])[0] == "complete"
    exports = server.tmpdir / f"mmattn-exports-{server.proc.pid}"
    exports.mkdir(exist_ok=True)
    (exports / "grounding-0123.json").write_text("{}")  # a download made by the page
    assert any(p.is_file() for p in server.temp.rglob("*"))
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.text()[-2000:]
    left = sorted(str(p.relative_to(server.temp)) for p in server.temp.rglob("*"))
    assert left == [], left[:20]
    assert not exports.exists()
    assert "Traceback" not in server.text()
