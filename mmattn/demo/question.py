"""One question the page asked (an image and a caption, for one model, in one language) and
its trace: every view, click and control is a reading of that one trace."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from mmattn.api.grounder import BACKWARD_METHODS
from mmattn.api.trace import Trace
from mmattn.demo import checks
from mmattn.demo.pool import LoadedModel, ModelPool
from mmattn.demo.tracecache import image_digest


@dataclass
class Question:
    """What the page asked last (kept per browser session): the image as grounded, its digest,
    the upload's size and the caption. Every view reads its trace from the model's cache."""

    work: Image.Image
    digest: str
    source_size: tuple[int, int]
    caption: str
    model: str  #: the model's label (mmattn.backends.catalog)
    lang: str = "en"  #: the language of the words made on the server ("en" or "zh": the browser's)


def page_language(headers) -> str:
    """"zh" when the browser asks for Chinese first (its Accept-Language header), else "en"."""
    headers = headers or {}
    first = str(headers.get("accept-language", "")).split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def ask(pool: ModelPool, image, caption, model=None, lang: str = "en") -> Question:
    """The question (image, caption) for model ``model``, checked; nothing is run yet."""
    m = pool.get(model, lang)
    src = checks.image(image, lang)
    text = checks.caption(caption, m.grounder.processor, lang)
    work = checks.work_image(src)
    return Question(work, image_digest(work), src.size, text, m.choice.label, lang)


def model_of(pool: ModelPool, q: Question) -> LoadedModel:
    return pool.get(q.model, q.lang)


def trace_of(pool: ModelPool, q: Question, method: str = "attention") -> Trace:
    """The trace of ``q``: from its model's cache, or one forward pass (plus a backward pass
    for Grad-CAM and LeGrad)."""
    return model_of(pool, q).cache.get(q.work, q.caption, gradients=method in BACKWARD_METHODS, digest=q.digest)[1]
