"""The words people read, in English and Chinese: ``t(key, lang, **values)``.

All the text of the page and of its views lives in two modules with the same keys and the
same placeholders, one per language: :mod:`mmattn.teach.text_en` and
:mod:`mmattn.teach.text_zh` (a test holds them to that). A value is a ``str.format``
template (``{name}`` filled in from ``values``; ``{{`` and ``}}`` are literal braces), or a
list of them (a table's headers).
"""

from __future__ import annotations

import string

from mmattn.teach.text_en import TEXT as EN
from mmattn.teach.text_zh import TEXT as ZH

LANGS = ("en", "zh")
TEXTS = {"en": EN, "zh": ZH}
#: the stages in the order a learner walks them, with one numbering everywhere (the step control,
#: the stage table, the stage pictures): Q, Kᵀ and V first, then the four steps of attention
STAGE_NAMES = ("q", "k", "v", "scores", "scaled", "weights", "head_output", "concat", "output")


def check_lang(lang: str) -> str:
    """``lang`` if it is one of LANGS, else a ValueError naming it."""
    if lang not in TEXTS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)} (got {lang!r})")
    return lang


def t(key: str, lang: str = "en", **values) -> str:
    """The text ``key`` in ``lang`` ("en" or "zh"), its placeholders filled from ``values``.

    >>> t("pos_n", "zh")
    '位置数 n'
    >>> t("other_tokens", "en", p=0.25).split(":")[0]
    'The other **25%** of this patch\'s attention goes to tokens that are not words'
    """
    table = TEXTS[check_lang(lang)]
    if key not in table:
        raise KeyError(f"no text {key!r} (see mmattn/teach/text_en.py)")
    value = table[key]
    if isinstance(value, list):
        return [v.format(**values) for v in value]
    return value.format(**values)


def stage_label(name: str, lang: str = "en") -> str:
    """"4 · S = Q·Kᵀ": the stage's number and its short name (``stage_<name>``)."""
    return f"{STAGE_NAMES.index(name) + 1} · {t('stage_' + name, lang)}"


def stage_choices(lang: str = "en") -> list[tuple[str, str]]:
    """(label, name) of every stage, for the step control."""
    return [(stage_label(n, lang), n) for n in STAGE_NAMES]


def placeholders(template: str | list) -> set[str]:
    """The names a template fills in: ``{"p"}`` for ``"{p:.0%} of it"``."""
    parts = template if isinstance(template, list) else [template]
    return {name.split(".")[0].split("[")[0] for p in parts for _, name, _, _ in string.Formatter().parse(p) if name}


def page_table(lang: str) -> dict[str, str]:
    """The texts without placeholders, ready to show (for ``gr.I18n``: the browser picks the
    language)."""
    table = {k: v.format() for k, v in TEXTS[check_lang(lang)].items() if isinstance(v, str) and not placeholders(v)}
    # gradio 6.31 announces a finished event to screen readers as "common.complete": its own locales lack the key
    return table | {f"stage_label_{n}": stage_label(n, lang) for n in STAGE_NAMES} | {"common.complete": table["done"]}


def translations() -> dict[str, dict[str, str]]:
    """``gr.I18n``'s keyword arguments: a browser's locale is matched by its full code or its language."""
    en, zh = page_table("en"), page_table("zh")
    return {"en": en, "zh": zh, "zh-CN": zh, "zh-TW": zh}
