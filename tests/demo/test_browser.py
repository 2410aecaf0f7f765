"""The demo in a real headless Chromium (pytest-playwright, Debian's /usr/bin/chromium).

Uploads an image, types a caption, grounds it, visits every tab and clicks the image, and
counts the model's forward passes (one for all of it); checks what a person sees (one legend
chip per word, in the word's colour; the picture; a caption with HTML shown as text; an error
that keeps the previous result), and saves the screenshots the README and docs/ show.
"""

from __future__ import annotations

import os
import re

import pytest
from app_fixtures import ROOT, free_port, load_app, write_scene

pytest.importorskip("playwright")
expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip
SCREENSHOT = ROOT / "assets" / "screenshot.png"
SHOTS = ROOT / "docs" / "screenshots"
#: each tab, and what shows that it was filled
TABS = {"Image → text": ("i2t", "#click_img img"), "Heads & layers": ("heads", "#heads_t2i img"),
        "Step by step": ("steps", "#steps_plot .js-plotly-plot"), "Positions": ("positions", "#pe_plot .js-plotly-plot")}  # fmt: skip


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture(scope="module")
def server():
    app = load_app()
    _, url, _ = app.demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
                                **app.LAUNCH_KWARGS)  # fmt: skip
    yield app, url
    app.demo.close()


SLOW = 90_000  # ms: first render of the page on a busy machine


def _open(page, url: str):
    """The page, once it shows its first answer (an example grounded as it opens)."""
    page.goto(url, timeout=SLOW)
    page.locator("#in_img input[type=file]").wait_for(state="attached", timeout=SLOW)
    page.locator("#legend .chip").first.wait_for(timeout=SLOW)
    expect(page.locator("#out_img img")).to_be_visible(timeout=SLOW)


def _ground(page, image: str, caption: str):
    page.locator("#in_img input[type=file]").set_input_files(image)
    page.locator("#in_txt textarea").fill(caption)
    page.locator("#submit").click()


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i : i + 2], 16) for i in (0, 2, 4)))


def test_one_forward_pass_for_a_click_every_tab_and_an_image_click(server, page, tmp_path):
    app, url = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    if app.EXAMPLES:  # a scene from the shapes world makes the better screenshot
        image, caption = app.EXAMPLES[-1]
    else:
        image, caption = write_scene(tmp_path / "scene.png", 240, 160), "a red circle left of a blue square"
    words = app.recompute.read_caption(app.GROUNDER, caption).words
    _open(page, url)
    page.locator("#in_img input[type=file]").set_input_files(image)
    page.locator("#in_txt textarea").fill(caption)
    page.wait_for_timeout(300)
    before = app.GROUNDER.forward_passes
    page.locator("#submit").click()
    chips = page.locator("#legend .chip")
    expect(chips).to_have_count(len(words), timeout=60_000)
    expect(chips.first).to_contain_text(f"0:{words[0]}")
    expect(page.locator("#table")).to_contain_text(words[-1])
    # legend colour = the word's colour in the JSON (the colour drawn on the picture)
    colours = app.views.word_colours(words)
    for i in range(len(words)):
        assert chips.nth(i).evaluate("e => getComputedStyle(e).borderTopColor") == _rgb(colours[i])
    expect(page.locator("#out_img img")).to_be_visible(timeout=60_000)
    page.wait_for_timeout(500)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.screenshot(path=str(SHOTS / "ground.png"), full_page=True)

    for name, (slug, filled) in TABS.items():  # visiting a tab runs nothing: it was filled from the same trace
        page.get_by_role("tab", name=name).click()
        expect(page.locator(filled).first).to_be_visible(timeout=60_000)
        page.wait_for_timeout(400)
        if slug != "i2t":
            page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)

    # positions off: the experiment grounds the same question with a copy of the model (this one is not run)
    page.get_by_role("tab", name="Positions").click()
    page.locator("#pos_off_btn").click()
    expect(page.locator("#pos_off_md")).to_contain_text("Without positions", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "positions.png"), full_page=True)

    # image -> text: click on the object of the first word found (or the middle)
    page.get_by_role("tab", name="Image → text").click()
    img = page.locator("#click_img img")
    expect(img).to_be_visible(timeout=60_000)
    box = img.bounding_box()
    r = app.D.trace(app.D.ask(app.load_image(image), caption)).grounding()  # the page's trace, from the cache
    fx, fy = 0.5, 0.5
    b = next((b for b in r.boxes if b is not None), None)
    if b is not None:
        fx, fy = (b[0] + b[2]) / 2 / r.size[0], (b[1] + b[3]) / 2 / r.size[1]
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    chart = page.locator("#click_words")
    expect(chart).to_contain_text(re.compile(r"\d+:(" + "|".join(map(re.escape, words)) + ")"), timeout=60_000)
    expect(page.locator("#click_other")).to_contain_text("not words")
    expect(page.locator("#x_in input")).not_to_have_value("0", timeout=10_000)  # the click filled x
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "image_to_text.png"), full_page=True)
    assert app.GROUNDER.forward_passes - before == 1
    assert not dialogs


def test_words_can_be_picked(server, page, tmp_path):
    app, url = server
    _open(page, url)
    caption = "a red circle left of a blue square"
    _ground(page, write_scene(tmp_path / "scene.png", 240, 160), caption)
    expect(page.locator("#legend .chip")).to_have_count(8, timeout=60_000)
    expect(page.locator("#legend .chip").first).to_contain_text("0:a", timeout=60_000)  # this caption's answer, not the first page's (8 words too)
    before = app.GROUNDER.forward_passes
    src = page.locator("#out_img img").get_attribute("src")
    page.locator("#pick label").filter(has_text="0:a").click()  # add a word that was hidden
    expect(page.locator("#out_img img")).not_to_have_attribute("src", src, timeout=30_000)
    assert app.GROUNDER.forward_passes == before  # redrawn from the trace


def test_html_caption_is_text_and_errors_keep_the_result(server, page, tmp_path):
    app, url = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _open(page, url)
    caption = '<img src=x onerror="alert(1)"> <b>red</b> circle <script>alert(2)</script>'
    _ground(page, write_scene(tmp_path / "scene.png"), caption)
    words = app.recompute.read_caption(app.GROUNDER, caption).words
    expect(page.locator("#legend .chip")).to_have_count(len(words), timeout=60_000)
    assert page.locator("#legend b").count() == 0 and page.locator("#table b").count() == 0
    assert not dialogs
    # a user error is shown, and the previous result stays
    page.locator("#in_txt textarea").fill("   ")
    page.locator("#submit").click()
    expect(page.locator("#status")).to_contain_text("caption is empty", timeout=60_000)
    expect(page.locator("#legend .chip")).to_have_count(len(words))
    page.locator("#in_txt textarea").fill("a blue square")
    page.locator("#submit").click()
    expect(page.locator("#legend .chip")).to_have_count(3, timeout=60_000)
    expect(page.locator("#status")).to_have_text("", timeout=10_000)


def test_example_click(server, page):
    app, url = server
    if not app.EXAMPLES:
        pytest.skip("no examples in assets/examples")
    path, caption = app.EXAMPLES[0]
    words = app.recompute.read_caption(app.GROUNDER, caption).words
    _open(page, url)
    page.locator("#examples_en tr.tr-body").first.click()
    expect(page.locator("#in_txt textarea")).to_have_value(caption, timeout=60_000)
    expect(page.locator("#legend .chip")).to_have_count(len(words), timeout=60_000)
    # the other tabs follow: the word menus start on the most confidently grounded content word (not "a", "the")
    from mmattn.demo.handlers import content_word

    best = content_word(app.D.trace(app.D.ask(app.load_image(path), caption)))
    page.get_by_role("tab", name="Heads & layers").click()
    expect(page.locator("#heads_word input")).to_have_value(f"{best}:{words[best]}", timeout=60_000)


def test_chinese_interface(server, browser, tmp_path):
    """A browser that asks for Chinese gets the page in Chinese: labels, tabs, the table and notes."""
    app, url = server
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        _open(page, url)
        expect(page.get_by_role("tab", name="逐步计算")).to_be_visible(timeout=60_000)
        expect(page.locator("#submit")).to_have_text("定位")
        from mmattn.demo.examples import first_scene

        image = tmp_path / "first.png"  # a scene the caption describes: a red circle left of a blue square
        first_scene().save(image)
        _ground(page, str(image), "红色的圆形在蓝色正方形的左边")
        expect(page.locator("#table")).to_contain_text("正方形", timeout=30_000)
        expect(page.locator("#legend .chip").first).to_be_visible(timeout=60_000)
        expect(page.locator("#table")).to_contain_text("在图中找到了吗", timeout=30_000)
        expect(page.locator("#legend")).to_contain_text("颜色深浅")
        page.wait_for_timeout(500)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "ground_zh.png"), full_page=True)
        for tab, slug, filled in (("图像 → 文本", "image_to_text_zh", "#click_img img"), ("注意力头与层", "heads_zh", "#heads_t2i img"),
                                  ("逐步计算", "steps_zh", "#steps_plot .js-plotly-plot"), ("位置编码", "positions_zh", "#pe_plot .js-plotly-plot")):
            page.get_by_role("tab", name=tab).click()
            expect(page.locator(filled).first).to_be_visible(timeout=60_000)
            page.wait_for_timeout(400)
            page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)
        expect(page.locator("#steps_sentence")).to_contain_text("图书馆")  # the stage's sentence, in Chinese
    finally:
        context.close()


def test_a_photo_and_an_unavailable_photo_backend(server, page, tmp_path, monkeypatch):
    """A photograph on the shipped model: the page says it is outside the model's world and finds
    nothing; picking the CLIP backend with no network says why in one line and the page stays
    on the shipped model."""
    data = pytest.importorskip("skimage.data")
    import huggingface_hub.constants
    from PIL import Image

    app, url = server
    photo = tmp_path / "cat.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    _open(page, url)
    _ground(page, str(photo), "a small orange circle")
    expect(page.locator("#notice textarea")).to_have_value(re.compile("does not look like the shapes world"), timeout=60_000)
    expect(page.locator("#table")).to_contain_text("not the model's world")
    expect(page.locator("#pick input:checked")).to_have_count(0)  # no map drawn as if it were an answer
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "photo_on_shapes_model.png"), full_page=True)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network, not in the cache
    page.locator("#model_pick input").click()
    page.get_by_role("option", name="hub: openai/clip-vit-base-patch16").click()
    expect(page.locator("#status")).to_contain_text("unavailable", timeout=10_000)
    expect(page.locator("#model_pick input")).to_have_value(app.DEFAULT.choice.label, timeout=10_000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "model_picker_offline.png"), full_page=True)



# ---- a learner's first minutes (issue 24): the page opens working, never contradicts itself, reads in Chinese
ZH_TABS = {"定位": "ground", "图像 → 文本": "i2t", "注意力头与层": "heads", "逐步计算": "steps", "位置编码": "positions"}
EN_TABS = {"Ground": "ground", "Image → text": "i2t", "Heads & layers": "heads", "Step by step": "steps", "Positions": "positions"}
#: Latin words allowed on the Chinese page: the symbols Q, K, V, softmax and PE (and their matrices W_q, W_k, W_v),
#: sin/cos in the encodings' formula, the tokens [CLS]/[SEP] the model reads, the project's name and gradio's API link
ZH_ALLOWED = {"softmax", "PE", "W_q", "W_k", "W_v", "sin", "cos", "CLS", "SEP", "mmattn", "API"}


def _idle(page):
    """No event running: gradio dims an output (and shows its English "processing |" timer) while it is updated."""
    page.wait_for_timeout(800)
    page.wait_for_function("!document.body.innerText.includes('processing |')", timeout=SLOW)
    page.wait_for_timeout(400)


def _context(browser, lang):
    return browser.new_context(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1400, "height": 1000})


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_opens_grounded_on_a_relational_example(server, browser, lang):
    """No click: the example is grounded, every tab is filled from it, Image -> text included."""
    from mmattn.demo.examples import FIRST_CAPTION

    app, url = server
    page = _context(browser, lang).new_page()
    page.goto(url, timeout=SLOW)
    expect(page.locator("#legend .chip").first).to_be_visible(timeout=SLOW)
    expect(page.locator("#in_txt textarea")).to_have_value(FIRST_CAPTION[lang])
    expect(page.locator("#notice textarea")).to_have_value(re.compile("as the caption says|和描述说的一样"))
    tabs = ZH_TABS if lang == "zh" else EN_TABS
    names = list(tabs)
    page.get_by_role("tab", name=names[1]).click()  # Image -> text: the patch where the content word looks most
    expect(page.locator("#click_words")).to_contain_text(re.compile(r"\d+:\S+"), timeout=30_000)
    expect(page.locator("#x_in input")).not_to_have_value("0")
    page.get_by_role("tab", name=names[2]).click()
    expect(page.locator("#heads_t2i img")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name=names[3]).click()
    expect(page.locator("#steps_plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name=names[4]).click()
    expect(page.locator("#pe_plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#pos_off_md")).not_to_be_empty()  # says how to run the experiment
    page.context.close()


def test_the_chinese_page_has_no_english(server, browser):
    """Every tab of the zh page: no Latin word but the allowed symbols (the first example's own data is Chinese)."""
    app, url = server
    page = _context(browser, "zh").new_page()
    _open(page, url)
    for tab in ZH_TABS:
        page.get_by_role("tab", name=tab).click()
        _idle(page)  # gradio's own "processing |" timer (English in gradio 6.31) shows while an event runs
        words = set(re.findall(r"[A-Za-z][A-Za-z_]+", page.locator("body").inner_text()))
        assert words <= ZH_ALLOWED, (tab, sorted(words - ZH_ALLOWED))
    page.context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_placeholder_is_a_caption_the_model_knows_and_enter_grounds(server, browser, tmp_path, lang):
    app, url = server
    page = _context(browser, lang).new_page()
    _open(page, url)
    box = page.locator("#in_txt textarea")
    placeholder = box.get_attribute("placeholder")
    assert placeholder
    page.locator("#in_img input[type=file]").set_input_files(write_scene(tmp_path / "scene.png", 240, 160))
    box.fill(placeholder)
    before = page.locator("#out_img img").get_attribute("src")
    box.press("Enter")  # Enter grounds (Shift+Enter would start a new line)
    expect(page.locator("#out_img img")).not_to_have_attribute("src", before, timeout=60_000)
    assert "\n" not in box.input_value()
    notice = page.locator("#notice textarea").input_value()
    assert "not in the model's vocabulary" not in notice and "不在模型的词汇表" not in notice, notice
    page.context.close()


def test_colour_words_are_drawn_in_their_own_colour(server, page):
    """"red" in red and "blue" in blue: the legend chip and the word picker (the picture and boxes use the same list)."""
    from mmattn.teach.colours import FAMILIES, colour_family

    app, url = server
    _open(page, url)
    chips = page.locator("#legend .chip")
    n = chips.count()
    seen = set()
    for i in range(n):
        word = chips.nth(i).inner_text().split(":", 1)[1].split()[0]
        family = colour_family(word)
        if family:
            seen.add(family)
            assert chips.nth(i).evaluate("e => getComputedStyle(e).borderTopColor") == _rgb(FAMILIES[family]), word
            label = page.locator("#pick label").nth(i)
            assert label.evaluate("e => getComputedStyle(e).borderLeftColor") == _rgb(FAMILIES[family]), word
    assert seen == {"red", "blue"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_keyboard_and_screen_readers(server, browser, lang):
    """axe-core: no serious or critical violation on any tab; one Tab stop per radio group; every
    picture has an alt text and every figure a label."""
    from axe_playwright_python.sync_playwright import Axe

    app, url = server
    page = _context(browser, lang).new_page()
    _open(page, url)
    for tab in ZH_TABS if lang == "zh" else EN_TABS:
        page.get_by_role("tab", name=tab).click()
        _idle(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in Axe().run(page).response["violations"]
               if v["impact"] in ("serious", "critical")]  # fmt: skip
        assert not bad, (tab, bad)
        assert page.locator("img:visible[alt='']").count() == 0 and page.locator("img:visible:not([alt])").count() == 0
        for plot in page.locator(".js-plotly-plot:visible").all():
            assert plot.get_attribute("aria-label"), tab
    page.get_by_role("tab", name=list(ZH_TABS if lang == "zh" else EN_TABS)[0]).click()
    page.locator("#in_txt textarea").focus()
    stops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("(() => { const e = document.activeElement; const f = e.closest('fieldset, [id]'); return f ? f.id : e.tagName; })()"))
        if stops[-1] == "submit":
            break
    assert stops[-1] == "submit" and stops.count("method") == 1 and stops.count("heads") == 1, stops
    page.locator("#method input").first.focus()
    page.keyboard.press("ArrowRight")  # arrow keys move within the group
    expect(page.locator("#method input:checked")).to_have_value("rollout", timeout=10_000)
    page.context.close()


def test_positions_off_shows_the_referent_jump(server, page):
    """Issue #26 on the page: two orange circles, "the orange circle left of the blue hexagon".
    The Ground legend groups each phrase's words (and says what the circle is anchored to);
    Positions off draws the circle's box with and without positions and says it jumps."""
    from mmattn.demo.examples import EXAMPLES_DIR

    app, url = server
    image = EXAMPLES_DIR / "relational_337.png"
    if not image.is_file():
        pytest.skip("no relational example in assets/examples")
    caption = "the orange circle left of the blue hexagon"
    _open(page, url)
    _ground(page, str(image), caption)
    expect(page.locator("#legend .phrase")).to_have_count(2, timeout=60_000)
    expect(page.locator("#legend .phrase").first).to_contain_text("left of “blue hexagon”")
    page.get_by_role("tab", name="Positions").click()
    page.locator("#pos_off_btn").click()
    expect(page.locator("#pos_off_md")).to_contain_text("jumps to", timeout=60_000)
    expect(page.locator("#pos_off_md")).to_contain_text("orange circle")
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#pos_off_md").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "positions_jump.png"), full_page=True)
