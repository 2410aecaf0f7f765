"""The page's logic without a server: mmattn.demo's handlers on a real model (the shipped one,
or a tiny random one), each output by name, errors in the page's language."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from app_fixtures import model_dir, scene
from PIL import Image

from mmattn.backends import catalog
from mmattn.demo import events
from mmattn.demo.errors import UserError
from mmattn.demo.examples import FIRST_CAPTION
from mmattn.demo.handlers import SKIP, Demo, ordered
from mmattn.demo.pool import LoadedModel, ModelPool
from mmattn.teach import recompute, views

CAPTION = "a red circle left of a blue square"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def demo() -> Demo:
    return Demo(ModelPool(LoadedModel.load(catalog.describe(str(model_dir()))), []))


@pytest.fixture(scope="module")
def q(demo):
    return demo.ask(scene(160, 120), CAPTION)


def test_every_handler_declares_its_outputs_and_returns_only_those(demo, q):
    results = {
        demo.ground: demo.ground(q),
        demo.redraw: demo.redraw(q, "attention", None, "mean", True, ["1:red"]),
        demo.words_at: demo.words_at(q, 10, 10),
        demo.heads: demo.heads(q, "red"),
        demo.steps: demo.steps(q, "red", None, 0, "text_to_image", "scores", 1.0),
        demo.step_figures: demo.step_figures(q, "red", None, 0, "text_to_image", "weights", 2.0),
        demo.positions: demo.positions(q, 16, 16, "0, 3", 1, 1),
        demo.fill_tabs: demo.fill_tabs(q, None, 0, "text_to_image", "scores", 1.0, 16, 16, "", "steps"),
    }
    for fn, out in results.items():
        assert set(out) == set(fn.outputs), fn.__name__
        assert len(ordered(out, fn.outputs)) == len(fn.outputs)
    first = set(demo.first("en"))  # the step figures are drawn when their tab is opened
    assert first <= set(demo.first_outputs()) and set(demo.first_outputs()) - first == {"steps_plot", "steps_sentence", "scale_plot"}


def test_ground_exports_the_maps(demo, q):
    out = demo.ground(q)
    exported = json.loads(Path(out["ground_export"]).read_text(encoding="utf-8"))
    assert exported["words"] == out["data"]["words"] and len(exported["patch_maps"]) == len(exported["words"])
    assert out["pick"]["choices"] == views.labels(out["data"]["words"]) and out["question"] is q


def test_click_maps_display_pixels_to_patches(demo, q):
    """A click in the shown (resized) picture lands on the right patch of the model's grid."""
    src = scene(160, 120)
    view = views.view_size(q.work.size)
    gh, gw = recompute.model_grid(demo.model(q).grounder, src)
    for r, c in ((0, 0), (gh - 1, gw - 1), (gh // 2, gw // 3)):
        x, y = int((c + 0.5) * view[0] / gw), int((r + 0.5) * view[1] / gh)
        out = demo.click(q, [x, y])
        assert "not words" in out["click_other"] and set(out["click_words"]) == set(views.labels(demo.trace(q).words))
        assert out["click_data"]["patch"] == [r, c]
        assert out["click_img"].size == view and 0 <= out["x_in"] < src.width and 0 <= out["y_in"] < src.height
    # a click outside the picture says so, and changes nothing
    run = events.keep_on_error(demo.click, demo.click.outputs)
    *outputs, status = run(q, [view[0] + 50, 10])
    assert "outside the picture" in status and all(o is SKIP for o in outputs)


def test_page_errors_keep_the_previous_result_and_speak_the_page_language(demo):
    run = events.keep_on_error(lambda img, cap, lang: demo.ground(demo.ask(img, cap, None, lang)), Demo.ground.outputs)
    *outputs, status = run(scene(160, 120), "   ", "en")
    assert "caption is empty" in status and all(o is SKIP for o in outputs)
    *outputs, status = run(scene(160, 120), "   ", "zh")
    assert "描述是空的" in status and all(o is SKIP for o in outputs)
    *outputs, status = run(None, CAPTION, "zh")
    assert CJK.search(status) and "image" not in status.lower()
    with pytest.raises(UserError, match="Press Ground first") as e:  # no question yet: no page language either
        demo.heads(None, "red")
    assert e.value.title
    *outputs, status = events.keep_on_error(demo.positions_off, demo.positions_off.outputs)(None)
    assert "Press Ground first" in status


def test_positions_off_runs_a_copy_of_the_model(demo, q):
    demo.trace(q)
    g = demo.model(q).grounder
    before = g.forward_passes
    out = demo.positions_off(q)
    assert isinstance(out["pos_off_img"], Image.Image) and "Without positions" in out["pos_off_md"]
    assert g.forward_passes == before  # a copy of the model ran, this one did not


def test_tabs_after_ground_start_on_a_content_word_and_fill_image_to_text(demo):
    """After Ground, Image -> text shows the patch where the chosen word looks most (not an
    empty chart at x = y = 0), and the per-word tabs start on a content word, not "the"."""
    qq = demo.ask(scene(160, 120), "the red circle left of the blue square")
    out = demo.fill_tabs(qq, None, 0, "text_to_image", "scores", 1.0, 16, 16, "")
    word = out["heads_word"]["value"].split(":", 1)[1]
    assert word not in views.FUNCTION_WORDS and out["steps_word"]["value"] == out["heads_word"]["value"]
    assert out["click_words"] and abs(sum(out["click_words"].values()) + out["click_data"]["other_tokens"] - 1) < 1e-4
    assert (out["x_in"], out["y_in"]) != (0, 0) and out["click_img"] is not None
    assert out["pos_off_md"] and out["pos_off_img"] is None  # the experiment says how to run it


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_opens_on_a_grounded_relational_example(demo, lang):
    out = demo.first(lang)
    caption = out["in_txt"]["value"]
    assert caption == FIRST_CAPTION[lang] and out["lang"] == lang
    assert out["data"]["words"] and any(out["data"]["grounded"])  # grounded: words found in the picture
    assert "not in the model's vocabulary" not in out["notice"] and "不在模型的词汇表" not in out["notice"]  # it knows every word
    assert out["click_words"] and out["heads_t2i"] is not None and out["steps_gal"] and out["grid_img"] is not None
    if lang == "zh":
        for name in ("model_info", "world_md", "notice", "steps_md", "click_other", "legend"):
            assert CJK.search(str(out[name])), name
        assert out["in_img"]["label"] == "图像" and all(CJK.search(label) for label, _ in out["method"]["choices"])


def test_user_errors_name_the_bad_value_in_both_languages(demo):
    for lang, words in (("en", "whole number"), ("zh", "整数")):
        with pytest.raises(UserError, match=words) as e:
            demo.steps(demo.ask(scene(160, 120), CAPTION, None, lang), "red", "x9", 0, "text_to_image")
        assert "x9" in e.value.message
    with pytest.raises(UserError, match="no such model"):
        demo.pool.get("no such model")


def test_a_photo_gets_no_verdict_and_every_tab_says_so(demo):
    data = pytest.importorskip("skimage.data")
    qq = demo.ask(Image.fromarray(data.chelsea()), "a small orange circle")
    if not demo.trace(qq).out_of_world:
        pytest.skip("this model does not check its world")
    out = demo.ground(qq)
    assert list(out["match"]) == ["no verdict: this image is outside the model's world"]  # no "it does not 100%"
    assert out["banner"].startswith("⚠️") and "shapes world" in out["banner"]  # above every tab
    assert "–" in {row[3] for row in out["table"].values.tolist()}  # no probabilities either
    assert "shapes world" in demo.positions_off(qq)["pos_off_md"] and "Match" not in demo.positions_off(qq)["pos_off_md"]


def test_a_views_numbers_come_with_their_download_file(demo, q):
    """The event that shows a view's JSON writes its download file too (no event per button)."""
    names = events.with_downloads(demo.fill_tabs.outputs)
    assert {"heads_export", "steps_export", "pos_export"} <= set(names)
    out = dict(zip([*names, "status"], events.keep_on_error(demo.fill_tabs, names)(q, 1, 0, "text_to_image", "scores", 1.0, 16, 64, "")))
    for nums, (button, stem) in events.DOWNLOADS.items():
        assert Path(out[button]).name.startswith(stem) and json.loads(Path(out[button]).read_text(encoding="utf-8")) == out[nums]
    names = events.with_downloads(demo.heads.outputs)  # a view that leaves the others as they are: their buttons too
    out = dict(zip([*names, "status"], events.keep_on_error(demo.heads, names)(q, None)))
    assert set(names) - set(demo.heads.outputs) == {"heads_export"} and Path(out["heads_export"]).is_file()
    assert events.add_downloads({"steps_data": SKIP}) == {"steps_data": SKIP}  # left as it is: no new file
