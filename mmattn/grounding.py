"""The grounding API: ``Grounder.from_pretrained().ground(image, caption)``.

Index letters: W words, T tokens, P patches (= gh * gw), H heads, L fusion layers.

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
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from string import punctuation

import torch
from tqdm.auto import tqdm

from .image import load_image, to_tensor
from .maps import boxes_from_maps, reduce_heads, word_matrix
from .model import GroundingModel
from .result import Grounding, RawAttention
from .tokenizer import MAX_TOKENS, Encoded, encode, load_tokenizer

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL = ASSETS / "model"  #: the shipped default model
DEFAULT_LAYER = -1  #: fusion layer whose maps are shown by default (chosen by measurement, see README)
METHODS = ("attention", "rollout", "gradcam")
GROUNDED_THRESHOLD = 0.5
#: chunks of ``batch_size`` pairs that ground_batch decodes and runs at once, each on its own
#: thread: on 2 cores, two batches side by side made 1.3x the pairs per second of one batch
#: on both cores (decoding and Python work overlap the other batch's matrix products)
WORKERS = 2
#: arithmetic of the model's matrix products: float32 (default) or bfloat16 (autocast; about
#: 2x faster on CPUs with bfloat16 instructions, the same eval figures on the shipped model;
#: Grad-CAM stays float32)
PRECISIONS = ("float32", "bfloat16")


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


def _is_punctuation(word: str) -> bool:
    return all(ch in punctuation or not ch.isprintable() or ch in "，。！？、；：“”‘’（）《》…" for ch in word)


class Grounder:
    """Grounds the words of a caption in an image with a :class:`GroundingModel`."""

    backend = "mmattn"  #: which kind of model grounds (shown by the demo)

    def __init__(self, model: GroundingModel, tokenizer, *, name: str = "mmattn", device: str | torch.device = "cpu",
                 precision: str = "float32"):  # fmt: skip
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
        self.precision = precision
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.name = name
        self.num_layers = len(model.fusion)
        self.num_heads = model.config.num_heads
        vocab = tokenizer.get_vocab()
        self._known = {w for w in vocab if not w.startswith("##") and not w.startswith("[")}

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, device: str = "cpu", precision: str = "float32") -> Grounder:
        """Load an mmattn checkpoint folder (or hub id); ``None`` loads the shipped model
        (or the one named by the ``MMATTN_MODEL`` environment variable). A CLIP checkpoint
        (``config.json`` with ``model_type: clip``, e.g. ``openai/clip-vit-base-patch16``)
        gives the CLIP backend, :class:`mmattn.clip_grounding.ClipGrounder`.
        ``precision="bfloat16"`` runs the model under bfloat16 autocast (see ``PRECISIONS``)."""
        path = resolve_checkpoint(path)
        from .clip_grounding import ClipGrounder, is_clip_checkpoint  # late: the CLIP backend imports grounding

        if is_clip_checkpoint(path):
            return ClipGrounder.from_pretrained(path, device=device, precision=precision)
        model = GroundingModel.load(path)
        name = Path(path).name if Path(path).is_dir() else path
        return cls(model, load_tokenizer(path), name=name, device=device, precision=precision)

    # ---- public API ----------------------------------------------------------------
    def ground(self, image, caption: str, *, layer: int | None = None, heads: str | int = "mean",
               method: str = "attention", raw: bool = False) -> Grounding:  # fmt: skip
        """Ground ``caption`` in ``image`` (PIL.Image, array or path). See :class:`Grounding`."""
        return self.ground_batch([image], [caption], layer=layer, heads=heads, method=method, raw=raw, progress=False)[0]

    def ground_batch(self, images, captions, *, batch_size: int = 32, layer: int | None = None, heads: str | int = "mean",
                     method: str = "attention", raw: bool = False, progress: bool | None = None) -> list[Grounding]:  # fmt: skip
        """``ground`` for many pairs, batched by model input size; a progress bar on long runs."""
        return list(self.iter_batch(images, captions, batch_size=batch_size, layer=layer, heads=heads, method=method, raw=raw, progress=progress))

    def iter_batch(self, images, captions, *, batch_size: int = 32, layer: int | None = None, heads: str | int = "mean",
                   method: str = "attention", raw: bool = False, progress: bool | None = None) -> Iterator[Grounding]:  # fmt: skip
        """:meth:`ground_batch` as a stream: the results in input order, a few batches at a
        time, so that a folder of any size is grounded in bounded memory. Each chunk of
        ``batch_size`` pairs is decoded, batched by model input size and grounded on one of
        ``WORKERS`` threads. Bad arguments raise here, at the call; a bad image raises when
        the stream reaches it."""
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
            raise TypeError("captions must be a list of strings (one per image)")
        if len(images) != len(captions):
            raise ValueError(f"got {len(images)} images but {len(captions)} captions: pass one caption per image")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        layer = self._check(layer, heads, method)
        for c in captions:
            self._check_caption(c)
        if len(images) == 1:  # ground(): no threads
            im = load_image(images[0])
            return iter(self._run([im], self._pixel(im)[None], list(captions), layer, heads, method, raw))
        return self._stream(images, list(captions), batch_size, layer, heads, method, raw, progress)

    def _stream(self, images, captions, batch_size, layer, heads, method, raw, progress) -> Iterator[Grounding]:
        show = progress if progress is not None else len(images) > 4 * batch_size

        def run_chunk(start: int) -> list[Grounding]:
            """Decode, resize and ground images[start : start + batch_size], on a worker thread."""
            ready = _decoded(((im, self._pixel(im)) for im in map(load_image, images[start : start + batch_size])), start)
            groups = defaultdict(list)  # batched by model input size
            for i, (_, px) in enumerate(ready):
                groups[tuple(px.shape)].append(i)
            results: list[Grounding | None] = [None] * len(ready)
            for part in groups.values():
                pixels = torch.stack([ready[i][1] for i in part])
                done = self._run([ready[i][0] for i in part], pixels, [captions[start + i] for i in part], layer, heads, method, raw)
                for i, g in zip(part, done):
                    results[i] = g
            return results  # type: ignore[return-value]

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
    def _check(self, layer, heads, method) -> int:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
        layer = DEFAULT_LAYER if layer is None else layer
        if not isinstance(layer, int) or not -self.num_layers <= layer < self.num_layers:
            raise ValueError(f"layer {layer!r} does not exist: the model has {self.num_layers} fusion layers (0..{self.num_layers - 1})")
        if not (heads in ("mean", "max") or (isinstance(heads, int) and 0 <= heads < self.num_heads)):
            raise ValueError(f"heads must be 'mean', 'max' or a head index 0..{self.num_heads - 1} (got {heads!r})")
        return layer % self.num_layers

    @staticmethod
    def _check_caption(caption) -> None:
        if not isinstance(caption, str):
            raise TypeError(f"the caption must be a string, got {type(caption).__name__}")
        if not caption.strip() or not any(ch.isalnum() for ch in caption):
            raise ValueError("the caption is empty: type a few words that describe the image, e.g. 'a red circle'")

    # ---- preprocessing (a backend with other pixels or tokens overrides _pixel and _encode) --
    def _pixel(self, image) -> torch.Tensor:
        """A PIL RGB image -> the model's pixels (3, h, w), by :mod:`mmattn.image`'s policy."""
        cfg = self.model.config
        return to_tensor(image, cfg.image_size, cfg.patch_size)

    def _pixels(self, images: list) -> torch.Tensor:
        """PIL images of one model input size -> pixels (B, 3, h, w)."""
        return torch.stack([self._pixel(im) for im in images])

    def _encode(self, captions: list[str]) -> Encoded:
        """Captions -> a padded batch of token ids with the word of every token."""
        return encode(self.tokenizer, captions)

    # ---- the work ------------------------------------------------------------------
    def _autocast(self, method: str):
        """The model's arithmetic: bfloat16 autocast, or nothing to change for float32.
        Grad-CAM always runs in float32: the gradient of a confident (saturated) match logit
        is tiny, and bfloat16's 8 bits of mantissa turned some of its maps upside down."""
        if self.precision == "bfloat16" and method != "gradcam":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run(self, images, pixels, captions, layer, heads, method, raw) -> list[Grounding]:
        """Ground a batch: PIL ``images``, their ``pixels`` (B, 3, h, w) of one size, captions."""
        px = pixels.to(self.device)
        enc = self._encode(list(captions))
        ids, mask = enc.ids.to(self.device), enc.attention_mask.to(self.device)
        with torch.set_grad_enabled(method == "gradcam"), torch.inference_mode(method != "gradcam"):
            with self._autocast(method):
                out = self.model(ids, px, mask, output_fusion_attentions=True)
            grad = None
            if method == "gradcam":  # d(match logit)/d(attention), without touching parameter grads
                (grad,) = torch.autograd.grad(out.match_logits.sum(), [out.text_to_image[layer]])  # float32: no autocast
        t2i = [w.detach().float() for w in out.text_to_image]  # L x (B, H, T, P)
        i2t = [w.detach().float() for w in out.image_to_text]  # L x (B, H, P, T)
        if method == "attention":
            token_maps = reduce_heads(t2i[layer], heads)  # (B, T, P)
        elif method == "rollout":
            token_maps = _rollout([reduce_heads(a, heads) for a in t2i], [reduce_heads(b, heads) for b in i2t])
        else:  # Grad-CAM on the cross-attention (ALBEF): attention x positive gradient of the match logit
            token_maps = reduce_heads(t2i[layer] * grad.clamp(min=0), heads)
        patch_i2t = reduce_heads(i2t[layer], heads)  # (B, P, T)
        grounded_p = torch.sigmoid(out.grounded_logits.detach().float()).cpu()  # (B, T)
        match_p = torch.sigmoid(out.match_logits.detach().float()).cpu()
        relation = out.relation_logits.detach().float().cpu()  # (B,)
        token_maps, patch_i2t = token_maps.float().cpu(), patch_i2t.float().cpu()

        # tokens -> words for the whole batch at once: M[b] is item b's (W, T) averaging
        # matrix (subword pieces merged, punctuation dropped), zero rows pad to the longest
        B, T = token_maps.shape[:2]
        words, keeps = [], []
        for b in range(B):
            keeps.append([w for w, word in enumerate(enc.words[b]) if not _is_punctuation(word)])
            words.append([enc.words[b][w] for w in keeps[-1]])
        M = torch.zeros(B, max(map(len, words), default=0), T)
        for b in range(B):
            M[b, : len(words[b])] = word_matrix(enc.word_ids[b], len(enc.words[b]), T)[keeps[b]]
        maps = M @ token_maps  # (B, W, T) @ (B, T, P) -> (B, W, P)
        peak = maps.amax(dim=(1, 2), keepdim=True) if maps.numel() else torch.ones(B, 1, 1)
        maps = maps / torch.where(peak > 0, peak, torch.ones_like(peak))  # one scale per caption
        scores = (M @ grounded_p[:, :, None])[:, :, 0]  # (B, W)
        word_i2t = patch_i2t @ (M > 0).float().transpose(1, 2)  # (B, P, T) @ (B, T, W) -> (B, P, W)

        sizes = [(im.height, im.width) for im in images]
        unknown = [[w for w in ws if w not in self._known] for ws in words]
        grounded = [[s > GROUNDED_THRESHOLD and w not in unk for s, w in zip(scores[b].tolist(), words[b])]
                    for b, unk in enumerate(unknown)]  # fmt: skip
        # boxes only for grounded words, all of the batch's at once
        found = [(b, i) for b in range(B) for i, g in enumerate(grounded[b]) if g]
        boxes = [[None] * len(ws) for ws in words]
        if found:
            stack = maps[[b for b, _ in found], [i for _, i in found]]  # (N, P)
            for (b, i), bx in zip(found, boxes_from_maps(stack, out.grid, [sizes[b] for b, _ in found])):
                boxes[b][i] = bx

        results = []
        for b, image in enumerate(images):
            W = len(words[b])
            notice = None
            if enc.truncated[b]:
                notice = f"the caption was cut to its first {W} words (at most {MAX_TOKENS - 2} tokens)"
            n_tokens = int(enc.attention_mask[b].sum())
            results.append(Grounding(
                caption=captions[b], words=words[b], image=image, grid=tuple(out.grid), size=image.size,
                patch_maps=maps[b, :W].numpy(),  # word_maps are rendered from these when read
                image_to_text=word_i2t[b, :, :W].numpy(),
                grounded=grounded[b], grounded_scores=scores[b, :W].tolist(),
                boxes=boxes[b],
                match_score=float(match_p[b]), relation_score=float(relation[b]), unknown_words=unknown[b], truncated=enc.truncated[b], notice=notice,
                method=method, layer=layer, heads=heads, model_name=self.name,
                raw=RawAttention(
                    tokens=self.tokenizer.convert_ids_to_tokens(enc.ids[b][enc.attention_mask[b]].tolist()),
                    word_ids=[w for w, m in zip(enc.word_ids[b], enc.attention_mask[b].tolist()) if m],
                    text_to_image=[a[b, :, :n_tokens].cpu().numpy() for a in t2i],  # t2i, i2t are float32 already
                    image_to_text=[a[b, :, :, :n_tokens].cpu().numpy() for a in i2t],
                ) if raw else None,
            ))  # fmt: skip
        return results


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


def _rollout(t2i: list[torch.Tensor], i2t: list[torch.Tensor]) -> torch.Tensor:
    """Relevance of each patch for each token, accumulated across fusion layers.

    Bi-modal rollout (Chefer et al., 2021) for layers that cross-attend both ways from the
    same inputs: with R_tt = I, R_ii = I, R_ti = 0, R_it = 0 and per layer A = text->image
    (B, T, P), Bm = image->text (B, P, T):
        R_ti += A @ R_ii,  R_tt += A @ R_it,  R_it += Bm @ R_tt,  R_ii += Bm @ R_ti
    (right-hand sides use the previous layer's values). Returns R_ti (B, T, P).
    """
    B, T, P = t2i[0].shape
    R_tt = torch.eye(T).expand(B, T, T).clone()
    R_ii = torch.eye(P).expand(B, P, P).clone()
    R_ti, R_it = torch.zeros(B, T, P), torch.zeros(B, P, T)
    for A, Bm in zip(t2i, i2t):
        A, Bm = A.float().cpu(), Bm.float().cpu()
        R_ti, R_tt, R_it, R_ii = R_ti + A @ R_ii, R_tt + A @ R_it, R_it + Bm @ R_tt, R_ii + Bm @ R_ti
    return R_ti
