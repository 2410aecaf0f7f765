"""Loading a hub model without a network: one line saying what to do, within 3 s, no retries.

No test here sends anything off this machine: sockets refuse to connect, the hub's cache is a
temporary folder, and the one function that would ask the hub whether it answers
(``mmattn.io.hub._probe_hub``) is replaced by one that hangs, fails or answers as the test
needs."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time

import huggingface_hub
import huggingface_hub.constants
import pytest
from PIL import Image

from mmattn import CheckpointError, Grounder
from mmattn.backends.clip.grounder import ClipGrounder
from mmattn.backends.clip.random_clip import save_random_clip
from mmattn.io import hub as cg  # the hub's memory and its one request

HUB_ID = "openai/clip-vit-base-patch16"


@contextlib.contextmanager
def no_network(cache, *, offline: bool):
    """An empty (or given) hub cache, HF_HUB_OFFLINE as asked, no sockets, and a fresh memory
    of whether the hub answers."""
    saved = huggingface_hub.constants.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_CACHE
    connect = socket.socket.connect

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    huggingface_hub.constants.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_CACHE = offline, str(cache)
    socket.socket.connect = refuse
    cg._HUB_STATE.clear()
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_CACHE = saved
        socket.socket.connect = connect
        cg._HUB_STATE.clear()


@pytest.fixture
def no_downloads(monkeypatch):
    """hf_hub_download (which, besides the file, asks the hub for its agent registry) must not run:
    the cache is read without requests."""

    def download(*args, **kwargs):
        raise AssertionError("hf_hub_download was called")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)


def one_line_error(call) -> tuple[CheckpointError, float]:
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        call()
    seconds = time.perf_counter() - start
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # raised `from None`: no chained traceback
    return e.value, seconds


def test_offline_mode_fails_at_once_in_one_line(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setattr(cg, "_probe_hub", lambda *a: pytest.fail("HF_HUB_OFFLINE=1: the hub must not be asked"))
    with no_network(tmp_path / "cache", offline=True):
        err, seconds = one_line_error(lambda: Grounder.from_pretrained(HUB_ID))
    assert seconds < 3
    msg = str(err)
    assert "not in the Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg and "local checkpoint folder" in msg
    assert f"Grounder.from_pretrained('{HUB_ID}')" in msg  # what to run once with a network


@pytest.mark.parametrize("hub", ["hangs", "fails"])
def test_unreachable_hub_fails_within_3_s_without_retries(tmp_path, monkeypatch, no_downloads, hub):
    """No network but HF_HUB_OFFLINE unset: the hub library alone retried for 30 s."""
    probes = []

    def probe(endpoint, timeout):
        probes.append(endpoint)
        if hub == "hangs":  # e.g. a DNS lookup that never answers
            time.sleep(30)
        raise OSError("network is unreachable")

    monkeypatch.setattr(cg, "_probe_hub", probe)
    with no_network(tmp_path / "cache", offline=False):
        err, seconds = one_line_error(lambda: Grounder.from_pretrained(HUB_ID))
        assert seconds < 3 and "not in the Hugging Face cache" in str(err)
        _, again = one_line_error(lambda: ClipGrounder.from_pretrained(HUB_ID))  # remembered: no second wait
    assert again < 0.5 and len(probes) == 1


def fake_cache(cache, repo: str, folder, skip=()) -> None:
    """Lay ``folder``'s files out as the hub library caches repo ``repo`` at one commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns(*skip))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_a_cached_model_loads_while_the_hub_is_unreachable(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setattr(cg, "_probe_hub", lambda *a: False)
    fake_cache(tmp_path / "cache", "mmattn-test/tiny-clip", save_random_clip(tmp_path / "tiny-clip"))
    with no_network(tmp_path / "cache", offline=False):
        g = Grounder.from_pretrained("mmattn-test/tiny-clip")  # from the cache; no_network fails on any request
    assert isinstance(g, ClipGrounder) and g.name == "mmattn-test/tiny-clip"
    assert g.ground(Image.new("RGB", (40, 30), (200, 30, 30)), "a red dog").words == ["a", "red", "dog"]


def test_a_partly_cached_model_says_so_in_one_line(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setattr(cg, "_probe_hub", lambda *a: False)
    fake_cache(tmp_path / "cache", "mmattn-test/tiny-clip", save_random_clip(tmp_path / "tiny-clip"), skip=("model.safetensors",))
    with no_network(tmp_path / "cache", offline=False):
        err, seconds = one_line_error(lambda: Grounder.from_pretrained("mmattn-test/tiny-clip"))
    assert seconds < 3 and "only partly in the Hugging Face cache" in str(err) and "local checkpoint folder" in str(err)
