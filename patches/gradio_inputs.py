"""gradio 6.31 answers a wrongly typed API input with a generic error and a logged traceback.

A value that a component cannot preprocess (``x="abc"`` for a ``gr.Number``, a list for a
``gr.Textbox``) raises inside ``Component.preprocess``; ``Blocks.preprocess_data`` wraps it
in a ``ComponentProcessingError``, logs its traceback, and, with ``show_error=False``, the
client only learns that "the upstream Gradio app has raised an exception".

:func:`guard` wraps one component's ``preprocess`` so that such a value becomes a
``gr.Error`` naming the input and what it expects (gradio passes ``gr.Error`` through to the
client as it is, and logs no traceback for it).

:func:`require_inputs` does the same for a request that leaves inputs out.

Upstream check: ``tests/test_patches.py`` fails once gradio's own errors for a bad number
and for missing inputs reach the client with a message.
"""

from __future__ import annotations

import inspect
import logging

import gradio as gr


def guard(component, name: str, expects: str):
    """Make ``component`` turn a value it cannot read into ``gr.Error("<name> must be <expects> ...")``."""
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception:
            raise refuse(f"{name} must be {expects} (got {str(payload)[:40]!r}).", title="Bad input") from None

    component.preprocess = preprocess
    return component


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
