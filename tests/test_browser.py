"""The demo in a real headless Chromium (pytest-playwright, Debian's /usr/bin/chromium).

Uploads an image, types a caption, grounds it (one legend item per word), clicks the image
in the Image -> text tab (the word chart appears), checks that a caption with HTML is shown
as text, and saves ``assets/screenshot.png`` for the README.
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
    page.goto(url, timeout=SLOW)
    page.locator("#in_img input[type=file]").wait_for(state="attached", timeout=SLOW)


def _ground(page, image: str, caption: str):
    page.locator("#in_img input[type=file]").set_input_files(image)
    page.locator("#in_txt textarea").fill(caption)
    page.locator("#submit").click()


def test_ground_click_and_screenshot(server, page, tmp_path):
    app, url = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    if app.EXAMPLES:  # a scene from the shapes world makes the better screenshot
        image, caption = app.EXAMPLES[-1]
    else:
        image, caption = write_scene(tmp_path / "scene.png", 240, 160), "a red circle left of a blue square"
    words = app.explain.read_caption(app.GROUNDER, caption).words
    _open(page, url)
    _ground(page, image, caption)
    legend = page.locator("#out_ann .legend-item")
    expect(legend).to_have_count(len(words), timeout=60_000)
    expect(legend.first).to_have_text(f"0:{words[0]}")
    expect(page.locator("#table")).to_contain_text(words[-1])
    page.wait_for_timeout(500)  # let the masks finish loading
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # image -> text: click on the object of the first grounded word (or the middle)
    page.get_by_role("tab", name="Image → text").click()
    img = page.locator("#click_img img")
    expect(img).to_be_visible(timeout=60_000)
    box = img.bounding_box()
    r = app.GROUNDER.ground(app.load_image(image), caption)
    fx, fy = 0.5, 0.5
    b = next((b for b in r.boxes if b is not None), None)
    if b is not None:
        fx, fy = (b[0] + b[2]) / 2 / r.size[0], (b[1] + b[3]) / 2 / r.size[1]
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    chart = page.locator("#click_words")
    expect(chart).to_contain_text(re.compile(r"\d+:(" + "|".join(map(re.escape, words)) + ")"), timeout=60_000)
    expect(chart).to_contain_text("other tokens")
    page.screenshot(path=str(tmp_path / "click.png"), full_page=True)
    assert not dialogs


def test_html_caption_is_text_and_errors_show(server, page, tmp_path):
    app, url = server
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _open(page, url)
    caption = '<img src=x onerror="alert(1)"> <b>red</b> circle <script>alert(2)</script>'
    _ground(page, write_scene(tmp_path / "scene.png"), caption)
    words = app.explain.read_caption(app.GROUNDER, caption).words
    expect(page.locator("#out_ann .legend-item")).to_have_count(len(words), timeout=60_000)
    assert page.locator("#out_ann b").count() == 0 and page.locator("#table b").count() == 0
    assert not dialogs
    # an error is shown to the user, and the page keeps working
    page.locator("#in_txt textarea").fill("   ")
    page.locator("#submit").click()
    expect(page.get_by_text("The caption is empty").first).to_be_attached(timeout=60_000)
    page.locator("#in_txt textarea").fill("a blue square")
    page.locator("#submit").click()
    expect(page.locator("#out_ann .legend-item")).to_have_count(3, timeout=60_000)


def test_example_click(server, page):
    app, url = server
    if not app.EXAMPLES:
        pytest.skip("no examples in assets/examples")
    path, caption = app.EXAMPLES[0]
    words = app.explain.read_caption(app.GROUNDER, caption).words
    _open(page, url)
    page.locator("#examples tr.tr-body").first.click()
    expect(page.locator("#in_txt textarea")).to_have_value(caption, timeout=60_000)
    expect(page.locator("#out_ann .legend-item")).to_have_count(len(words), timeout=60_000)
    # the other tabs follow: the word menus start on the most confidently grounded word
    r = app.GROUNDER.ground(app._work(app.load_image(path)), caption)
    best = max(range(len(words)), key=lambda i: r.grounded_scores[i])
    page.get_by_role("tab", name="Heads & layers").click()
    expect(page.locator("#heads_word input")).to_have_value(f"{best}:{words[best]}", timeout=60_000)
