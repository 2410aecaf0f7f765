"""The workarounds in patches/: each still needed by the pinned dependency (these tests fail
once upstream fixes the behaviour, so the workaround can go), and each doing what it says."""

from __future__ import annotations

import base64
import inspect
import io
import os

import numpy as np
import pytest
from app_fixtures import free_port
from PIL import Image

gr = pytest.importorskip("gradio")


# ---- upstream still needs them ------------------------------------------------------------------
def test_upstream_gradio_still_rewrites_its_stubs_at_import():
    from gradio import component_meta

    assert "create_or_modify_pyi(" in inspect.getsource(component_meta.ComponentMeta.__new__)


def test_upstream_gradio_cache_writes_are_still_not_atomic():
    from patches import gradio_cache

    src = inspect.getsource(gradio_cache.ORIGINAL)
    assert "os.replace" not in src and "tempfile" not in src


def test_upstream_gradio_still_builds_every_blocks_config_for_a_new_session():
    from patches import gradio_sessions

    assert "config_for_block" in inspect.getsource(gradio_sessions.ORIGINAL_INIT)


def _small_page():
    with gr.Blocks() as demo:
        box = gr.Textbox("hello", label="caption")
        out = gr.Image(label="picture")
        state = gr.State(3)
        gr.Button("go").click(lambda s: s, [box], [box])
    return demo, box, out, state


def test_a_lazy_session_has_the_attributes_and_configs_of_gradios_own():
    from gradio.state_holder import SessionState

    from patches import gradio_sessions

    demo, box, out, state = _small_page()
    eager = object.__new__(SessionState)
    gradio_sessions.ORIGINAL_INIT(eager, demo)
    lazy = object.__new__(SessionState)
    gradio_sessions._lazy_init(lazy, demo)
    assert set(vars(lazy)) == set(vars(eager))
    assert isinstance(lazy.config_values, gradio_sessions.LazyConfigs) and dict.__len__(lazy.config_values) == 0  # nothing built yet
    assert box._id in lazy.config_values and lazy.config_values[box._id] == eager.config_values[box._id]  # built when read
    assert dict.__len__(lazy.config_values) == 1
    assert list(lazy.components) == list(eager.components)  # a deep link reads them all
    assert dict(lazy.config_values.items()) == dict(eager.config_values.items())
    assert 10**9 not in lazy.config_values and lazy.config_values.get(10**9) is None
    with pytest.raises(KeyError):
        lazy.config_values[10**9]  # noqa: B018
    lazy._update_value_in_config(out._id, None)  # as gradio sets a value: its entry built, then changed
    assert lazy.config_values[out._id]["props"]["value"] is None
    assert lazy[state._id] == 3


def test_upstream_gradio_still_decodes_data_url_images_without_a_size_check():
    from gradio import image_utils
    from gradio.data_classes import ImageData

    buf = io.BytesIO()
    Image.new("1", (4000, 3000)).save(buf, "PNG")  # 12 megapixels in a few KB
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    im = image_utils.preprocess_image(ImageData(url=url), cache_dir="/tmp", format="png", image_mode="RGB", type="pil")
    assert im.size == (4000, 3000)  # decoded in full, whatever its size


@pytest.fixture(scope="module")
def bare_app():
    """A plain gradio app (no workarounds): a number in, a number out."""
    with gr.Blocks() as demo:
        x, out = gr.Number(minimum=0), gr.Number()
        gr.Button().click(lambda v, w: v, [x, gr.Number(value=1)], out, api_name="echo")
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port())
    yield url
    demo.close()


def test_upstream_gradio_still_hides_bad_input_errors(bare_app):
    import httpx

    event = httpx.post(f"{bare_app}gradio_api/call/echo", json={"data": ["abc", 1]}, timeout=30).json()["event_id"]
    body = httpx.get(f"{bare_app}gradio_api/call/echo/{event}", timeout=30).text
    assert '"error": null' in body  # no word of which input or why
    event = httpx.post(f"{bare_app}gradio_api/call/echo", json={"data": [1]}, timeout=30).json()["event_id"]
    body = httpx.get(f"{bare_app}gradio_api/call/echo/{event}", timeout=30).text
    assert '"error": null' in body  # a missing input: the same


def test_upstream_gradio_still_coerces_wrong_types():
    assert gr.Textbox().preprocess(12345) == "12345"  # a number as a caption
    assert gr.Checkbox().preprocess("no") == "no"  # passed on: the handler's bool("no") is True


def test_upstream_gradio_still_leaves_the_folders_of_expired_files(tmp_path):
    from patches import gradio_cleanup

    blocks, files = _blocks_with_cache_files(tmp_path)
    gradio_cleanup.ORIGINAL(blocks, 0)
    assert not any(f.exists() for f in files) and all(f.parent.is_dir() for f in files)


def _blocks_with_cache_files(root, n: int = 3):
    """Something shaped like gr.Blocks for gradio's clean-up: n cache files, one folder each."""
    from types import SimpleNamespace

    files = []
    for i in range(n):
        f = root / f"{i:064x}" / "image.jpeg"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"x")
        files.append(f)
    return SimpleNamespace(blocks={}, temp_file_sets=[{str(f) for f in files}]), files


# ---- they do what they say ---------------------------------------------------------------------------
def test_atomic_cache_writes_whole_files_and_skips_existing(tmp_path):
    from patches import gradio_cache

    im = Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3))
    a = gradio_cache.save_pil_to_cache(im, str(tmp_path), format="png")
    mtime = os.stat(a).st_mtime_ns
    b = gradio_cache.save_pil_to_cache(im, str(tmp_path), format="png")
    assert a == b and os.stat(b).st_mtime_ns == mtime  # not rewritten
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(im))
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary file left


def test_guarded_inputs_name_what_is_wrong():
    from patches import gradio_inputs

    n = gradio_inputs.guard(gr.Number(minimum=0), "x", "a number")
    assert n.preprocess(3.5) == 3.5
    with pytest.raises(gr.Error, match=r'x must be a number \(got "abc"\)'):
        n.preprocess("abc")


def test_guarded_uploads_check_the_header_of_a_data_url():
    from gradio.data_classes import ImageData

    from patches import gradio_uploads

    seen = []

    def check(w, h):
        seen.append((w, h))
        if w * h > 1_000_000:
            raise gr.Error("too big")

    comp = gradio_uploads.guard(gr.Image(type="pil"), check)
    buf = io.BytesIO()
    Image.new("1", (4000, 3000)).save(buf, "PNG")
    with pytest.raises(gr.Error, match="too big"):
        comp.preprocess(ImageData(url="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()))
    assert seen == [(4000, 3000)]
    with pytest.raises(gr.Error, match="not valid base64|Could not read|empty"):
        comp.preprocess(ImageData(url="data:image/png;base64,@@@@"))


def test_malloc_tuning_is_optional(monkeypatch):
    """MMATTN_MALLOC_TUNING=0 leaves the allocator alone (no libc call at all); otherwise, on
    glibc, install() caps the arenas once and give_back() trims through the same libc."""
    from patches import malloc

    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append(("mallopt", option, value))

        def malloc_trim(self, pad):
            calls.append(("malloc_trim", pad))

    monkeypatch.setattr(malloc, "_LIBC", None)
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setenv("MMATTN_MALLOC_TUNING", "0")
    malloc.install()
    malloc.give_back()
    assert calls == [] and malloc._LIBC is None
    monkeypatch.setenv("MMATTN_MALLOC_TUNING", "1")
    malloc.install()
    malloc.install()  # once only
    malloc.give_back()
    assert calls == [("mallopt", malloc.M_ARENA_MAX, 2), ("malloc_trim", 0)]
    monkeypatch.setattr(malloc, "_LIBC", None)
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError("not glibc")))
    malloc.install()
    malloc.give_back()  # off glibc: nothing, and no error
    assert malloc._LIBC is None and len(calls) == 2


def test_expired_cache_files_go_with_their_folders_and_old_downloads_too(tmp_path):
    from patches import gradio_cleanup

    blocks, files = _blocks_with_cache_files(tmp_path / "cache")
    exports = tmp_path / "exports"
    exports.mkdir()
    old, new = exports / "old.json", exports / "new.json"
    old.write_text("{}")
    new.write_text("{}")
    os.utime(old, (1, 1))
    gradio_cleanup.install(exports, age=600)
    try:
        gradio_cleanup.delete_files_created_by_app(blocks, 0)
    finally:
        gradio_cleanup._EXPORTS.remove((exports, 600))
    assert not any(f.parent.exists() for f in files) and (tmp_path / "cache").is_dir()
    assert not old.exists() and new.exists()


def test_checked_inputs_name_the_input_and_show_a_cut_value():
    from patches import gradio_inputs

    radio = gr.Radio([("0", 0), ("1", 1)])
    assert gradio_inputs.problem(radio, 1, "The layer") is None
    assert gradio_inputs.problem(radio, 1.0, "The layer") is None
    assert gradio_inputs.problem(radio, True, "The layer") == "The layer true is not in the list of choices: 0, 1."
    assert gradio_inputs.problem(gr.Textbox(), "x" * 1000, "The caption") is None
    msg = gradio_inputs.problem(gr.Checkbox(), "y" * 1000, "show_boxes")
    assert msg.startswith('show_boxes must be true or false (got "yyy') and "(1,000 characters)" in msg and len(msg) < 150
    assert gradio_inputs.problem(gr.Slider(2, 128), 1e9, "n") == "n must be a number 2..128 (got 1000000000.0)."
    assert gradio_inputs.problem(gr.Number(minimum=0), float("nan"), "x") == "x must be a number >= 0 (got NaN)."
    assert "must be an uploaded file" in gradio_inputs.problem(gr.Image(), "/etc/passwd", "The image")
    assert gradio_inputs.problem(gr.Image(), {"path": "/tmp/a.png"}, "The image") is None
