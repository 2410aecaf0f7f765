"""The Gradio app, in-process, driven through gradio_client: every public endpoint, every bad
input (a clear AppError, then the server still answers), and identical concurrent requests
(gradio's output-cache race)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import ROOT, free_port, load_app, model_dir, scene, shipped_model_ready, write_scene
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

CAPTION = "a red circle left of a blue square"
HTTPX = {"timeout": 120}  # a busy 2-core machine can take longer than httpx's default 5 s


@pytest.fixture(scope="module")
def app():
    return load_app()


@pytest.fixture(scope="module")
def url(app):
    _, url, _ = app.demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
                                **app.LAUNCH_KWARGS)  # fmt: skip
    yield url
    app.demo.close()


@pytest.fixture(scope="module")
def client(url):
    """Files are not downloaded (faster): outputs are FileData dicts whose ``path`` is on this
    machine, since the server runs in-process. The concurrency test downloads them."""
    return Client(url, verbose=False, download_files=False, httpx_kwargs=HTTPX)


def _path(f) -> str:
    return f["path"] if isinstance(f, dict) else f


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    return write_scene(tmp_path_factory.mktemp("img") / "scene.png", 160, 120)


def _ok(client, image):
    """A good request works (the server survived whatever came before)."""
    picture, table, match, notice, data = client.predict(handle_file(image), "a blue square", api_name="/ground")
    assert data["words"] and len(table["data"]) == len(data["words"]) and Path(_path(picture)).is_file()


# ---- the public API --------------------------------------------------------------------------
def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/ground", "/grounding", "/words_at", "/heads", "/steps", "/positions"} <= set(api)
    params = {k: [p["parameter_name"] for p in v["parameters"]] for k, v in api.items()}
    assert params["/ground"][:2] == ["image", "caption"]
    assert params["/grounding"] == ["image", "caption", "method", "layer", "heads", "model"]
    assert params["/words_at"][:4] == ["image", "caption", "x", "y"]
    # UI-only events (clicks, refreshes) are not public
    assert all(name.startswith(("/ground", "/words_at", "/heads", "/steps", "/positions")) for name in api)


def test_ground(app, client, image):
    picture, table, match, notice, data = client.predict(handle_file(image), CAPTION, api_name="/ground")
    words = data["words"]
    assert words == app.GROUNDER.ground(Image.open(image), CAPTION).words
    shown = Image.open(_path(picture))
    assert shown.height >= app.views.VIEW_HEIGHT  # never shown larger than its pixels
    assert [row[1] for row in table["data"]] == words
    assert 0 <= data["match_score"] <= 1 and len(data["grounded"]) == len(words)
    assert data["image_size"] == [160, 120] and data["model_input_size"] == [128, 96]
    assert data["colours"] == app.views.word_colours(words)
    assert {c["label"] for c in match["confidences"]} == {"the caption describes the image", "it does not"}
    assert isinstance(notice, str) and notice
    json.dumps(data)


def test_grounding_gives_the_numbers_of_ground_without_a_picture(app, client, image):
    *_, data = client.predict(handle_file(image), CAPTION, api_name="/ground")
    numbers = client.predict(handle_file(image), CAPTION, api_name="/grounding")
    assert numbers == data  # the same JSON, one forward pass
    r = app.GROUNDER.ground(Image.open(image), CAPTION)
    assert numbers["words"] == r.words and numbers["grounded"] == r.grounded and numbers["image_size"] == [160, 120]
    assert abs(numbers["match_score"] - r.match_score) < 1e-6
    *_, data = client.predict(handle_file(image), CAPTION, "attention", 0, "max", False, api_name="/ground")
    assert client.predict(handle_file(image), CAPTION, "attention", 0, "max", api_name="/grounding") == data
    with pytest.raises(Exception, match="layer"):
        client.predict(handle_file(image), CAPTION, "attention", 7, api_name="/grounding")


def test_one_question_one_forward_pass(app, client, tmp_path):
    """Every endpoint asked about the same image and caption reads one trace: the model runs once."""
    image = write_scene(tmp_path / "once.png", 200, 140)
    caption = "a blue square right of a red circle"
    before = app.GROUNDER.forward_passes
    client.predict(handle_file(image), caption, api_name="/ground")
    client.predict(handle_file(image), caption, 20, 70, api_name="/words_at")
    client.predict(handle_file(image), caption, "square", api_name="/heads")
    for direction in ("text_to_image", "image_to_text"):
        client.predict(handle_file(image), caption, "red", 0, 1, direction, api_name="/steps")
    client.predict(handle_file(image), caption, "attention", 0, "max", False, api_name="/ground")
    client.predict(handle_file(image), caption, "rollout", api_name="/ground")
    client.predict(handle_file(image), caption, api_name="/grounding")
    assert app.GROUNDER.forward_passes - before == 1
    client.predict(handle_file(image), caption, "gradcam", api_name="/ground")  # Grad-CAM: one forward + backward pass more
    client.predict(handle_file(image), caption, "gradcam", 0, api_name="/ground")
    assert app.GROUNDER.forward_passes - before == 2


def test_notice_explains_the_relation_check(client, tmp_path):
    """A relational caption gets, in words, where the maps put its two objects: "as the caption
    says" for the true relation, "but the caption says" for its swap; a one-object caption gets none."""
    from mmattn.scenes import TRAIN, make_sample

    seed = 91_000
    while not (s := make_sample(seed, 160, 120, TRAIN, lang="en")).caption.relation:
        seed += 1
    path = tmp_path / "relation.png"
    s.image.save(path)
    swap = next(n for n in s.negatives if n.neg_kind == "relation")
    *_, notice, data = client.predict(handle_file(str(path)), s.caption.text, api_name="/ground")
    assert "the maps put the" in notice and "as the caption says" in notice and data["relation_score"] > 1, notice
    *_, notice, data = client.predict(handle_file(str(path)), swap.text, api_name="/ground")
    assert "but the caption says" in notice and data["relation_score"] < -1, notice
    *_, notice, _ = client.predict(handle_file(str(path)), "a red circle", api_name="/ground")
    assert "Relation" not in notice and "logit" not in notice


def test_ground_settings_and_big_image(app, client, tmp_path):
    big = write_scene(tmp_path / "big.png", 1200, 800)
    for method, heads in (("rollout", "max"), ("gradcam", "0")):
        _, _, _, _, data = client.predict(handle_file(big), CAPTION, method, 0, heads, True, api_name="/ground")
        assert data["method"] == method and data["layer"] == 0 and data["heads"] == (int(heads) if heads.isdigit() else heads)
        assert data["image_size"] == [1200, 800]  # boxes are in the input image's pixels
        for b in data["boxes"]:
            assert b is None or (0 <= b[0] < b[2] <= 1200 and 0 <= b[1] < b[3] <= 800)


def test_words_at_matches_the_library(app, client, image):
    label, data = client.predict(handle_file(image), CAPTION, 30, 60, api_name="/words_at")
    expected = app.GROUNDER.ground(Image.open(image), CAPTION).words_at(30, 60)
    got = [(d["word"], d["weight"]) for d in data["words"]]
    assert [w for w, _ in got] == [w for w, _ in expected]
    assert np.allclose([v for _, v in got], [v for _, v in expected], atol=1e-5)
    assert abs(sum(v for _, v in got) + data["other_tokens"] - 1) < 1e-4
    assert {c["label"] for c in label["confidences"]} >= {f"{i}:{w}" for i, (w, _) in enumerate(expected)}


def test_heads_steps_positions(app, client, image):
    t2i, i2t, info = client.predict(handle_file(image), CAPTION, "2:circle", api_name="/heads")
    assert info["word"] == "circle" and Path(_path(t2i)).is_file() and Path(_path(i2t)).is_file()
    L, H = app.L, app.H
    assert np.asarray(info["text_to_image"]).shape[:2] == (L, H)

    stages, md, heads, summary = client.predict(handle_file(image), CAPTION, "red", L - 1, H - 1, "text_to_image", api_name="/steps")
    assert len(stages) == 3 and len(heads) == H + 1  # the word on the picture at S, S/√d and softmax
    assert summary["max_weight_error"] < 1e-5 and summary["max_output_error"] < 1e-4
    # image -> text in the last layer: weights only, so no V stage, and the page says why
    stages3, md3, _, summary3 = client.predict(handle_file(image), CAPTION, "red", L - 1, 0, "image_to_text", api_name="/steps")
    if not app.GROUNDER.model.config.update_image_last:
        assert len(stages3) == 3 and "No V here" in md3 and summary3["max_output_error"] is None
    assert summary["shapes"]["scores"] == [len(summary["tokens"]), summary["grid"][0] * summary["grid"][1]]
    assert "Q·Kᵀ" in md
    _, _, _, s2 = client.predict(handle_file(image), CAPTION, "red", 0, 0, "image_to_text", api_name="/steps")
    assert s2["shapes"]["q"][0] == s2["grid"][0] * s2["grid"][1]

    pe, sim, dims, grid, pinfo = client.predict(handle_file(image), 24, 16, "0, 1, 5", 1, 2, api_name="/positions")
    assert "plot" in json.dumps(pe)[:20000] and pinfo["grid"]  # an interactive figure
    assert pinfo["n"] == 24 and pinfo["dim"] == 16 and pinfo["positions"] == [0, 1, 5]
    assert pinfo["diagonal_spread"] < 1e-4 and pinfo["patch"] == [1, 2]
    sim_grid = np.asarray(pinfo["grid_similarity"])
    assert sim_grid.shape == tuple(pinfo["grid"]) and abs(sim_grid[1, 2] - 1) < 1e-5
    # without an image: the model's default (square) grid
    *_, pinfo = client.predict(None, 8, 8, "", 0, 0, api_name="/positions")
    assert pinfo["grid"][0] == pinfo["grid"][1]


def test_html_caption_is_plain_text(client, image):
    caption = 'red <b>circle</b> <img src=x onerror="alert(1)"><script>alert(2)</script>'
    _, table, _, notice, data = client.predict(handle_file(image), caption, api_name="/ground")
    text = json.dumps([r[1] for r in table["data"]] + data["words"])
    assert "<" not in text and ">" not in text
    assert "red" in data["words"] and "circle" in data["words"]


def test_long_caption_truncated_with_notice(client, image):
    caption = "a red circle " + "xylophone " * 8  # unknown words fall apart into letter pieces: > 30 tokens
    *_, notice, data = client.predict(handle_file(image), caption, api_name="/ground")
    assert data["truncated"] and "cut" in notice
    assert data["words"][:3] == ["a", "red", "circle"] and "xylophone" in notice


# ---- bad inputs: clear messages, and the server keeps serving ----------------------------------------------
def _bad_files(tmp: Path) -> dict[str, tuple[str, str]]:
    (tmp / "text.png").write_text("this is not an image\n")
    (tmp / "empty.png").write_bytes(b"")
    png = tmp / "ok.png"
    scene(400, 300).save(png)
    (tmp / "truncated.png").write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    Image.new("1", (5000, 4000)).save(tmp / "huge.png")  # 20 MP, a few KB
    return {
        "text": (str(tmp / "text.png"), "Could not read the uploaded file as an image"),
        "empty": (str(tmp / "empty.png"), "empty (0 bytes)"),
        "truncated": (str(tmp / "truncated.png"), "Could not read the uploaded file as an image"),
        "huge": (str(tmp / "huge.png"), "megapixels"),
    }


def test_bad_files(client, image, tmp_path):
    for _name, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(handle_file(path), CAPTION, api_name="/ground")
        _ok(client, image)


@pytest.mark.parametrize(
    ("args", "api_name", "message"),
    [
        ((None, CAPTION), "/ground", "No image"),
        (("IMG", ""), "/ground", "caption is empty"),
        (("IMG", "   \n "), "/ground", "caption is empty"),
        (("IMG", "?!. ,"), "/ground", "no words"),
        (("IMG", "x" * 20_000), "/ground", "20,000 characters"),
        (("IMG", CAPTION, 5000, 3), "/words_at", "outside the 160×120 image"),
        ((None, CAPTION, 1, 1), "/words_at", "No image"),
        (("IMG", CAPTION, "zebra"), "/heads", "not one of the caption's words"),
        (("IMG", "", "red"), "/heads", "caption is empty"),
        (("IMG", CAPTION, "99"), "/steps", "out of range"),
        ((None, 8, 8, "0, x"), "/positions", "whole numbers"),
        ((None, 8, 8, "0, 50"), "/positions", "outside 0..7"),
        ((None, 8, 8, "", 40, 0), "/positions", "outside the"),
    ],
)
def test_bad_inputs(client, image, args, api_name, message):
    args = tuple(handle_file(image) if a == "IMG" else a for a in args)
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(*args, api_name=api_name)
    _ok(client, image)


def test_bad_controls_are_refused(client, image):
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(handle_file(image), CAPTION, "magic", api_name="/ground")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(handle_file(image), CAPTION, "attention", 99, api_name="/ground")
    _ok(client, image)


# ---- hostile inputs: clear errors in well under a second, and the server keeps serving ---------------------------
@pytest.mark.parametrize("side", [1, 2, 5, 8, 16])
def test_tiny_images(client, tmp_path, side):
    path = tmp_path / f"tiny{side}.png"
    Image.new("RGB", (side, side), (220, 30, 30)).save(path)
    picture, table, _, _, data = client.predict(handle_file(str(path)), "a red circle", api_name="/ground")
    assert data["image_size"] == [side, side] and Path(_path(picture)).is_file()
    for b in data["boxes"]:
        assert b is None or (0 <= b[0] < b[2] <= side and 0 <= b[1] < b[3] <= side)


def test_strips_and_data_url_bombs_are_refused_before_decoding(url, client, image, tmp_path):
    import base64

    import httpx

    strip = tmp_path / "strip.png"
    Image.new("1", (100_000, 1)).save(strip)  # a few hundred bytes
    for api_name, args in (("/ground", (CAPTION,)), ("/positions", (8, 8, "", 0, 0)), ("/heads", (CAPTION, "red"))):
        with pytest.raises(AppError, match="more than 16 times"):  # the header's size, read before any pixel is decoded
            client.predict(handle_file(str(strip)), *args, api_name=api_name)
    # a 79-megapixel PNG sent as a data: URL (max_file_size does not apply to it)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 7_900)).save(bomb, optimize=True)
    payload = {"url": "data:image/png;base64," + base64.b64encode(bomb.read_bytes()).decode(), "meta": {"_type": "gradio.FileData"}}
    r = httpx.post(f"{url}gradio_api/call/ground", json={"data": [payload, CAPTION, "attention", 1, "mean", True, None]}, timeout=60)
    event = r.json()["event_id"]
    body = httpx.get(f"{url}gradio_api/call/ground/{event}", timeout=60).text
    assert "megapixels" in body, body[:500]  # refused from the header: decoding it would have given an answer
    _ok(client, image)


def test_words_at_takes_any_point_inside(client, image):
    label, data = client.predict(handle_file(image), CAPTION, 159.96, 119.5, api_name="/words_at")  # not rounded to 160
    assert data["patch"] == [data["grid"][0] - 1, data["grid"][1] - 1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["IMG", CAPTION, "abc", 3, "attention", 1, "mean", None], "x must be a number"),
        (["IMG", CAPTION, 3, [1, 2], "attention", 1, "mean", None], "y must be a number"),
        (["IMG", None, 3, 3, "attention", 1, "mean", None], "caption is empty"),
        (["IMG", CAPTION, 3, 3, "magic", 1, "mean", None], "magic"),
        (["IMG", CAPTION, 3, 3, "attention", 1, "mean", "no such model"], "not in the list of choices"),
        (["IMG", CAPTION, 3, 3], "send method, layer, heads, model too"),
    ],
)
def test_raw_http_wrong_types_get_clear_messages(url, client, image, data, message):
    """Raw HTTP, as a script would send it: a wrong type is named, not a generic error."""
    import httpx

    up = httpx.post(f"{url}gradio_api/upload", files={"files": open(image, "rb")}, timeout=30).json()[0]
    file = {"path": up, "meta": {"_type": "gradio.FileData"}, "orig_name": "scene.png"}
    data = [file if d == "IMG" else d for d in data]
    event = httpx.post(f"{url}gradio_api/call/words_at", json={"data": data}, timeout=30).json()["event_id"]
    body = httpx.get(f"{url}gradio_api/call/words_at/{event}", timeout=60).text
    assert "event: error" in body and message in body and "null" not in body.split("event: error", 1)[1][:20], body[:400]
    _ok(client, image)  # and the server still answers


# ---- identical concurrent requests (gradio's output-cache race) -------------------------------------------------
def test_identical_concurrent_requests(app, url, image):
    from gradio import processing_utils

    assert getattr(processing_utils.save_pil_to_cache, "_mmattn_atomic", False)
    n_users, per_user = 8, 2
    clients = [Client(url, verbose=False, httpx_kwargs=HTTPX) for _ in range(n_users)]
    errors, results = [], []

    def user(c):
        for _ in range(per_user):
            try:
                picture, *_ = c.predict(handle_file(image), "a red circle", api_name="/ground")
                Image.open(picture).load()  # the downloaded file is complete
                results.append(picture)
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=user, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(results) == n_users * per_user


def test_app_module_settings(app):
    assert Image.MAX_IMAGE_PIXELS <= 40_000_000
    assert app.LAUNCH_KWARGS["max_file_size"] == "10mb" and app.LAUNCH_KWARGS["show_error"] is False
    assert app.LAUNCH_KWARGS["state_session_capacity"] <= 1000  # every raw API call is a session: memory stays bounded
    assert app.CACHE.size <= 64
    import types

    modules = {v.__name__.split(".")[0] for v in vars(app).values() if isinstance(v, types.ModuleType)}
    assert "torch" not in modules and "numpy" not in modules  # tensor code lives in mmattn, not in the page
    assert len(Path(app.__file__).read_text(encoding="utf-8").splitlines()) <= 300  # layout and wiring: the logic is mmattn.demo
    examples = app.examples.load_examples()
    for path, caption in examples:
        assert Path(path).is_file() and caption.strip()


def test_app_import_skips_gradio_stub_rewrite():
    """Imported first thing in a fresh process (as `python app.py` does), the app turns off
    gradio's per-import rewrite of its .pyi stubs (1 s of start-up), builds the whole demo
    all the same, and writes nothing into gradio's package folder."""
    import subprocess
    import sys

    import gradio

    folder = Path(gradio.__file__).parent
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.pyi")}
    code = (
        "import sys, app, gradio.component_meta as m, gradio.blocks_events as e\n"
        "assert 'torch' in sys.modules and app.demo.fns, 'the demo was built'\n"
        "print(m.create_or_modify_pyi(None, 'X', []), e.create_or_modify_pyi(None, 'X', []))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not shipped_model_ready():
        env.setdefault("MMATTN_MODEL", str(model_dir()))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("None None")  # both names are the no-op (the real one raises on None)
    assert before and {p: p.stat().st_mtime_ns for p in folder.rglob("*.pyi")} == before


# ---- the model picker: an unavailable model never stops the page ----------------------------------------
def test_picking_an_unreachable_hub_model_says_why_in_one_line(app, client, image, monkeypatch):

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network, not in the cache
    label = "hub: openai/clip-vit-base-patch16"
    assert label in app.MODELS.choices
    out = app.D.switch_model(label)
    assert "unavailable" in out["status"] and "cache" in out["status"] and "\n" not in out["status"]
    assert out["model_pick"]["value"] == app.DEFAULT.choice.label  # back on the model that works
    _ok(client, image)


def test_a_local_clip_folder_can_be_picked(app, tmp_path):
    from mmattn.backends import catalog
    from mmattn.backends.clip.random_clip import save_random_clip

    folder = save_random_clip(tmp_path / "tiny-clip")
    choice = catalog.describe(str(folder))
    app.MODELS.choices[choice.label] = choice
    out = app.D.switch_model(choice.label)
    assert out["status"] == "" and "CLIP backend" in out["model_info"] and ("legrad", "legrad") in out["method"]["choices"]
    q = app.D.ask(scene(80, 60), "a red dog", choice.label)
    assert app.D.trace(q).model_name == "tiny-clip" and app.D.model(q).grounder.checks_world is False


def test_an_unavailable_default_model_does_not_stop_the_app():
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMATTN_MODEL": "/no/such/checkpoint", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", "import app; print(app.STARTUP_PROBLEM); print(app.GROUNDER.name)"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MMATTN_MODEL=/no/such/checkpoint is unavailable" in out.stdout and "serving the shipped model" in out.stdout
    assert "Traceback" not in out.stderr
