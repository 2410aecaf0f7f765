"""The page's public API (``/ground``, ``/grounding``, ``/words_at``, ``/heads``, ``/steps``,
``/positions`` through gradio_client): each endpoint makes a question from an image and a caption and asks
the page's own handler, keeping the outputs the API has always returned.

The signatures are the API's (gradio names the parameters after them); ``app.py`` wires each
to its hidden trigger and turns a :class:`~mmattn.demo.errors.UserError` into a gradio error."""

from __future__ import annotations

from mmattn.demo import checks
from mmattn.demo.handlers import Demo, ordered
from mmattn.models.tokenizer import MAX_TOKENS

#: the API's inputs (the page's component names) and outputs, per endpoint
INPUTS = {
    "ground": ("in_img", "in_txt", "method", "layer", "heads", "boxes", "model_pick"),
    "grounding": ("in_img", "in_txt", "method", "layer", "heads", "model_pick"),
    "words_at": ("in_img", "in_txt", "x_in", "y_in", "method", "layer", "heads", "model_pick"),
    "heads": ("in_img", "in_txt", "heads_word", "model_pick"),
    "steps": ("in_img", "in_txt", "steps_word", "steps_layer", "steps_head", "steps_dir", "model_pick"),
    "positions": ("in_img", "pos_n", "pos_dim", "pos_list", "pos_row", "pos_col", "model_pick"),
}
OUTPUTS = {
    "ground": ("picture", "table", "match", "notice", "data"),
    "grounding": Demo.grounding.outputs,
    "words_at": ("click_words", "click_data"),
    "heads": Demo.heads.outputs,
    "steps": ("steps_gal", "steps_md", "heads_gal", "steps_data"),
    "positions": Demo.positions.outputs,
}


class PublicAPI:
    """The six endpoints over a :class:`Demo` (answers in English: an API has no page language)."""

    def __init__(self, demo: Demo, lang: str = "en"):
        self.demo, self.lang = demo, lang

    def endpoints(self) -> dict:
        """api name -> function."""
        return {"ground": self.ground, "grounding": self.grounding, "words_at": self.words_at, "heads": self.heads, "steps": self.steps, "positions": self.positions}

    def ground(self, image, caption, method="attention", layer=None, heads="mean", show_boxes=True, model=None):
        """Every word's map (one colour each), the per-word table, the match, notes, JSON (boxes in the image's pixels)."""
        q = self.demo.ask(image, caption, model, self.lang)
        return ordered(self.demo.ground(q, method, layer, heads, show_boxes, only=OUTPUTS["ground"]), OUTPUTS["ground"])

    def grounding(self, image, caption, method="attention", layer=None, heads="mean", model=None):
        """The numbers alone, as ``Grounder.ground()`` gives them: words, found, scores, boxes (in the image's pixels), match, phrases, notes."""
        q = self.demo.ask(image, caption, model, self.lang)
        return self.demo.grounding(q, method, layer, heads)["grounding_json"]

    def words_at(self, image, caption, x, y, method="attention", layer=None, heads="mean", model=None):
        """Image -> text at pixel (x, y) of the input image: the weight the patch there gives to each word."""
        q = self.demo.ask(image, caption, model, self.lang)
        return ordered(self.demo.words_at(q, x, y, method, layer, heads), OUTPUTS["words_at"])

    def heads(self, image, caption, word=None, model=None):
        """One word in every (layer, head): text -> image and image -> text. One colour scale per grid."""
        return ordered(self.demo.heads(self.demo.ask(image, caption, model, self.lang), word), OUTPUTS["heads"])

    def steps(self, image, caption, word=None, layer=None, head=0, direction="text_to_image", model=None):
        """One head's cross-attention, stage by stage, recomputed from the layer's inputs."""
        q = self.demo.ask(image, caption, model, self.lang)
        return ordered(self.demo.steps(q, word, layer, head, direction), OUTPUTS["steps"])

    def positions(self, image=None, n=MAX_TOKENS, dim=None, positions="", row=None, col=None, model=None):
        """Sinusoidal encodings: PE, PE·PEᵀ, a few dimensions across positions, the 2-D encoding of the patch grid."""
        work = checks.work_image(checks.image(image, self.lang)) if image is not None else None
        m = self.demo.pool.get(model, self.lang)
        return ordered(self.demo.positions(None, n, dim, positions, row, col, work=work, model=m, lang=self.lang), OUTPUTS["positions"])
