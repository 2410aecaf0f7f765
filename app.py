"""mmattn demo: see bidirectional text-image cross-attention on your own image and caption.

    python app.py                        # http://0.0.0.0:7860 (GRADIO_SERVER_NAME / _PORT to change)
    MMATTN_MODEL=path/to/ckpt python app.py

The page opens on an example already grounded. Tabs: Ground (each word's map over the image),
Image -> text (click a region: which words it attends to), Heads & layers, Step by step (Q, Kᵀ,
V, Q·Kᵀ, ÷√d, softmax, ·V, heads, out_proj, recomputed with the model's own weights), Positions
(and the positions-off experiment). In English or Chinese (mmattn/teach/text_en.py, text_zh.py).

One question, one forward pass: a Ground click traces the model once; every tab, click, word,
layer, head and direction is then a reading of that trace. The logic is ``mmattn.demo`` (one
handler per endpoint, tested without a server); this file is the layout and the wiring, and
workarounds of gradio and glibc live in ``patches/``.

Public API (gradio_client; note the leading slash; every endpoint ends with ``model``, the
label of a model in the page's picker, default the one served at start-up):
    /ground     (image, caption, method, layer, heads, show_boxes, model) -> picture, per-word table, match, notes, JSON
    /grounding  (image, caption, method, layer, heads, model)             -> JSON alone (what Grounder.ground() gives; no picture)
    /words_at   (image, caption, x, y, method, layer, heads, model)       -> word weights (label), JSON
    /heads      (image, caption, word, model)                              -> text->image grid, image->text grid, JSON
    /steps      (image, caption, word, layer, head, direction, model)      -> stage pictures, explanation, per-head pictures, JSON
    /positions  (image, n, dim, positions, row, col, model)                -> PE figure, PE·PEᵀ figure, dimensions, 2-D map, JSON
"""

from __future__ import annotations

import functools
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network at start-up
os.environ.setdefault("MPLBACKEND", "agg")  # gradio asks matplotlib its backend at every event: else the first imports pyplot (0.7 s)

from patches import gradio_stubs, malloc  # noqa: E402

gradio_stubs.install()  # before gradio is imported
malloc.install()

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from mmattn.api.image import load_image  # noqa: E402, F401 -- tests read the page's image as it does
from mmattn.demo import api, checks, events, examples, style  # noqa: E402
from mmattn.demo.api import PublicAPI  # noqa: E402
from mmattn.demo.export import EXPORT_AGE, EXPORTS  # noqa: E402
from mmattn.demo.handlers import Demo, ordered  # noqa: E402
from mmattn.demo.pool import ModelPool  # noqa: E402
from mmattn.demo.question import page_language  # noqa: E402
from mmattn.models.tokenizer import MAX_TOKENS  # noqa: E402
from mmattn.teach import figures, recompute, text, views  # noqa: E402, F401 -- figures: plotly imported at start-up, not on the first click
from patches import gradio_cache, gradio_cleanup, gradio_inputs, gradio_sessions, gradio_uploads  # noqa: E402

gradio_cache.install()
gradio_sessions.install()  # a new session builds a block's config only when it reads it
gradio_cleanup.install(EXPORTS, EXPORT_AGE)  # cache folders and downloads removed as they expire and at shutdown
Image.MAX_IMAGE_PIXELS = 40_000_000  # Pillow refuses (2x this) / warns before decoding decompression bombs
log = logging.getLogger("mmattn.app")
T = gr.I18n(**text.translations())  #: the page's words, English and Chinese (mmattn/teach/text_en.py, text_zh.py)

MODELS = ModelPool.from_environment()
D = Demo(MODELS)
DEFAULT, GROUNDER, CACHE = MODELS.default, MODELS.default.grounder, MODELS.default.cache
L, H, LAYER0, METHODS = DEFAULT.L, DEFAULT.H, DEFAULT.L - 1, DEFAULT.methods
STARTUP_PROBLEM, MODEL_INFO = MODELS.startup_problem("en"), D.model_info(DEFAULT, "en")
EXAMPLES, EXAMPLES_ZH = examples.load_examples(lang="en"), examples.load_examples(lang="zh")
FIRST_OUT = events.with_downloads(D.first_outputs())  #: the page as it opens, downloads included
LAUNCH_KWARGS = style.launch_kwargs(T)  #: keyword arguments for demo.launch() (tests use them too, so the page looks the same)
_work = checks.work_image
C: dict[str, gr.components.Component] = {}  #: the page's components by name: the handlers' output names


def c(name: str, component):
    """Register ``component`` under ``name`` (its elem_id too, unless one is given)."""
    if component.elem_id is None:
        component.elem_id = name
    C[name] = component
    return component


def on_args(fn, inputs, names=None) -> tuple:
    """(handler, inputs, outputs) of a page event over ``fn``: its outputs by name, then the status line."""
    names = events.with_downloads(names or fn.outputs)
    return (events.keep_on_error(fn, names, malloc.give_back), [C[i] if isinstance(i, str) else i for i in inputs],
            [C[n] for n in [*names, "status"]])  # fmt: skip


def _api(fn):
    """An API endpoint: a user error becomes a gradio error (title and one line), no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        malloc.give_back()
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            log.info("refused (%s): %s", fn.__name__, e)
            raise gr.Error(getattr(e, "message", None) or str(e), title=getattr(e, "title", "Error"), duration=5, print_exception=False) from None

    return wrapper


API = {name: _api(fn) for name, fn in PublicAPI(D).endpoints().items()}  #: the public API (mmattn/demo/api.py)
ground, words_at, heads_view, steps_view, positions_view = (API[n] for n in ("ground", "words_at", "heads", "steps", "positions"))


_upload_check = _api(checks.check_size)  # an upload refused before it is decoded (patches/gradio_uploads.py)


def active_tab(evt: gr.SelectData) -> str:
    """The tab shown (figures are drawn only there: four Plotly figures in hidden tabs cost 150 ms per Ground click)."""
    i = evt.index if evt is not None else 0
    return TAB_IDS[i] if isinstance(i, int) and 0 <= i < len(TAB_IDS) else "ground"


def click(q, method, layer, heads, evt: gr.SelectData):
    """A click on the picture of the Image -> text tab."""
    return D.click(q, None if evt is None else evt.index, method, layer, heads)


def first_answer(request: gr.Request):
    """The page as it opens: an example grounded, in the browser's language."""
    malloc.give_back()
    return ordered(events.add_downloads(D.first(page_language(getattr(request, "headers", None)))), FIRST_OUT)


# ---- the page ---------------------------------------------------------------------------------------
TAB_IDS = ("ground", "i2t", "heads", "steps", "positions")  #: the tabs, in the page's order


def numbers(name: str, label: str, export: str | None = None) -> None:
    """A view's numbers: JSON in a closed accordion, and a button to download them."""
    with gr.Accordion(T("json"), open=False):
        c(name, gr.JSON(label=T(label)))
    if export:
        c(export, gr.DownloadButton(T("download_json"), size="sm"))


with gr.Blocks(title="mmattn: text ↔ image cross-attention", delete_cache=(300, 600)) as demo:  # output files kept 10 min
    gr.Markdown(T("title"), elem_id="title")
    with gr.Row(equal_height=True):
        c("model_pick", gr.Dropdown(MODELS.names("en"), value=DEFAULT.choice.label, label=T("model"), scale=2, info=T("model_info")))
        c("model_info", gr.Markdown(MODEL_INFO))
    with gr.Accordion(T("world"), open=False, elem_id="world"):
        c("world_md", gr.Markdown(DEFAULT.world("en")))
    c("question", gr.State(None, time_to_live=3600))  # a page's last question (one work image, <= 0.8 MB), for an hour
    c("lang", gr.State("en"))  # the page's language (the browser's), set when the page loads
    shown_tab = gr.State("ground")  # the tab the page shows
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            c("in_img", gradio_uploads.guard(gr.Image(type="pil", label=text.t("image", "en"), height=300, sources=["upload", "clipboard"]), _upload_check))
            # one line that grows: Enter grounds, Shift+Enter starts a new line
            c("in_txt", gr.Textbox(label=D.caption_label(DEFAULT, "en"), lines=1, max_lines=4, placeholder=T("caption_placeholder")))
            with gr.Accordion(T("settings"), open=True):
                c("method", gr.Radio(D.method_choices(DEFAULT, "en"), value="attention", label=T("method"), info=T("method_info")))
                c("layer", gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label=T("layer")))
                c("heads", gr.Radio(D.head_choices(DEFAULT, "en"), value="mean", label=T("heads"), info=T("heads_info")))
                c("boxes", gr.Checkbox(value=True, label=T("boxes")))
            btn = c("submit", gr.Button(T("ground_button"), variant="primary"))
            c("status", gr.Markdown(""))
            examples_box = gr.Column()
        with gr.Column(scale=7):
            c("banner", gr.Markdown(""))  # an image outside the model's world: said above every tab
            with gr.Tabs() as tabs:
                with gr.Tab(T("tab_ground"), id="ground"):
                    gr.Markdown(T("ground_explain"), elem_classes="explain")
                    c("picture", gr.Image(label=T("where"), elem_id="out_img", type="pil", format="jpeg", interactive=False, height=400,
                                          buttons=["download", "fullscreen"]))  # fmt: skip
                    c("legend", gr.HTML())
                    c("pick", gr.CheckboxGroup(choices=[], label=T("words_shown")))
                    c("pick_css", gr.HTML())
                    with gr.Row():
                        c("match", gr.Label(label=T("match"), num_top_classes=2))
                        c("notice", gr.Textbox(label=T("notes"), interactive=False, lines=2))
                    c("table", gr.Dataframe(headers=views.TABLE_HEADERS, interactive=False, label=T("per_word"), wrap=True))
                    numbers("data", "result", "ground_export")
                with gr.Tab(T("tab_i2t"), id="i2t"):
                    gr.Markdown(T("i2t_explain"), elem_classes="explain")
                    with gr.Row(equal_height=False):
                        c("click_img", gr.Image(type="pil", label=T("click_region"), interactive=False, height=400, buttons=[], scale=3, format="jpeg"))
                        with gr.Column(scale=2, min_width=220):
                            c("click_words", gr.Label(label=T("patch_words"), num_top_classes=12, show_heading=False))
                            c("click_other", gr.Markdown(elem_classes="explain"))
                            with gr.Row():
                                c("x_in", gr.Number(label=T("x"), value=0, minimum=0))
                                c("y_in", gr.Number(label=T("y"), value=0, minimum=0))
                            c("xy_btn", gr.Button(T("words_at")))
                    numbers("click_data", "patch")
                with gr.Tab(T("tab_heads"), id="heads"):
                    gr.Markdown(T("heads_explain"), elem_classes="explain")
                    c("heads_word", gr.Dropdown(choices=[], label=T("word"), allow_custom_value=True))
                    gr.Markdown(T("t2i_explain"))
                    c("heads_t2i", gr.Image(label=T("t2i"), show_label=False, type="pil", interactive=False, buttons=["download", "fullscreen"], format="png"))
                    gr.Markdown(T("i2t_grid_explain"))
                    c("heads_i2t", gr.Image(label=T("i2t"), show_label=False, type="pil", interactive=False, buttons=["download", "fullscreen"], format="png"))
                    numbers("heads_data", "maps", "heads_export")
                with c("steps_tab", gr.Tab(T("tab_steps"), id="steps")):
                    gr.Markdown(T("steps_explain"), elem_classes="explain")
                    with gr.Row():
                        c("steps_word", gr.Dropdown(choices=[], label=T("word"), allow_custom_value=True))
                        c("steps_layer", gr.Radio([(str(i), i) for i in range(L)], value=LAYER0, label=T("steps_layer")))
                        c("steps_head", gr.Radio([(str(h), h) for h in range(H)], value=0, label=T("steps_head")))
                        c("steps_dir", gr.Radio([(T("t2i"), "text_to_image"), (T("i2t"), "image_to_text")], value="text_to_image", label=T("direction")))
                    c("steps_stage", gr.Radio(text.stage_choices("en"), value="scores", label=T("stage"), info=T("stage_info")))
                    c("steps_sentence", gr.Markdown(elem_classes="explain"))
                    c("steps_plot", gr.Plot(show_label=False, label=T("stage")))
                    gr.Markdown(T("why_scale"), elem_classes="explain")
                    c("steps_temp", gr.Slider(0.25, 4, value=1, step=0.05, label=T("temperature"), info=T("temperature_info")))
                    c("scale_plot", gr.Plot(show_label=False, label=T("why_scale_label")))
                    gr.Markdown(T("stage_pictures"), elem_classes="explain")
                    c("steps_gal", gr.Gallery(label=T("stages"), columns=4, height="auto", object_fit="contain", format="png"))
                    c("steps_md", gr.Markdown(elem_classes="explain"))
                    gr.Markdown(T("heads_against"), elem_classes="explain")
                    c("heads_gal", gr.Gallery(label=T("heads"), columns=H + 1, height=260, object_fit="contain", format="jpeg"))
                    numbers("steps_data", "checks", "steps_export")
                with c("positions_tab", gr.Tab(T("tab_positions"), id="positions")):
                    gr.Markdown(T("positions_explain"), elem_classes="explain")
                    with gr.Accordion(T("pos_off"), open=True, elem_id="pos_off"):
                        gr.Markdown(T("pos_off_explain"), elem_classes="explain")
                        c("pos_off_btn", gr.Button(T("pos_off_button"), size="sm"))
                        c("pos_off_img", gr.Image(label=T("pos_off_picture"), type="pil", interactive=False, format="jpeg", height=320,
                                                  buttons=["download", "fullscreen"]))  # fmt: skip
                        c("pos_off_md", gr.Markdown())
                    with gr.Row():
                        c("pos_n", gr.Slider(2, 128, value=MAX_TOKENS, step=1, label=T("pos_n")))
                        c("pos_dim", gr.Slider(4, 256, value=min(GROUNDER.model.config.dim, 256), step=4, label=T("pos_dim")))
                        c("pos_list", gr.Textbox(value="", label=T("pos_list"), placeholder=T("pos_list_placeholder"), visible=False))
                    c("pe_img", gr.Plot(show_label=False, label=T("pe_label"), elem_id="pe_plot"))
                    with gr.Row(equal_height=False):
                        c("sim_img", gr.Plot(show_label=False, label=T("sim_label"), elem_id="sim_plot"))
                        c("dims_plot", gr.Plot(show_label=False, label=T("dims_label")))
                    gr.Markdown(T("grid_explain"), elem_classes="explain")
                    with gr.Row():
                        c("pos_row", gr.Slider(0, 63, value=0, step=1, label=T("pos_row")))
                        c("pos_col", gr.Slider(0, 63, value=0, step=1, label=T("pos_col")))
                    c("grid_img", gr.Image(label=T("grid_img"), type="pil", interactive=False, height=400, format="jpeg"))
                    numbers("pos_data", "tab_positions", "pos_export")

    for name, label, expects in checks.api_guards(METHODS, L, H):  # a wrongly typed API value is named (patches/gradio_inputs.py)
        gradio_inputs.guard(C[name], label, expects)
    with gr.Row(visible=False):  # the public API: one hidden trigger per endpoint (the page uses the events below)
        api_triggers = [gr.Button(visible=False) for _ in API]
        c("grounding_json", gr.JSON(visible=False))  # /grounding's answer (not on the page)

    # ---- the public API (gradio_client), same inputs as before: each question is traced once (wired first: the names are theirs)
    for i, (name, fn) in enumerate(API.items()):
        api_triggers[i].click(fn, [C[n] for n in api.INPUTS[name]], [C[n] for n in api.OUTPUTS[name]], api_name=name,
                              concurrency_id=None if name == "positions" else "model")  # fmt: skip

    # ---- the page's events: each handler's outputs by name (mmattn.demo.handlers), then the status line
    def on(trigger, fn, inputs, names=None, **kw):
        return trigger(*on_args(fn, inputs, names), api_visibility="private", **kw)

    def ground_page(image, caption, method, layer, heads, boxes, model, lang):
        return D.ground(D.ask(image, caption, model, lang), method, layer, heads, boxes)

    ground_page.outputs = D.ground.outputs
    GROUND_IN = ["in_img", "in_txt", "method", "layer", "heads", "boxes", "model_pick", "lang"]
    TABS_IN = ["question", "steps_layer", "steps_head", "steps_dir", "steps_stage", "steps_temp", "pos_n", "pos_dim", "pos_list", shown_tab]
    tabs.select(active_tab, None, shown_tab, api_visibility="private", queue=False)
    for trigger in (btn.click, C["in_txt"].submit):
        on(trigger, ground_page, GROUND_IN, concurrency_id="model").success(
            *on_args(D.fill_tabs, TABS_IN), api_visibility="private", concurrency_id="model")  # fmt: skip
    for name in ("method", "layer", "heads", "boxes", "pick"):
        on(C[name].input, D.redraw, ["question", "method", "layer", "heads", "boxes", "pick"], concurrency_id="model")
    on(C["click_img"].select, click, ["question", "method", "layer", "heads"], D.click.outputs, concurrency_id="model")
    on(C["xy_btn"].click, D.words_at, ["question", "x_in", "y_in", "method", "layer", "heads"], concurrency_id="model")
    on(C["heads_word"].input, D.heads, ["question", "heads_word"])
    STEPS_IN = ["question", "steps_word", "steps_layer", "steps_head", "steps_dir", "steps_stage", "steps_temp"]
    for name in ("steps_word", "steps_layer", "steps_head", "steps_dir"):
        on(C[name].input, D.steps, STEPS_IN, concurrency_id="model")
    for trigger in (C["steps_stage"].input, C["steps_temp"].release, C["steps_tab"].select):
        on(trigger, D.step_figures, STEPS_IN)
    POS_IN = ["question", "pos_n", "pos_dim", "pos_list", "pos_row", "pos_col"]
    for trigger in (C["pos_n"].release, C["pos_dim"].release, C["pos_row"].release, C["pos_col"].release, C["pos_list"].submit,
                    C["positions_tab"].select):  # fmt: skip
        on(trigger, D.positions_on_page, POS_IN)
    on(C["pos_off_btn"].click, D.positions_off, ["question"], concurrency_id="model")
    on(C["model_pick"].input, D.switch_model, ["model_pick", "lang"], [n for n in D.switch_model.outputs if n != "status"])

    with examples_box:  # the same scenes captioned in each language; the page's language shows its own (Demo.first)
        for lang, table in (("en", EXAMPLES), ("zh", EXAMPLES_ZH)):
            ex = gr.Examples(table, [C["in_img"], C["in_txt"]], label=T("examples"), examples_per_page=8, elem_id=f"examples_{lang}")
            c(f"examples_{lang}", ex.dataset).elem_classes = ["examples"]
            ex.dataset.visible = lang == "en"
            on(ex.load_input_event.then, ground_page, GROUND_IN, concurrency_id="model").success(
                *on_args(D.fill_tabs, TABS_IN), api_visibility="private", concurrency_id="model")  # fmt: skip
    demo.load(first_answer, None, [C[n] for n in FIRST_OUT], api_visibility="private", concurrency_id="model")

gradio_inputs.require_inputs(demo)
gradio_inputs.check_inputs(demo)  # a wrong type or a value out of range is named, never coerced
demo.queue(max_size=64, default_concurrency_limit=2)

if __name__ == "__main__":
    gradio_cleanup.serve(demo, server_name=os.getenv("GRADIO_SERVER_NAME", "0.0.0.0"), **LAUNCH_KWARGS)  # SIGTERM as Ctrl-C
