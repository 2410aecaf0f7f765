"""The Hugging Face hub, asked as little as possible: one file of a repo from the local cache
without a request, or downloaded only once the hub answered (:func:`hub_reachable`), with
one-line :class:`~mmattn.io.checkpoint.CheckpointError` messages that say what to do.

Every loader that takes a hub id uses this (the backend registry reads a hub id's
``config.json`` through :func:`hub_file` to choose the backend; the CLIP backend loads its
files through it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

from mmattn.io.checkpoint import CheckpointError

log = logging.getLogger(__name__)


def is_hub_id(name: str) -> bool:
    """``name`` looks like a hub id (``owner/name``), not a local path."""
    return not os.path.isdir(name) and os.sep not in name.replace("/", "", 1) and not name.startswith((".", "~", "/"))


HUB_TIMEOUT = 2.0  #: seconds given to the hub to answer before it counts as unreachable (DNS included)
_HUB_STATE: dict[str, tuple[float, bool]] = {}  #: endpoint -> (when checked, reachable), remembered a minute


def _probe_hub(endpoint: str, timeout: float) -> bool:
    """One HEAD request to the hub's front page, no retries: does it answer?"""
    from huggingface_hub.utils import get_session

    return get_session().head(endpoint, timeout=timeout).status_code < 400


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Can the Hugging Face hub be reached? ``False`` at once under ``HF_HUB_OFFLINE=1``;
    otherwise one request without retries that gets ``timeout`` seconds in all (on a daemon
    thread, so that a hanging DNS lookup cannot hold the caller). Remembered for a minute."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = constants.ENDPOINT
    checked = _HUB_STATE.get(endpoint)
    if checked is not None and time.monotonic() - checked[0] < 60:
        return checked[1]
    answer: list[bool] = []

    def probe():
        try:
            answer.append(_probe_hub(endpoint, timeout))
        except Exception:  # no network, DNS failure, proxy refusal, timeout: unreachable
            answer.append(False)

    worker = threading.Thread(target=probe, name="mmattn-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    reachable = bool(answer and answer[0])
    _HUB_STATE[endpoint] = (time.monotonic(), reachable)
    if not reachable:
        log.info("the Hugging Face hub at %s did not answer within %.1f s: using the local cache only", endpoint, timeout)
    return reachable


def _offline_error(name: str) -> CheckpointError:
    return CheckpointError(
        f"{name!r} is not in the Hugging Face cache and the hub cannot be reached (no network, or HF_HUB_OFFLINE=1): "
        f"run python -c \"import mmattn; mmattn.Grounder.from_pretrained('{name}')\" once with network access, "
        "or pass a local checkpoint folder (config.json, model.safetensors, tokenizer and preprocessor files)"
    )


def hub_file(name: str, filename: str, required: bool = True) -> str | None:
    """One file of hub repo ``name``: from the local cache if it is there (read without any
    request), else downloaded when the hub answers (:func:`hub_reachable`); errors say what
    to do, in one line, without the hub library's retries (about 30 s without a network) or
    chained tracebacks."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    try:
        cached = huggingface_hub.try_to_load_from_cache(repo_id=name, filename=filename)
    except HFValidationError:
        raise CheckpointError(
            f"{name!r} is neither a local folder nor a hub id like 'openai/clip-vit-base-patch16': check the path"
        ) from None
    if isinstance(cached, str):
        return cached
    if cached is not None and not required:  # the cache knows that the repo has no such file
        return None
    if not hub_reachable():
        if not required:  # an optional file that is not cached: the repo was cached without it
            return None
        raise _offline_error(name) from None
    try:
        return huggingface_hub.hf_hub_download(repo_id=name, filename=filename, etag_timeout=HUB_TIMEOUT)
    except EntryNotFoundError:
        if not required:
            return None
        raise CheckpointError(f"the hub repo {name!r} has no {filename}: is it a CLIP or mmattn checkpoint?") from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"no model {name!r} on the Hugging Face hub (or it is private: log in with `hf auth login`); "
            "for a local checkpoint, check the folder's path"
        ) from None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_json(file: str | os.PathLike) -> dict:
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file} is not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} is not a JSON object")
    return data
