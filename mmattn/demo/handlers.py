"""One handler per endpoint of the page, each a reading of one question's trace.

A handler takes a :class:`~mmattn.demo.question.Question` (the page keeps it; the public API
makes it from an image and a caption with :func:`~mmattn.demo.question.ask`) and returns a
dict: output name -> value. ``handler.outputs`` lists those names in order; ``app.py`` names
its components the same and builds each event's output list from it, so no count is kept by
hand. A value may be :func:`update` (change a component's settings too) or ``SKIP`` (leave it).
Failures are :class:`~mmattn.demo.errors.UserError` in the question's language.
"""

from __future__ import annotations

from mmattn.demo import checks
from mmattn.demo.errors import refuse
from mmattn.demo.export import export
from mmattn.demo.pool import LoadedModel, ModelPool
from mmattn.demo.question import Question, ask, model_of, trace_of
from mmattn.models.tokenizer import MAX_TOKENS
from mmattn.teach import recompute, views
from mmattn.teach.text import stage_choices, t


def update(**settings) -> dict:
    """A component's new settings and/or value (gradio's update format: ``gr.update``)."""
    return {"__type__": "update", **settings}


SKIP = update()  #: leave the output as it is


def outputs(*names: str):
    """Declare the names of a handler's outputs, in the order events list them."""

    def deco(fn):
        fn.outputs = names
        return fn

    return deco


def ordered(result: dict, names) -> tuple:
    """A handler's dict as the tuple an event with outputs ``names`` returns (SKIP where missing)."""
    return tuple(result.get(n, SKIP) for n in names)


def _head_choices(H: int) -> list[str]:
    return ["mean", "max", *map(str, range(H))]


def content_word(trace) -> int | None:
    """The word the per-word views start on: the content word found most surely (not "the", "a", "of")."""
    n = len(trace.words)
    if not n:
        return None
    scores = trace.grounded_scores
    content = [i for i in range(n) if trace.words[i].lower() not in views.FUNCTION_WORDS]
    return max(content or range(n), key=lambda i: scores[i])


class Demo:
    """The page's logic over a :class:`ModelPool`: no gradio here, so tests call it directly."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    # ---- a question -----------------------------------------------------------------------
    def ask(self, image, caption, model=None, lang: str = "en") -> Question:
        return ask(self.pool, image, caption, model, lang)

    def model(self, q: Question | None) -> LoadedModel:
        return model_of(self.pool, q) if q is not None else self.pool.default

    def trace(self, q: Question, method: str = "attention"):
        return trace_of(self.pool, q, method)

    def _controls(self, q: Question, method, layer, heads) -> dict:
        m = self.model(q)
        return checks.controls(m.methods, m.L, m.H, method, layer, heads, q.lang)

    @staticmethod
    def _need(q: Question | None, lang: str = "en") -> Question:
        if q is None:
            raise refuse("ground_first", lang)
        return q

    # ---- Ground -----------------------------------------------------------------------------
    def _ground_view(self, q: Question, method, layer, heads, show_boxes, shown=None):
        kw = self._controls(q, method, layer, heads)
        v = views.ground_view(self.trace(q, kw["method"]), **kw, show_boxes=bool(show_boxes), shown=shown, source_size=q.source_size,
                              lang=q.lang)  # fmt: skip
        return v, kw

    @staticmethod
    def _match(v, lang: str):
        """The match panel: the verdict, or (outside the model's world) no verdict at all."""
        if v.out_of_world:
            return {t("no_verdict", lang): 1.0}
        return {t("describes", lang): v.match_score, t("does_not", lang): 1 - v.match_score}

    @outputs("picture", "legend", "pick", "match", "notice", "table", "data", "question", "pick_css", "ground_export", "banner")
    def ground(self, q: Question, method="attention", layer=None, heads="mean", show_boxes=True, only=None) -> dict:
        """Every word of the caption grounded: the picture (one colour per word), the legend and
        word picker, the match, the notes, the per-word table, the JSON and its download.
        ``only``: the outputs wanted (the API's five); the page's others are not made."""
        v, kw = self._ground_view(q, method, layer, heads, show_boxes)
        out = {"picture": v.picture, "match": self._match(v, q.lang), "notice": v.notice, "table": views.word_frame(v.words, v.out_of_world, q.lang),
               "data": v.data, "question": q}  # fmt: skip
        if only is not None and set(only) <= set(out):  # the API: no legend, word picker or download file
            return out
        shown = [w.label for w in v.words if w.index in set(views.default_shown([w.grounded for w in v.words], v.out_of_world))]
        numbers = {**self.trace(q, kw["method"]).grounding(**kw).to_json(maps=True), **v.data}  # the patch maps too
        return out | {
            "legend": views.legend_html(v.words, [w.index for w in v.words if w.label in shown], q.lang, v.phrases),
            "pick": update(choices=[w.label for w in v.words], value=shown), "pick_css": views.word_css(v.words),
            "ground_export": export(numbers, "grounding"),
            "banner": f"⚠️ {views.notes(self.trace(q), q.lang)[0]}" if v.out_of_world else "",  # said above every tab
        }  # fmt: skip

    @outputs("grounding_json")
    def grounding(self, q: Question, method="attention", layer=None, heads="mean") -> dict:
        """The numbers of a grounding, no picture: what ``Grounder.ground()`` returns, as JSON
        (boxes in the user's image pixels; the API's ``/grounding``)."""
        kw = self._controls(q, method, layer, heads)
        tr = self.trace(q, kw["method"])
        return {"grounding_json": views.ground_numbers(tr, tr.grounding(**kw), q.source_size)}

    @outputs("picture", "legend", "match")
    def redraw(self, q: Question | None, method, layer, heads, show_boxes, picked) -> dict:
        """The Ground picture again for other words, method, layer or heads: no forward pass
        (Grad-CAM's first use adds one forward and one backward pass)."""
        q = self._need(q)
        idx = [int(str(p).split(":", 1)[0]) for p in picked or []]
        v, _ = self._ground_view(q, method, layer, heads, show_boxes, shown=idx)
        return {"picture": v.picture, "legend": views.legend_html(v.words, idx, q.lang, v.phrases), "match": self._match(v, q.lang)}

    # ---- Image -> text ----------------------------------------------------------------------
    @outputs("click_words", "click_data", "click_img", "x_in", "y_in", "click_other")
    def words_at(self, q: Question | None, x, y, method="attention", layer=None, heads="mean") -> dict:
        """Image -> text at pixel (x, y) of the input image: the weight the patch there gives to each word."""
        q = self._need(q)
        fx, fy = checks.pixel(x, y, q.source_size, q.lang)
        return self._patch(q, fx, fy, method, layer, heads)

    def click(self, q: Question | None, index, method="attention", layer=None, heads="mean") -> dict:
        """A click at ``index`` = (x, y) in the shown picture of the Image -> text tab."""
        q = self._need(q)
        if index is None or len(index) != 2:
            raise refuse("click_a_point", q.lang)
        view = views.view_size(q.work.size)
        fx, fy = (float(index[0]) + 0.5) / view[0], (float(index[1]) + 0.5) / view[1]
        if not (0 <= fx <= 1 and 0 <= fy <= 1):
            raise refuse("click_outside", q.lang)
        return self._patch(q, fx, fy, method, layer, heads)

    click.outputs = words_at.outputs

    def _patch(self, q: Question, fx: float, fy: float, method, layer, heads) -> dict:
        kw = self._controls(q, method, layer, heads)
        pw = views.patch_words(self.trace(q), fx, fy, layer=kw["layer"], heads=kw["heads"], source_size=q.source_size)
        w, h = q.source_size
        return {"click_words": dict(pw.weights), "click_data": pw.data, "click_img": pw.picture, "x_in": round(fx * w, 1),
                "y_in": round(fy * h, 1), "click_other": t("other_tokens", q.lang, p=pw.other)}  # fmt: skip

    # ---- Heads & layers, Step by step -----------------------------------------------------------
    @outputs("heads_t2i", "heads_i2t", "heads_data")
    def heads(self, q: Question | None, word=None) -> dict:
        """One word in every (layer, head), both directions; one colour scale per grid."""
        q = self._need(q)
        t2i, i2t, data = views.heads_view(self.trace(q), word, q.lang)
        return {"heads_t2i": t2i, "heads_i2t": i2t, "heads_data": data}

    def _steps(self, q: Question, word, layer, head, direction):
        m = self.model(q)
        layer = checks.whole(layer, "layer", 0, m.L - 1, m.L - 1, q.lang)
        head = checks.whole(head, "head", 0, m.H - 1, 0, q.lang)
        return views.steps_view(m.grounder, self.trace(q), word, layer, head, checks.direction(direction, q.lang), q.lang)

    @outputs("steps_gal", "steps_md", "heads_gal", "steps_data", "steps_plot", "steps_sentence", "scale_plot")
    def steps(self, q: Question | None, word=None, layer=None, head=0, direction="text_to_image", stage=None, temperature=1.0) -> dict:
        """One head's cross-attention, stage by stage, recomputed from the layer's inputs; with
        ``stage``, the interactive figures of that stage too."""
        q = self._need(q)
        s = self._steps(q, word, layer, head, direction)
        out = {"steps_gal": s.stages, "steps_md": s.text, "heads_gal": s.heads, "steps_data": s.data}
        if stage is not None:
            out |= self._figures(q, s, stage, temperature)
        return out

    @outputs("steps_plot", "steps_sentence", "scale_plot")
    def step_figures(self, q: Question | None, word, layer, head, direction, stage, temperature) -> dict:
        """Another stage or temperature, or the tab opened: the figures only (the numbers are
        kept in the trace). Before any question there is nothing to draw."""
        if q is None:
            return {}
        return self._figures(q, self._steps(q, word, layer, head, direction), stage, temperature)

    @staticmethod
    def _figures(q: Question, s, stage, temperature) -> dict:
        fig, sentence, scaling = views.step_figures(s.steps, stage, s.word, checks.temperature(temperature, q.lang), q.lang)
        return {"steps_plot": fig, "steps_sentence": sentence, "scale_plot": scaling}

    # ---- Positions ------------------------------------------------------------------------------
    @outputs("pe_img", "sim_img", "dims_plot", "grid_img", "pos_data")
    def positions(self, q: Question | None, n=MAX_TOKENS, dim=None, positions="", row=None, col=None, *, work=None,
                  model: LoadedModel | None = None, lang: str | None = None, clamp: bool = False, draw: bool = True) -> dict:  # fmt: skip
        """Sinusoidal encodings: PE, PE·PEᵀ, a few dimensions across positions, and the 2-D
        encoding of the patch grid of the question's image (or ``work``, or the model's default)."""
        m = model or self.model(q)
        lang = lang or (q.lang if q is not None else "en")
        work = q.work if q is not None else work
        g = m.grounder
        n = checks.whole(n, "n", 1, 1024, MAX_TOKENS, lang)
        dim = checks.whole(dim, "dim", 2, 1024, min(g.model.config.dim, 256), lang)
        grid = recompute.model_grid(g, work)
        row = None if row in (None, "") else checks.whole(row, "row", 0, 10_000, 0, lang)
        col = None if col in (None, "") else checks.whole(col, "col", 0, 10_000, 0, lang)
        if clamp:  # the page's sliders may still hold a bigger image's grid
            row, col = None if row is None else min(row, grid[0] - 1), None if col is None else min(col, grid[1] - 1)
        p = views.positions_view(g, work, n, dim, checks.positions(positions, lang), row, col, lang, figures=draw)
        return {"pe_img": p.pe, "sim_img": p.similarity, "dims_plot": p.dims, "grid_img": p.grid_picture, "pos_data": p.data}

    @outputs(*positions.outputs)
    def positions_on_page(self, q: Question | None, n, dim, positions, row, col) -> dict:
        """The Positions tab's controls moved: the question's grid (sliders clamped to it), or the default model's."""
        return self.positions(q, n, dim, positions, row, col, clamp=True)

    @outputs("pos_off_img", "pos_off_md")
    def positions_off(self, q: Question | None) -> dict:
        """The question again without positional encodings: one more forward pass, asked for."""
        q = self._need(q)
        on = self.trace(q)
        off = recompute.without_positions(self.model(q).grounder).trace(on.image, on.caption.text)  # the second question
        picture, text, _ = views.positions_off_view(on, off, q.lang)
        return {"pos_off_img": picture, "pos_off_md": text}

    # ---- after a grounding: every other tab from the same trace (no forward pass) -----------------
    @outputs("click_img", "click_words", "click_data", "click_other", "x_in", "y_in", "heads_word", "heads_t2i", "heads_i2t", "heads_data", "steps_word",
             "steps_gal", "steps_md", "heads_gal", "steps_data", "steps_plot", "steps_sentence", "scale_plot", "pos_row", "pos_col",
             "pe_img", "sim_img", "grid_img", "pos_data", "pos_off_img", "pos_off_md")  # fmt: skip
    def fill_tabs(self, q: Question | None, layer, head, direction, stage, temperature, n, dim, positions, tab="ground") -> dict:
        """The other tabs for a new question, read from its trace: Image -> text at the patch
        the content word looks at most, the word views on that word; the interactive figures
        of Step by step and Positions only if that tab is shown (else when it is opened)."""
        if q is None:
            return {}
        tr = self.trace(q)
        labels = views.labels(tr.words)
        w = content_word(tr)
        first = labels[w] if w is not None else None
        out = {"heads_word": update(choices=labels, value=first), "steps_word": update(choices=labels, value=first)}
        out |= self.heads(q, first)
        out |= self.steps(q, first, layer, head, direction, stage if tab == "steps" else None, temperature)
        gh, gw = tr.grid
        if w is not None:  # Image -> text: the patch where the word looks most, already asked
            r, c = divmod(int(tr.grounding().patch_maps[w].argmax()), gw)
            out |= self._patch(q, (c + 0.5) / gw, (r + 0.5) / gh, "attention", None, "mean")
        pos = self.positions(q, n, dim, positions, gh // 2, gw // 2, draw=tab == "positions")
        out |= {k: v for k, v in pos.items() if k != "dims_plot"}
        out |= {"pos_row": update(maximum=gh - 1, value=gh // 2), "pos_col": update(maximum=gw - 1, value=gw // 2),
                "pos_off_img": None, "pos_off_md": t("pos_off_hint", q.lang)}  # fmt: skip
        return out

    # ---- the first answer: the page opens on a relational example, grounded -----------------------
    def first_outputs(self) -> tuple[str, ...]:
        """The outputs of :meth:`first`: the inputs, the page's words in its language, every tab."""
        return ("lang", "in_img", "in_txt", "model_info", "world_md", "model_pick", "method", "heads", "steps_stage", "examples_en", "examples_zh",
                *dict.fromkeys([*self.ground.outputs, *self.fill_tabs.outputs]))  # fmt: skip

    def first(self, lang: str = "en") -> dict:
        """The page as it opens, in ``lang``: the example scene and caption (``examples.first_scene``)
        grounded, every tab filled from that one trace, the controls' words in ``lang``."""
        from mmattn.demo.examples import FIRST_CAPTION, first_scene

        m = self.pool.default
        out = {"lang": lang, "model_info": self.model_info(m, lang), "world_md": m.world(lang),
               "model_pick": update(choices=self.pool.names(lang), value=m.choice.label),
               "method": update(choices=self.method_choices(m, lang), value="attention"),
               "heads": update(choices=self.head_choices(m, lang), value="mean"), "steps_stage": update(choices=stage_choices(lang)),
               "examples_en": update(visible=lang != "zh"), "examples_zh": update(visible=lang == "zh")}  # fmt: skip
        caption = FIRST_CAPTION[lang if lang in m.grounder.processor.languages else m.grounder.processor.languages[0]]
        image = first_scene()
        q = self.ask(image, caption, m.choice.label, lang)
        out |= {"in_img": update(value=image, label=t("image", lang)), "in_txt": update(value=caption, label=self.caption_label(m, lang))}
        out |= self.ground(q)
        out |= self.fill_tabs(q, None, 0, "text_to_image", "scores", 1.0, MAX_TOKENS, None, "")
        return out

    # ---- the model picker -------------------------------------------------------------------------
    def caption_label(self, m: LoadedModel, lang: str) -> str:
        key = {("en", "zh"): "caption_en_zh", ("zh", "en"): "caption_zh_en"}.get(tuple(m.grounder.processor.languages), "caption_en")
        return t(key, lang)

    def model_info(self, m: LoadedModel, lang: str) -> str:
        problem = self.pool.startup_problem(lang)
        return m.info(lang) + (f"\n\n⚠️ {views.md_text(problem)}" if problem else "")

    @outputs("model_info", "world_md", "in_txt", "method", "layer", "heads", "steps_layer", "steps_head", "question", "model_pick", "status")
    def switch_model(self, label, lang: str = "en") -> dict:
        """The page's controls for another model; if it cannot be loaded, one line says why and
        the page goes back to the default model."""
        problem = ""
        try:
            m = self.pool.get(label, lang)
        except ValueError as e:  # back to the default model, whose controls the page then shows
            m, problem = self.pool.default, f"⚠️ {views.md_text(getattr(e, 'message', str(e)))}"
        layers = [(str(i), i) for i in range(m.L)]
        return {
            "model_info": self.model_info(m, lang), "world_md": m.world(lang), "in_txt": update(label=self.caption_label(m, lang)),
            "method": update(choices=self.method_choices(m, lang), value="attention"), "layer": update(choices=layers, value=m.L - 1),
            "heads": update(choices=self.head_choices(m, lang), value="mean"), "steps_layer": update(choices=layers, value=m.L - 1),
            "steps_head": update(choices=[(str(h), h) for h in range(m.H)], value=0), "question": None,
            "model_pick": update(choices=self.pool.names(lang), value=m.choice.label), "status": problem,
        }  # fmt: skip

    @staticmethod
    def method_choices(m: LoadedModel, lang: str) -> list[tuple[str, str]]:
        return [(t(f"method_{x}", lang), x) for x in m.methods]

    @staticmethod
    def head_choices(m: LoadedModel, lang: str) -> list[tuple[str, str]]:
        return [(t("mean", lang), "mean"), (t("max", lang), "max"), *((str(h), str(h)) for h in range(m.H))]

