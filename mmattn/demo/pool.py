"""The models the page offers: :class:`LoadedModel` (a grounder, its trace cache and what the
page says about it) and :class:`ModelPool` (the default one loaded at start-up, others loaded
when picked, the least recently used dropped)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from mmattn.api.grounder import DEFAULT_MODEL, Grounder
from mmattn.backends import catalog
from mmattn.backends.catalog import ModelChoice
from mmattn.backends.shapes.vocabulary import model_world
from mmattn.demo.errors import refuse
from mmattn.demo.tracecache import TraceCache
from mmattn.io.checkpoint import CheckpointError
from mmattn.teach.text import t

log = logging.getLogger("mmattn.demo")
CACHE_SIZE = 32  #: traces kept per model (one per image content, caption and Grad-CAM or not)


@dataclass
class LoadedModel:
    """A loaded model with its trace cache, and what the page says about it."""

    choice: ModelChoice
    grounder: Grounder
    cache: TraceCache

    @classmethod
    def load(cls, choice: ModelChoice, precision: str = "auto", cache_size: int = CACHE_SIZE) -> LoadedModel:
        g = catalog.load(choice, precision=precision)
        return cls(choice, g, TraceCache(g, cache_size))

    @property
    def L(self) -> int:
        return self.grounder.num_layers

    @property
    def H(self) -> int:
        return self.grounder.num_heads

    @property
    def methods(self) -> list[str]:
        return list(self.grounder.methods)

    def languages(self, lang: str = "en") -> str:
        """The languages its captions may be in, in words ("English or Chinese")."""
        return t("or", lang).join(t(f"lang_{x}", lang) for x in self.grounder.processor.languages)

    def name(self, lang: str = "en") -> str:
        """The model's name in the page's language (its label stays the picker's value)."""
        c = self.choice
        return model_name(c, lang)

    def info(self, lang: str = "en") -> str:
        """One Markdown paragraph: the model's size and what it reads."""
        g, p = self.grounder, self.grounder.processor
        return t("model_facts", lang, name=self.name(lang).replace("`", ""), backend=g.backend, L=self.L, H=self.H,
                 dim=g.model.config.dim, size=p.image_size, patch=p.patch_size, languages=self.languages(lang),
                 tokens=p.max_tokens - 2)  # fmt: skip

    def world(self, lang: str = "en") -> str:
        """What the model knows (the shapes world), or what it is for (a photo backend)."""
        if not self.grounder.checks_world:
            return t("world_photo", lang, backend=self.grounder.backend, languages=self.languages(lang))
        return model_world(self.grounder.tokenizer).describe(lang)


def model_name(choice: ModelChoice, lang: str = "en") -> str:
    """A catalogue entry's name in ``lang``: "随附：形状世界（英文、中文）", "文件夹：tiny" ..."""
    if choice.kind == "shipped":
        return t("model_shipped", lang)
    rest = choice.label.split(": ", 1)[-1]
    kind = "missing" if choice.label.startswith("missing:") else choice.kind
    return t(f"model_{kind}", lang, name=rest)


class ModelPool:
    """The models the page offers (``mmattn.backends.catalog``): the default one loaded at
    start-up, others loaded when picked (at most ``keep`` of them at once besides the default,
    the least recently used dropped), each failure a one-line message."""

    def __init__(self, default: LoadedModel, choices: list[ModelChoice], keep: int = 2, precision: str = "auto",
                 startup_problem: dict | None = None):  # fmt: skip
        self.default, self.keep, self.precision = default, keep, precision
        self.choices = {c.label: c for c in choices} | {default.choice.label: default.choice}
        self.loaded: dict[str, LoadedModel] = {default.choice.label: default}
        self._startup_problem = startup_problem  #: why the model asked for at start-up is not served: {"requested", "why"}
        self.lock = threading.Lock()

    def get(self, label=None, lang: str = "en") -> LoadedModel:
        """The model ``label`` (default: the default one), loaded on first use."""
        label = label or self.default.choice.label
        with self.lock:
            if label in self.loaded:
                self.loaded[label] = self.loaded.pop(label)  # most recently used last
                return self.loaded[label]
            if label not in self.choices:
                raise refuse("unknown_model", lang, "model", got=repr(str(label)[:60]), choices=", ".join(self.choices))
            choice = self.choices[label]
        try:
            model = LoadedModel.load(choice, self.precision)
        except CheckpointError as e:
            raise refuse("model_unavailable", lang, "model_unavailable", name=choice.label, why=str(e)) from None
        with self.lock:
            self.loaded[label] = model
            extra = [k for k in self.loaded if k != self.default.choice.label]
            for k in extra[: max(0, len(extra) - self.keep)]:
                del self.loaded[k]
        return model

    def startup_problem(self, lang: str = "en") -> str:
        """Why MMATTN_MODEL is not the model served ("" if it is)."""
        return t("err_startup", lang, **self._startup_problem) if self._startup_problem else ""

    def names(self, lang: str = "en") -> list[tuple[str, str]]:
        """(name in ``lang``, label) of every model offered, for the picker."""
        return [(model_name(c, lang), label) for label, c in self.choices.items()]

    @classmethod
    def from_environment(cls, env=os.environ) -> ModelPool:
        """MMATTN_MODEL selects the default model (a folder or hub id; the shipped one if it
        cannot be loaded, and ``startup_problem`` says why), MMATTN_MODELS more to offer
        (comma-separated), MMATTN_PRECISION the arithmetic (default auto)."""
        precision = env.get("MMATTN_PRECISION", "auto")
        requested = env.get("MMATTN_MODEL")
        problem = None
        try:
            default = LoadedModel.load(catalog.describe(requested or str(DEFAULT_MODEL)), precision)
        except CheckpointError as e:  # the app keeps serving: the shipped model, and the page says why
            problem = {"requested": requested, "why": str(e)}
            log.warning("MMATTN_MODEL=%s is unavailable (%s); serving the shipped model instead", requested, e)
            default = LoadedModel.load(catalog.describe(str(DEFAULT_MODEL)), precision)
        extra = [m.strip() for m in env.get("MMATTN_MODELS", "").split(",") if m.strip()] + ([requested] if requested else [])
        return cls(default, catalog.model_choices(extra), precision=precision, startup_problem=problem)
