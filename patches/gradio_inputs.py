"""gradio 6.31 answers a wrongly typed API input with a generic error and a logged traceback.

A value that a component cannot preprocess (``x="abc"`` for a ``gr.Number``, a list for a
``gr.Textbox``) raises inside ``Component.preprocess``; ``Blocks.preprocess_data`` wraps it
in a ``ComponentProcessingError``, logs its traceback, and, with ``show_error=False``, the
client only learns that "the upstream Gradio app has raised an exception".

:func:`guard` wraps one component's ``preprocess`` so that such a value becomes a
``gr.Error`` naming the input and what it expects (gradio passes ``gr.Error`` through to the
client as it is, and logs no traceback for it).

:func:`require_inputs` does the same for a request that leaves inputs out.

:func:`check_inputs` checks every value of a request against its component before gradio
reads it (gradio coerces silently: a caption of ``12345``, ``["a", "red"]`` or ``true`` was
grounded, ``show_boxes: "no"`` counted as true; an image given as a path string or a number,
or a file never uploaded, got ``{"error": null}`` and a logged traceback; a choice out of the
list got "Value … is not in the list of choices" without the input's name): a wrong type or
a value out of range is a ``gr.Error`` naming the input, what was given (cut to
:data:`SHOWN` characters) and what is allowed.

Upstream check: ``tests/test_patches.py`` fails once gradio's own errors for a bad number
and for missing inputs reach the client with a message, and once a Textbox refuses a number.
"""

from __future__ import annotations

import inspect
import json
import logging
import math

import gradio as gr

SHOWN = 80  #: characters of a bad value shown in its error message


def shown(value, limit: int = SHOWN) -> str:
    """``value`` as the message shows it: JSON (a string quoted), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=lambda o: type(o).__name__)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        n = len(value) if isinstance(value, (str, list, dict)) else len(text)
        text = text[:limit] + f"… ({n:,} {'characters' if isinstance(value, str) else 'items' if isinstance(value, (list, dict)) else 'characters'})"
    return text


def guard(component, name: str, expects: str):
    """Give ``component`` a name for error messages (:func:`check_inputs`) and make it turn a
    value it cannot read into ``gr.Error("<name> must be <expects> ...")``."""
    original = component.preprocess
    component._mmattn_input = (name, expects)

    def preprocess(payload):
        try:
            return original(payload)
        except Exception as e:  # gradio's gr.Error too: it does not name the input
            detail = f" ({e.message})" if isinstance(e, gr.Error) and getattr(e, "message", None) else ""
            raise refuse(f"{name} must be {expects} (got {shown(payload)}){detail}.", title="Bad input") from None

    component.preprocess = preprocess
    return component


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choices(component) -> list:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in (getattr(component, "choices", None) or [])]


def problem(component, value, name: str) -> str | None:
    """What is wrong with the raw JSON ``value`` sent for ``component`` (None if nothing):
    a message that names the input (``name``), shows the value and says what is allowed."""
    if value is None:
        return None  # left empty: the handler uses its default or says what is missing
    got = shown(value)
    if isinstance(component, (gr.Radio, gr.Dropdown)) and not getattr(component, "allow_custom_value", False):
        values = _choices(component)
        if not any(value == v and type(value) is type(v) or (_number(value) and _number(v) and value == v) for v in values):
            return f"{name} {got} is not in the list of choices: {', '.join(shown(v, 40) for v in values)}."
        return None
    if isinstance(component, gr.Dropdown):  # a custom value: text or a number
        return None if isinstance(value, str) or _number(value) else f"{name} must be text or a number (got {got})."
    if isinstance(component, gr.Checkbox):
        return None if isinstance(value, bool) else f"{name} must be true or false (got {got})."
    if isinstance(component, (gr.Slider, gr.Number)):
        lo, hi = getattr(component, "minimum", None), getattr(component, "maximum", None)
        span = f" {lo:g}..{hi:g}" if lo is not None and hi is not None else f" >= {lo:g}" if lo is not None else ""
        if not _number(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{name} must be a number{span} (got {got})."
        return None
    if isinstance(component, gr.Textbox):
        return None if isinstance(value, str) else f"{name} must be text (got {got})."
    if isinstance(component, gr.Image):
        src = value.get("path") or value.get("url") if isinstance(value, dict) else None
        if not isinstance(src, str):
            return (f"{name} must be an uploaded file, {{\"path\": <what /gradio_api/upload returned>, \"meta\": "
                    f"{{\"_type\": \"gradio.FileData\"}}}}, or {{\"url\": \"data:image/png;base64,...\"}} (got {got}).")  # fmt: skip
    return None


def _name(component, param: str | None) -> str:
    registered = getattr(component, "_mmattn_input", None)
    if registered:
        return registered[0]
    if isinstance(component, gr.Image):
        return "The image"
    return f"The {param}" if param else "An input"


def check_inputs(blocks) -> None:
    """Make ``blocks`` check each value of every request against its component before gradio
    reads it (see the module doc); a file that was never uploaded and any other value gradio
    cannot read are named too. Done on the instance."""
    from gradio.exceptions import InvalidPathError

    original = blocks.preprocess_data

    async def preprocess_data(block_fn, inputs, state, *args, **kwargs):
        try:
            params = list(inspect.signature(block_fn.fn).parameters)
        except (TypeError, ValueError):
            params = []
        names = []
        for i, block in enumerate(block_fn.inputs[: len(inputs)]):
            if block.stateful or i in getattr(block_fn, "component_prop_inputs", ()):
                names.append(None)
                continue
            if state is not None and block._id in state:
                block = state[block._id]  # this session's copy (its choices may have changed)
            names.append(_name(block, params[i] if i < len(params) else None))
            wrong = problem(block, inputs[i], names[-1])
            if wrong:
                raise refuse(wrong, title="Bad input")
        try:
            return await original(block_fn, inputs, state, *args, **kwargs)
        except gr.Error:
            raise
        except InvalidPathError:
            raise refuse("The image's file was not uploaded to this server: upload it first (POST /gradio_api/upload) "
                         "and send the path that returns.", title="Bad input") from None  # fmt: skip
        except Exception as e:  # pydantic's ValidationError of a malformed file, ...
            which = ", ".join(n for n in names if n) or "an input"
            raise refuse(f"Could not read the request's values ({which}): {type(e).__name__}: {shown(str(e))}.",
                         title="Bad input") from None  # fmt: skip

    blocks.preprocess_data = preprocess_data


def refuse(message: str, title: str) -> gr.Error:
    """A bad upload or value: a message for the user, one log line, no traceback."""
    logging.getLogger("mmattn.app").info("refused (%s): %s", title, message)
    return gr.Error(message, title=title, duration=5, print_exception=False)


def require_inputs(blocks) -> None:
    """Make ``blocks`` answer a request that sends too few values (raw HTTP leaves inputs out;
    gradio_client fills the defaults) with a ``gr.Error`` naming what is missing, rather than
    gradio's ``ValueError`` ("didn't receive enough input values"), which reaches the client
    as ``{"error": null}`` with a logged traceback. Done on the instance."""
    original = blocks.validate_inputs

    def validate_inputs(block_fn, inputs):
        try:
            original(block_fn, inputs)
        except ValueError:
            try:
                names = list(inspect.signature(block_fn.fn).parameters)[: len(block_fn.inputs)]
            except (TypeError, ValueError):
                names = [str(b) for b in block_fn.inputs]
            missing = ", ".join(names[len(inputs) :])
            raise refuse(f"/{block_fn.api_name or block_fn.name} needs {len(block_fn.inputs)} values ({', '.join(names)}); "
                         f"got {len(inputs)}: send {missing} too (gradio_client fills in the defaults).", title="Missing inputs") from None  # fmt: skip

    blocks.validate_inputs = validate_inputs
