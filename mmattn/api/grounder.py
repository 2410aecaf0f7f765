"""The grounding API: ``Grounder.from_pretrained().ground(image, caption)``.

A :class:`Grounder` is a model plus its :class:`~mmattn.processor.Processor`. Every question
goes through one forward pass, recorded as a :class:`~mmattn.trace.Trace`
(:meth:`Grounder.trace`); a :class:`~mmattn.result.Grounding` (maps, flags, boxes) is read
from the trace (:meth:`Trace.grounding`), and so is every explanation and demo view.

Index letters: B batch, T tokens, P patches (= gh * gw), H heads, L fusion layers, D width.

Maps are on **one scale across the words of a caption**: every method's per-patch values are
divided by the largest value of any word, so a word that looks everywhere stays faint next
to a word that looks at one object (never min-max per word, which makes everything look
confident).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mmattn.api import registry
from mmattn.api.backend import WorldVerdict
from mmattn.api.grounding import Grounding
from mmattn.api.image import load_image
from mmattn.api.inputs import check_heads, check_layer, check_method
from mmattn.api.precision import arithmetic, check_precision
from mmattn.api.processor import Processor
from mmattn.api.trace import (
    BACKWARD_METHODS,
    DEFAULT_LAYER,
    GROUNDED_THRESHOLD,
    METHODS,
    AttentionInputs,
    Trace,
    groundings,
    truncation_notice,
)
from mmattn.api.words import suggest
from mmattn.models.grounding_model import GroundingModel
from mmattn.models.tokenizer import known_word

log = logging.getLogger(__name__)

__all__ = ["BACKWARD_METHODS", "DEFAULT_LAYER", "GROUNDED_THRESHOLD", "METHODS", "Grounder", "resolve_checkpoint"]

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_MODEL = ASSETS / "model"  #: the shipped default model
#: chunks of ``batch_size`` pairs that ground_batch decodes and runs at once, each on its own
#: thread: on 2 cores, two batches side by side made 1.3x the pairs per second of one batch
#: on both cores (decoding and Python work overlap the other batch's matrix products)
WORKERS = 2


def resolve_checkpoint(path: str | os.PathLike | None) -> str:
    """The folder (or hub id) to load: ``None`` means the shipped default model."""
    if path is None:
        path = os.environ.get("MMATTN_MODEL") or DEFAULT_MODEL
        if not Path(path).is_dir() and Path(path) == DEFAULT_MODEL:
            raise FileNotFoundError(
                f"the shipped model is missing from {DEFAULT_MODEL}: check out the full repository, "
                "or train one with `mmattn train` and pass its folder"
            )
    return os.fspath(path)


class Grounder:
    """Grounds the words of a caption in an image with a model and its processor.

    The generic part of every backend (:mod:`mmattn.api.backend`): a backend subclasses it,
    loads its checkpoints (``from_pretrained``) and answers the interface's questions;
    ``Grounder.from_pretrained(path)`` picks the backend from the registry."""

    backend = "mmattn"  #: which kind of model grounds (shown by the demo)
    methods = METHODS  #: the map methods this backend offers
    model_types: tuple[str, ...] = ()  #: the config.json model types this backend loads (mmattn.api.registry)
    checks_world = False  #: whether ``check_image`` checks images against a training world
    has_positions = False  #: whether ``trace(..., positions=False)`` can switch positional encodings off

    def __init__(self, model: GroundingModel, processor: Processor, *, name: str = "mmattn",
                 device: str | torch.device = "cpu", precision: str = "auto"):  # fmt: skip
        self.device = torch.device(device)
        self.precision = check_precision(precision, self.device)  #: "auto", "float32" or "bfloat16" (see mmattn.precision)
        self.model = model.eval().to(self.device)
        self.processor = processor
        self.name = name
        self.num_layers = len(model.fusion)
        self.num_heads = model.config.num_heads
        self.forward_passes = 0  #: how many times the model has run (the demo's tests count them)
        self._count_lock = threading.Lock()
        self._known = {w for w in self.tokenizer.get_vocab() if not w.startswith(("##", "["))}
        _install_recorders(self.model)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def anchored(self) -> bool:
        """Whether the model's last fusion layer applies the caption's relation to its
        text -> image scores (an AnchorBias, :mod:`mmattn.nn.anchor`)."""
        fusion = getattr(self.model, "fusion", None)
        return bool(fusion) and getattr(fusion[-1], "anchor", None) is not None

    def knows(self, word: str) -> bool:
        """Whether ``word`` is in the model's vocabulary."""
        return known_word(self._known, word)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, device: str = "cpu", precision: str = "auto", **overrides) -> Grounder:
        """Load a checkpoint folder or hub id with the backend of its kind; ``None`` loads the
        shipped model (or the one named by the ``MMATTN_MODEL`` environment variable).

        The kind is ``config.json``'s ``model_type`` (:func:`mmattn.api.registry.model_type`):
        none for an mmattn checkpoint (:class:`mmattn.backends.shapes.grounder.ShapesGrounder`),
        ``clip`` or ``chinese_clip`` for the CLIP backend (e.g. ``openai/clip-vit-base-patch16``;
        ``overrides`` such as ``dense="maskclip"`` go to it); other backends join with
        :func:`mmattn.api.registry.register`. A backend class loads its own kind only.
        ``precision``: ``"auto"`` (float32: a result never depends on its batch; see
        :mod:`mmattn.api.precision`), ``"float32"`` or ``"bfloat16"`` (only when asked for)."""
        path = resolve_checkpoint(path)
        backend = registry.backend_for(registry.model_type(path))
        if backend.from_pretrained.__func__ is Grounder.from_pretrained.__func__:
            raise TypeError(f"{backend.__qualname__} does not define from_pretrained: a backend loads its own checkpoints")
        if cls is not Grounder and not issubclass(backend, cls):
            raise TypeError(f"{path} is a {backend.__qualname__} checkpoint, not a {cls.__qualname__} one: "
                            "load it with Grounder.from_pretrained")  # fmt: skip
        return backend.from_pretrained(path, device=device, precision=precision, **overrides)

    # ---- what every backend answers (mmattn.api.backend) -------------------------------
    def suggest(self, word: str) -> str | None:
        """A close word of the vocabulary for an unknown ``word`` ("did you mean"), or None."""
        return suggest(word, self._known)

    def check_image(self, image) -> WorldVerdict | None:
        """Whether ``image`` looks like the backend's training world; None: it reads any image."""
        return None

    def backward_maps(self, ids: torch.Tensor, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """(B, T, P) maps a backend computes with a backward pass of its own (LeGrad), or None."""
        return None

    # ---- one question: one trace ----------------------------------------------------
    def trace(self, image, caption: str, *, gradients: bool = False, inputs: bool = False) -> Trace:
        """Run the model once on ``image`` (PIL.Image, array or path) and ``caption`` and
        record everything the views need (:class:`~mmattn.trace.Trace`).

        ``gradients=True`` also runs the backward pass of Grad-CAM (and of LeGrad, on backends
        that have it); ``inputs=True`` records
        each fusion attention's inputs for the step-by-step view. Both run in float32."""
        self.processor.check_caption(caption)
        im = load_image(image)
        return self._trace([im], self.processor.pixel(im)[None], [caption], gradients, inputs)[0]

    def ground(self, image, caption: str, *, layer: int | None = None, heads: str | int = "mean",
               method: str = "attention", raw: bool = False) -> Grounding:  # fmt: skip
        """Ground ``caption`` in ``image`` (PIL.Image, array or path): ``trace`` then
        ``Trace.grounding``. See :class:`~mmattn.result.Grounding`."""
        self._check(layer, heads, method)
        return self.trace(image, caption, gradients=method in BACKWARD_METHODS).grounding(method, layer, heads, raw)

    def ground_batch(self, images, captions, *, batch_size: int = 32, layer: int | None = None, heads: str | int = "mean",
                     method: str = "attention", raw: bool = False, progress: bool | None = None) -> list[Grounding]:  # fmt: skip
        """``ground`` for many pairs, batched by model input size; a progress bar on long runs."""
        return list(
            self.iter_batch(images, captions, batch_size=batch_size, layer=layer, heads=heads, method=method, raw=raw, progress=progress)
        )

    def iter_batch(self, images, captions, *, batch_size: int = 32, layer: int | None = None, heads: str | int = "mean",
                   method: str = "attention", raw: bool = False, progress: bool | None = None) -> Iterator[Grounding]:  # fmt: skip
        """:meth:`ground_batch` as a stream: the results in input order, a few batches at a
        time, so that a folder of any size is grounded in bounded memory. Bad arguments
        raise here, at the call; a bad image raises when the stream reaches it."""
        self._check(layer, heads, method)
        # each chunk's results are read on the worker thread that ran it, its boxes found together
        return self.iter_traces(images, captions, batch_size=batch_size, gradients=method in BACKWARD_METHODS, progress=progress,
                                _read=lambda traces: groundings(traces, method, layer, heads, raw))  # fmt: skip

    def iter_traces(self, images, captions, *, batch_size: int = 32, gradients: bool = False,
                    progress: bool | None = None, _read=None) -> Iterator[Trace]:  # fmt: skip
        """:meth:`trace` for many pairs, streamed in input order. Each chunk of ``batch_size``
        pairs is decoded, batched by model input size and run on one of ``WORKERS`` threads."""
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
            raise TypeError("captions must be a list of strings (one per image)")
        if len(images) != len(captions):
            raise ValueError(f"got {len(images)} images but {len(captions)} captions: pass one caption per image")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size!r})")
        for c in captions:
            self.processor.check_caption(c)
        captions = list(captions)
        read = _read or (lambda traces: traces)  # what is made of each chunk's traces, on its worker thread
        if len(images) == 1:  # one pair: no threads
            return iter(read([self.trace(images[0], captions[0], gradients=gradients)]))
        return self._stream(images, captions, batch_size, gradients, progress, read)

    def _stream(self, images, captions, batch_size, gradients, progress, read) -> Iterator:
        show = progress if progress is not None else len(images) > 4 * batch_size

        def run_chunk(start: int) -> list[Trace]:
            """Decode, resize and trace images[start : start + batch_size], on a worker thread."""
            ready = _decoded(((im, self.processor.pixel(im)) for im in map(load_image, images[start : start + batch_size])), start)
            groups = defaultdict(list)  # batched by model input size
            for i, (_, px) in enumerate(ready):
                groups[tuple(px.shape)].append(i)
            results: list = [None] * len(ready)
            for part in groups.values():
                pixels = torch.stack([ready[i][1] for i in part])
                done = self._trace([ready[i][0] for i in part], pixels, [captions[start + i] for i in part], gradients, False)
                for i, t in zip(part, done):
                    results[i] = t
            return read(results)

        # WORKERS chunks at once, each decoded and run on its own thread (torch and Pillow
        # release the GIL), a few more queued: the results come back in order, and memory
        # stays bounded however many images there are
        starts = iter(range(0, len(images), batch_size))
        pool = ThreadPoolExecutor(WORKERS)
        try:
            pending = deque(pool.submit(run_chunk, s) for s in itertools.islice(starts, 2 * WORKERS))
            with tqdm(total=len(images), desc="grounding", unit="pair", disable=not show) as bar:
                while pending:
                    results = pending.popleft().result()
                    nxt = next(starts, None)
                    if nxt is not None:
                        pending.append(pool.submit(run_chunk, nxt))
                    bar.update(len(results))
                    yield from results
        finally:  # also when the caller stops early or an image is bad: drop what is queued
            pool.shutdown(wait=True, cancel_futures=True)

    # ---- checks --------------------------------------------------------------------
    def _check(self, layer, heads, method) -> None:
        """The same checks as the trace's readings (mmattn.api.inputs), made before the model runs."""
        check_method(method, self.methods)
        check_layer(layer, self.num_layers)
        check_heads(heads, self.num_heads)

    # ---- the forward pass ------------------------------------------------------------
    def _arithmetic(self, batch: int, exact: bool) -> str:
        """What a pass of ``batch`` pairs runs in (:func:`mmattn.precision.arithmetic`); ``exact``
        passes run in float32 (Grad-CAM: the gradient of a confident match logit is tiny, and
        bfloat16's 8 bits of mantissa turned some of its maps upside down; step by step:
        recomputed to 1e-6)."""
        return "float32" if exact else arithmetic(self.precision, self.device, batch)

    def _trace(self, images, pixels, captions, gradients: bool, inputs: bool) -> list[Trace]:
        """One forward pass for PIL ``images``, their ``pixels`` (B, 3, h, w) of one size, and captions."""
        enc = self.processor.encode(list(captions))
        caps = self.processor.captions(list(captions), enc)
        px, ids, mask = pixels.to(self.device), enc.ids.to(self.device), enc.attention_mask.to(self.device)
        _RECORDING.seen = {} if inputs else None
        precision = self._arithmetic(len(images), exact=gradients or inputs)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if precision == "bfloat16" else contextlib.nullcontext()
        try:
            with torch.set_grad_enabled(gradients), torch.inference_mode(not gradients):
                with autocast:
                    out = self.model(ids, px, mask, output_fusion_attentions=True)
                grads = legrad = None
                if gradients:  # d(match logit)/d(attention) of every layer, without touching parameter grads
                    grads = torch.autograd.grad(out.match_logits.sum(), list(out.text_to_image), allow_unused=True)
                    grads = [torch.zeros_like(a) if g is None else g for g, a in zip(grads, out.text_to_image)]
                    legrad = self.backward_maps(ids, px, mask)  # (B, T, P): LeGrad on the CLIP backend, else None
            seen = _RECORDING.seen
        finally:
            _RECORDING.seen = None
        with self._count_lock:
            self.forward_passes += 1

        def numpy(t: torch.Tensor):
            return t.detach().float().cpu().numpy()

        t2i = [numpy(a) for a in out.text_to_image]  # L x (B, H, T, P)
        i2t = [numpy(a) for a in out.image_to_text]  # L x (B, H, P, T)
        gr = [numpy(g) for g in grads] if grads is not None else None
        grounded, match, relation = numpy(out.grounded_logits), numpy(out.match_logits), numpy(out.relation_logits)
        gh, gw = out.grid
        model_size = (px.shape[-1], px.shape[-2])
        traces = []
        for b, (image, cap) in enumerate(zip(images, caps)):
            n = len(cap.tokens)
            unknown = [w for w in cap.words if not self.knows(w)]
            recorded = None
            if inputs:
                recorded = {}
                for (layer, direction), (x, ctx, key_mask, output, bias) in seen.items():
                    q_len = n if direction == "text_to_image" else None
                    k_len = None if direction == "text_to_image" else n
                    recorded[layer, direction] = AttentionInputs(
                        x=numpy(x[b, :q_len]), context=numpy(ctx[b, :k_len]),
                        key_mask=None if key_mask is None else key_mask[b].reshape(-1)[:k_len].cpu().numpy().astype(bool),
                        output=None if output is None else numpy(output[b, :q_len]),
                        bias=None if bias is None else numpy(bias[b].reshape(bias.shape[-2], bias.shape[-1])[:q_len, :k_len]),
                    )  # fmt: skip
            traces.append(Trace(
                caption=cap, image=image, model_size=model_size, grid=(gh, gw),
                text_to_image=[a[b, :, :n] for a in t2i], image_to_text=[a[b, :, :, :n] for a in i2t],
                grounded_logits=grounded[b, :n], match_logit=float(match[b]), relation_logit=float(relation[b]),
                unknown_words=unknown, suggestions={w: h for w in unknown if (h := self.suggest(w))},
                world=self.check_image(image),
                gradients=[g[b, :, :n] for g in gr] if gr is not None else None, inputs=recorded,
                legrad=numpy(legrad[b, :n]) if legrad is not None else None,
                model_name=self.name, precision=precision,
                notice=truncation_notice(cap), anchored=self.anchored,
            ))  # fmt: skip
        return traces


# ---- the step-by-step view's inputs -----------------------------------------------------------
#: the fusion attentions' inputs of the forward pass this thread is running, when it records
_RECORDING = threading.local()


def _install_recorders(model) -> None:
    """Once per model: forward hooks on every fusion attention that keep its inputs while the
    calling thread records (``_RECORDING.seen`` is a dict); they do nothing otherwise."""
    if getattr(model, "_mmattn_recorders", False):
        return
    for n, layer in enumerate(model.fusion):
        for direction in ("text_to_image", "image_to_text"):
            getattr(layer, direction).register_forward_hook(_recorder(n, direction), with_kwargs=True)
    model._mmattn_recorders = True


def _recorder(layer: int, direction: str):
    def hook(module, args, kwargs, output):
        seen = getattr(_RECORDING, "seen", None)
        if seen is None:
            return
        x = args[0] if args else kwargs["x"]
        context = args[1] if len(args) > 1 else kwargs.get("context")
        mask = args[2] if len(args) > 2 else kwargs.get("mask")
        out = output[0] if isinstance(output, tuple) else None  # AttentionWeights returns weights only
        bias = kwargs.get("bias")  # (B, 1, Lq, Lk): an AnchorBias term, or None
        seen[layer, direction] = (x.detach(), (x if context is None else context).detach(), mask, None if out is None else out.detach(),
                                  None if bias is None else bias.detach())  # fmt: skip

    return hook


def _decoded(pending, start: int) -> list:
    """The decoded images of one chunk; a bad one is reported with its index in the batch."""
    out = []
    it = iter(pending)
    while True:
        try:
            out.append(next(it))
        except StopIteration:
            return out
        except (TypeError, ValueError) as e:
            raise type(e)(f"image {start + len(out)}: {e}") from e
