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
.legend .chip.function {border-style: dashed; color: #666;}
.legend .swatch {display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px;}
.scale {display: flex; align-items: center; gap: 6px; font-size: 0.8em; color: #444;}
.scale .bar {width: 160px; height: 10px; border: 1px solid #999; background: linear-gradient(90deg, rgba(80,80,80,0), rgba(80,80,80,0.45));}
.scale-note {font-size: 0.8em; color: #555;}
th, th * {word-break: keep-all !important; overflow-wrap: normal !important; hyphens: none;}
#examples thead {display: none;} #examples table {table-layout: auto; width: 100%;} #examples td {white-space: normal !important; word-break: break-word;}
#examples .table-wrap, #examples table {max-width: 100%; overflow-x: hidden;}
:focus-visible {outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important;}
input[type=radio]:focus-visible + span, label:focus-within {outline: 3px solid #1d4ed8; outline-offset: 2px;}
"""


def launch_kwargs(i18n) -> dict:
    """Keyword arguments for ``demo.launch()``: limits, the CSS and theme, the page's languages."""
    import gradio as gr

    theme = gr.themes.Soft(primary_hue="indigo", secondary_hue="purple",
                           font=["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "sans-serif"],
                           font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])  # fmt: skip
    return {
        "max_file_size": "10mb", "show_error": False, "theme": theme, "css": CSS, "i18n": i18n,
        "footer_links": ["api", "gradio", "settings"],  # Settings: the page's language
        # gradio keeps a copy of the page's config for every session (~0.2 MB here), and every raw HTTP call is a
        # session of its own: 256 sessions bound the memory (gradio's default of 10,000 grew the server by 230 MB
        # over 1,400 API calls); a page whose session was dropped asks its user to press Ground again
        "state_session_capacity": 256,
    }  # fmt: skip
