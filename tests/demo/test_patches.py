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
    with pytest.raises(gr.Error, match=r"x must be a number \(got 'abc'\)"):
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
    from patches import malloc

    malloc.install()
    malloc.give_back()  # no error, on glibc or not
