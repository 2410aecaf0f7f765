"""The page's look: its CSS (readable focus rings, table headers that do not break inside a
word, the legend's chips and colour scale), theme and launch settings."""

CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#title h1 {margin-bottom: 0.2em;}
#model_info {font-size: 0.9em; opacity: 0.85;}
#status {color: #b45309; min-height: 1.2em;}
.explain {font-size: 0.92em;}
.legend {display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0;}
.legend .chip {border: 2px solid; border-radius: 12px; padding: 1px 8px; font-size: 0.9em; background: #fff; color: #222;}
.legend .chip.function {border-style: dashed; color: #555;}
.legend .phrase {display: inline-flex; flex-wrap: wrap; align-items: center; gap: 3px; padding: 2px 6px; border: 1px solid #9ca3af; border-radius: 14px; background: #f9fafb;}
.legend .phrase .anchor {color: #374151; margin-left: 2px;}
.tab-container button[aria-selected=true], button[role=tab][aria-selected=true] {color: #3730a3 !important;}
.legend .swatch {display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px;}
.scale {display: flex; align-items: center; gap: 6px; font-size: 0.8em; color: #444;}
.scale .bar {width: 160px; height: 10px; border: 1px solid #999; background: linear-gradient(90deg, rgba(80,80,80,0), rgba(80,80,80,0.45));}
.scale-note {font-size: 0.8em; color: #555;}
th, th * {word-break: keep-all !important; overflow-wrap: normal !important; hyphens: none;}
.examples thead {display: none;} .examples table {table-layout: auto; width: 100%;}
.examples td {white-space: normal !important; word-break: break-word; max-width: none !important;}
.examples .table-wrap, .examples table {max-width: 100%; overflow-x: hidden;}
:focus-visible {outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important;}
input[type=radio]:focus-visible + span, label:focus-within {outline: 3px solid #1d4ed8; outline-offset: 2px;}
"""

#: element ids whose pictures and figures get an alt text / accessible label (``alt_<id>`` in the text modules)
DESCRIBED = ("in_img", "out_img", "click_img", "heads_t2i", "heads_i2t", "pos_off_img", "grid_img", "steps_plot", "scale_plot",
             "pe_plot", "sim_plot", "dims_plot")  # fmt: skip

#: run in the browser when the page loads: the page's language on <html>; alt text on every picture and a label on
#: every figure (gradio 6.31 has no alt= for gr.Image and leaves the image button unnamed); one Tab stop per radio
#: group, arrow keys within it (gradio gives each radio its own name, so each was its own group)
JS = """
() => {
  const zh = ((navigator.languages && navigator.languages[0]) || navigator.language || "").toLowerCase().startsWith("zh");
  document.documentElement.lang = zh ? "zh-CN" : "en";
  const text = __ALT__[zh ? "zh" : "en"];
  let queued = false;
  const fix = () => {
    queued = false;
    for (const [id, label] of Object.entries(text)) {
      const block = document.getElementById(id);
      if (!block) continue;
      block.querySelectorAll("img").forEach((img) => { if (img.alt !== label) img.alt = label; });
      block.querySelectorAll(".image-container button:not([aria-label])").forEach((b) => b.setAttribute("aria-label", label));
      block.querySelectorAll(".js-plotly-plot, div.empty").forEach((p) => {
        if (p.getAttribute("aria-label") !== label) { p.setAttribute("role", "figure"); p.setAttribute("aria-label", label); }
      });
    }
    document.querySelectorAll("[id^=examples_] tr").forEach((tr) => {  // an example's picture: its caption
      const caption = tr.innerText.trim();
      tr.querySelectorAll("img").forEach((img) => { if (caption && img.alt !== caption) img.alt = caption; });
    });
    document.querySelectorAll("img[loading=lazy]").forEach((img) => { img.loading = "eager"; });  // no blank gallery until scrolled
    document.querySelectorAll("div.empty[aria-label]:not([role])").forEach((e) => e.setAttribute("role", "img"));
    document.querySelectorAll("fieldset").forEach((fs, i) => {
      const name = "group-" + (fs.id || i);
      fs.querySelectorAll("input[type=radio]").forEach((r) => { if (r.name !== name) r.name = name; });
    });
  };
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(fix); } })
    .observe(document.body, {childList: true, subtree: true});
  fix();
}
"""


def page_js() -> str:
    """JS with the alt texts of both languages filled in."""
    import json

    from mmattn.teach.text import t

    alt = {lang: {i: t(f"alt_{i}", lang) for i in DESCRIBED} for lang in ("en", "zh")}
    return JS.replace("__ALT__", json.dumps(alt, ensure_ascii=False))


def launch_kwargs(i18n) -> dict:
    """Keyword arguments for ``demo.launch()``: limits, the CSS and theme, the page's languages."""
    import gradio as gr

    theme = gr.themes.Soft(primary_hue="indigo", secondary_hue="purple",
                           font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "sans-serif"],
                           font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"]).set(
        block_title_text_color="*primary_800", block_label_text_color="*primary_800", block_info_text_color="*neutral_600",
        checkbox_label_background_fill_selected="*primary_700", checkbox_label_background_fill_selected_dark="*primary_700",
        button_primary_background_fill="*primary_700", button_primary_background_fill_hover="*primary_800",
        body_text_color_subdued="*neutral_600", color_accent="*primary_700",
    )  # fmt: skip -- labels readable on their tinted badges (axe: contrast >= 4.5)
    return {
        "max_file_size": "10mb", "show_error": False, "theme": theme, "css": CSS, "js": page_js(), "i18n": i18n,
        "footer_links": ["api", "settings"],  # Settings: the page's language
        # gradio keeps a copy of the page's config for every session (~0.2 MB here), and every raw HTTP call is a
        # session of its own: 256 sessions bound the memory (gradio's default of 10,000 grew the server by 230 MB
        # over 1,400 API calls); a page whose session was dropped asks its user to press Ground again
        "state_session_capacity": 256,
    }  # fmt: skip
