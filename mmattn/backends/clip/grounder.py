"""The CLIP backend behind the grounding API: ``Grounder.from_pretrained("openai/clip-vit-base-patch16")``.

A CLIP checkpoint is a folder (or hub id) in transformers' standard layout: ``config.json``
with ``model_type: clip`` (or ``chinese_clip``: :mod:`mmattn.chinese_clip`),
``model.safetensors``, the tokenizer files and ``preprocessor_config.json``. A checkpoint
trained with ``mmattn train --clip`` adds ``mmattn_clip.json`` (the fusion config) and
``mmattn_fusion.safetensors`` (its weights).

What differs from the shipped model is only the preprocessing (:class:`ClipProcessor`); the model (:class:`mmattn.clip.ClipGroundingModel`) returns
the same outputs, so grounding, maps, flags, boxes and export are the shared code's.

- **Pixels**: the image is resized with the usual policy (longer side ``image_size``, aspect
  ratio kept, sides multiples of the patch size; CLIP's position embeddings are
  interpolated to the grid), with the checkpoint's resampling filter, and normalised with
  its mean and std, as ``CLIPImageProcessor`` does (but without its centre crop).
- **Words**: the caption (NFC, lower-cased, as CLIP's tokenizer normalises it) is split into
  words, runs of letters and digits (with inner apostrophes: "don't") and runs of
  punctuation; CLIP's BPE pieces of a word are merged back through ``word_ids``.
  Punctuation is dropped from the results as usual. Every word is known: byte-level BPE
  reads any text (CLIP was trained on English).
- **Weights** load from safetensors only (``use_safetensors=True``), never from pickles.
- **Hub ids** are read from the local Hugging Face cache first, without a request; the hub
  is asked only for what is missing, and only after it answered one request within
  ``HUB_TIMEOUT`` (:func:`hub_reachable`; never under ``HF_HUB_OFFLINE=1``). Otherwise a
  cached model loads from its cached folder, and an uncached one fails at once with a
  one-line :class:`~mmattn.model.CheckpointError` saying what to do (no retries, no chained
  traceback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mmattn.api.grounder import METHODS, Grounder
from mmattn.api.image import load_image
from mmattn.api.processor import Processor
from mmattn.backends.clip.checks import check_clip_weights
from mmattn.backends.clip.legrad import START_LAYER, normalize
from mmattn.backends.clip.model import ClipGroundingConfig, ClipGroundingModel, ClipTextEncoder
from mmattn.io import files
from mmattn.io.hub import HUB_TIMEOUT, hub_reachable  # noqa: F401
from mmattn.io.hub import first_line as _first_line
from mmattn.io.hub import hub_file as _hub_file
from mmattn.io.hub import is_hub_id as _is_hub_id
from mmattn.io.hub import read_json as _read_json
from mmattn.models.grounding_model import CheckpointError
from mmattn.models.tokenizer import MAX_TOKENS, Encoded, encode_split

log = logging.getLogger(__name__)

FUSION_CONFIG = "mmattn_clip.json"  #: fusion config of a trained checkpoint
FUSION_WEIGHTS = "mmattn_fusion.safetensors"  #: fusion weights of a trained checkpoint
CLIP_TYPES = ("clip", "chinese_clip")  #: config.json model types that the CLIP backend loads
WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")  #: a word: letters/digits (inner apostrophes), or punctuation


class _EveryWord(frozenset):
    """A vocabulary that contains every word (CLIP's byte-level BPE reads any text)."""

    def __contains__(self, word) -> bool:
        return True


def _hub_weights(name: str) -> None:
    """Bring hub repo ``name``'s weights (``model.safetensors`` or its shards) into its snapshot folder."""
    if _hub_file(name, "model.safetensors", required=False) is not None:
        return
    index = _hub_file(name, "model.safetensors.index.json")
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index} is not a valid safetensors index (no weight_map)")
    for shard in sorted(set(map(str, weight_map.values()))):
        _hub_file(name, shard)


def _partly_cached(name: str) -> CheckpointError:
    return CheckpointError(
        f"{name!r} is only partly in the Hugging Face cache and the hub cannot be reached (no network, or "
        "HF_HUB_OFFLINE=1): run once with network access to complete it, or pass a local checkpoint folder"
    )


def is_clip_checkpoint(path: str | os.PathLike) -> bool:
    """Does ``path`` (a folder or hub id) hold a CLIP checkpoint (``config.json`` with
    ``model_type`` ``clip`` or ``chinese_clip``)?

    A local folder is only inspected; a hub id is looked up (download or cache), which raises
    :class:`~mmattn.model.CheckpointError` with what to do when it is not cached offline."""
    path = os.fspath(path)
    if os.path.isdir(path):
        file = os.path.join(path, "config.json")
        if not os.path.isfile(file):
            return False
        try:
            return _is_clip_config(_read_json(file))
        except CheckpointError:
            return False  # the mmattn loader reports it
    if not _is_hub_id(path):
        return False  # a missing folder: the mmattn loader says so
    return _is_clip_config(_read_json(_hub_file(path, "config.json")))


def _is_clip_config(config: dict) -> bool:
    """A CLIP config: a CLIP ``model_type`` with its text and vision towers' configs (an
    mmattn config that merely says ``"model_type": "clip"`` is not one)."""
    towers = [config.get(k) if isinstance(config.get(k), dict) else config.get(k + "_dict") for k in ("text_config", "vision_config")]
    return config.get("model_type") in CLIP_TYPES and all(isinstance(t, dict) for t in towers)


class ClipProcessor(Processor):
    """The CLIP backend's processor: words by :func:`split_words` tokenised with CLIP's BPE
    (:func:`encode_words`), and pixels resized by the usual policy with the checkpoint's
    filter and normalised with its mean and std (``CLIPImageProcessor`` without its centre crop)."""

    def __init__(self, tokenizer, image_processor, *, image_size: int, patch_size: int):
        super().__init__(tokenizer, image_size=image_size, patch_size=patch_size)
        self.image_processor = p = image_processor
        self._mean = torch.tensor(p.image_mean if p.do_normalize else [0.0] * 3, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(p.image_std if p.do_normalize else [1.0] * 3, dtype=torch.float32).view(3, 1, 1)
        self._scale = float(p.rescale_factor) if p.do_rescale else 1.0
        self._resample = Image.Resampling(int(p.resample)) if p.resample is not None else Image.Resampling.BICUBIC

    def encode(self, captions: list[str]) -> Encoded:
        """Captions -> CLIP token ids with the word of every token (see the module doc)."""
        return encode_words(self.tokenizer, captions, self.max_tokens)

    def pixel(self, image) -> torch.Tensor:
        """A PIL RGB image -> CLIP-normalised pixels (3, h, w), aspect ratio kept."""
        size = self.model_size(image.width, image.height)
        if image.size != size:
            image = image.resize(size, self._resample)
        a = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float()  # (3, h, w)
        return (a * self._scale - self._mean) / self._std


class ClipGrounder(Grounder):
    """A :class:`~mmattn.grounding.Grounder` on a :class:`~mmattn.clip.ClipGroundingModel`
    with a :class:`ClipProcessor`."""

    config_defaults: dict = {}  #: ClipGroundingConfig fields this backend sets before the checkpoint's and the caller's
    methods = (*METHODS, "legrad")  #: LeGrad reads CLIP's vision tower (mmattn.legrad)
    model_types = ("clip",)
    #: the towers and processors of its checkpoints (transformers class names) and its text encoder
    clip_class, image_processor_class, text_encoder_class = "CLIPModel", "CLIPImageProcessor", ClipTextEncoder

    def __init__(self, model: ClipGroundingModel, tokenizer, image_processor, *, name: str = "clip", device: str | torch.device = "cpu",
                 trained: bool = False, precision: str = "auto"):  # fmt: skip
        cfg = model.config
        processor = ClipProcessor(tokenizer, image_processor, image_size=cfg.image_size, patch_size=cfg.patch_size)
        super().__init__(model, processor, name=name, device=device, precision=precision)
        self._known = _EveryWord()
        self.image_processor = image_processor
        self.trained = trained
        self.backend = f"CLIP backend, {'trained' if trained else 'zero-shot'} fusion"

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str = "cpu", precision: str = "auto", **overrides) -> ClipGrounder:
        """Load a CLIP checkpoint folder or hub id (plus trained fusion weights, if the folder has them).

        ``overrides`` change :class:`~mmattn.clip.ClipGroundingConfig` fields, e.g.
        ``image_size=336`` or ``num_heads=8`` (zero-shot only: a trained fusion keeps its own)."""
        path = os.fspath(path)
        local = os.path.isdir(path)
        if not local and not _is_hub_id(path):
            raise CheckpointError(f"no checkpoint folder at {path!r}: check the path")
        config_file = os.path.join(path, "config.json") if local else _hub_file(path, "config.json")
        if not os.path.isfile(config_file):
            raise CheckpointError(f"no config.json in {path}: is this a CLIP checkpoint folder?")
        config_json = _read_json(config_file)
        if not _is_clip_config(config_json):
            raise CheckpointError(f"{config_file} is not a CLIP config (a model_type of {', '.join(CLIP_TYPES)} "
                                  "with text_config and vision_config)")  # fmt: skip
        kind = config_json["model_type"]
        if kind not in cls.model_types:
            raise CheckpointError(f"{config_file} is a {kind} checkpoint, which {cls.__qualname__} does not load "
                                  "(its model types: " + ", ".join(cls.model_types) + "): load it with Grounder.from_pretrained")  # fmt: skip
        saved_file = os.path.join(path, FUSION_CONFIG) if local else _hub_file(path, FUSION_CONFIG, required=False)
        saved = _read_json(saved_file) if saved_file and os.path.isfile(saved_file) else None
        # a hub id the hub cannot serve now loads from its cached snapshot folder, as a local
        # folder: the hub library would otherwise try (and retry) the network for every file
        cache_only = not local and not hub_reachable()
        source = os.path.dirname(config_file) if cache_only else path
        import transformers  # late (seconds on first import): a hub id that is not cached has failed by now
        from transformers.utils import logging as hf_logging

        model_class, image_class = getattr(transformers, cls.clip_class), getattr(transformers, cls.image_processor_class)
        hf_logging.disable_progress_bar()
        folder = path if local else os.path.dirname(config_file)  # a hub id's files share its snapshot folder
        try:
            clip_config = model_class.config_class.from_pretrained(os.path.dirname(config_file))
        except Exception as e:  # transformers' config errors are of several types
            raise CheckpointError(f"{config_file} is not a valid {kind} config: {_first_line(e)}") from e
        if not local:
            try:
                _hub_weights(path)
            except CheckpointError:
                if cache_only:
                    raise _partly_cached(path) from None
                raise
        check_clip_weights(folder, model_class, clip_config)  # every tensor, before anything is built
        try:
            clip = model_class.from_pretrained(source, config=clip_config, attn_implementation="eager", use_safetensors=True).eval()
            tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            processor = image_class.from_pretrained(source)
        except Exception as e:  # OSError, ValueError, and the tokenizers library's bare Exception
            if cache_only:
                log.debug("loading %r from the cache only: %s", path, e)
                raise _partly_cached(path) from None
            raise CheckpointError(f"could not load the CLIP checkpoint {path!r}: {_first_line(e)}") from e
        vc = clip.config.vision_config
        fields = {"dim": clip.config.projection_dim, "patch_size": vc.patch_size, "image_size": vc.image_size,
                  "temperature": float(clip.logit_scale.detach().exp()), **cls.config_defaults}  # fmt: skip
        if saved is not None:  # fusions trained before NACLIP saved no "dense": they were trained on MaskCLIP features
            fields |= {"dense": "maskclip", **saved.get("config", {})}
        fields |= overrides
        try:
            config = ClipGroundingConfig(**fields)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"not a valid CLIP grounding config ({e})") from e
        model = ClipGroundingModel(clip, tokenizer, config, text_encoder=cls.text_encoder_class)
        if saved is not None:
            weights = os.path.join(path, FUSION_WEIGHTS) if local else _hub_file(path, FUSION_WEIGHTS)
            _load_fusion(model, weights)
        name = Path(path).name if local else path
        return cls(model, tokenizer, processor, name=name, device=device, trained=saved is not None, precision=precision)

    # ---- LeGrad: an explanation of CLIP's vision tower (mmattn.legrad) -------------------
    def backward_maps(self, ids: torch.Tensor, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, P) LeGrad relevance of every token in the vision tower (the trace's ``legrad``)."""
        return self.model.legrad(ids, pixels, mask)

    def legrad_maps(self, image, caption: str, *, scale: str = "caption", start_layer: int = START_LAYER) -> np.ndarray:
        """(W, P) LeGrad maps of the caption's words (their prompt embeddings, see
        :mod:`mmattn.clip`) in ``image``, min-max normalised over the caption's words together
        (``scale="caption"``, one shared scale) or per word (``"word"``, as the LeGrad paper)."""
        im = load_image(image)
        words = self.processor.caption(caption)
        enc = self.processor.encode([caption])
        px = self.processor.pixel(im)[None].to(self.device)
        token_maps = self.model.legrad(enc.ids.to(self.device), px, enc.attention_mask.to(self.device), start_layer=start_layer)
        M = torch.zeros(len(words.words), token_maps.size(1))  # (W, T): each word averages its tokens
        for i, toks in enumerate(words.word_tokens):
            M[i, toks] = 1.0 / len(toks)
        return normalize((M @ token_maps[0].float().cpu())[None], scale)[0].numpy()  # (W, P)


def split_words(caption: str) -> list[str]:
    """The caption's words as the CLIP backend reports them: "A dog's ball, red!" -> ["a", "dog's", "ball", ",", "red", "!"]."""
    return WORD.findall(unicodedata.normalize("NFC", caption).lower())


def encode_words(tokenizer, captions: list[str], max_tokens: int = MAX_TOKENS) -> Encoded:
    """Tokenise captions word by word with a CLIP tokenizer, keeping the word of every token.

    A caption longer than ``max_tokens`` tokens (specials included) keeps its first whole
    words that fit and is flagged in ``truncated``."""
    return encode_split(tokenizer, [split_words(c) or [""] for c in captions], max_tokens)


# ---- trained fusion weights --------------------------------------------------------------
def _load_fusion(model: ClipGroundingModel, file: str) -> None:
    """Load trained fusion weights strictly: every tensor present, none extra, shapes equal."""
    if not os.path.isfile(file):
        raise CheckpointError(f"{file} is missing: the checkpoint has {FUSION_CONFIG} but no fusion weights")
    try:
        state = load_file(file)
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise CheckpointError(f"{file} is not a readable safetensors file ({e})") from e
    mine = model.fusion_state_dict()
    problems = [f"missing {sorted(set(mine) - set(state))[:5]}" if set(mine) - set(state) else "",
                f"unexpected {sorted(set(state) - set(mine))[:5]}" if set(state) - set(mine) else "",
                ", ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                          for k, v in mine.items() if k in state and state[k].shape != v.shape)]  # fmt: skip
    if any(problems):
        raise CheckpointError(f"{file} does not fit the fusion in {FUSION_CONFIG}: " + "; ".join(p for p in problems if p))
    model.load_state_dict({**model.state_dict(), **state}, strict=True)


def save_clip_checkpoint(grounder: ClipGrounder, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write a self-contained CLIP checkpoint (the towers, tokenizer, image processor, and the
    fusion config and weights) that :meth:`ClipGrounder.from_pretrained` loads; atomically."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with files.os_errors(tmp):
            _write_clip_checkpoint(grounder, tmp, extra)
        files.replace_dir(tmp, folder, old=old)  # fsynced, then swapped in
    except BaseException:  # a full disk, no permission, an interrupt: the previous checkpoint is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _write_clip_checkpoint(grounder: ClipGrounder, tmp: Path, extra: dict | None) -> None:
    """The files of a CLIP checkpoint, into the new folder ``tmp`` (see :func:`save_clip_checkpoint`)."""
    tmp.mkdir(parents=True)
    model = grounder.model
    model.clip_config.save_pretrained(tmp)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.clip_state_dict().items()}, tmp / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    save_file({k: v.detach().contiguous().cpu() for k, v in model.fusion_state_dict().items()}, tmp / FUSION_WEIGHTS)
    grounder.tokenizer.save_pretrained(tmp)
    grounder.image_processor.save_pretrained(tmp)
    info = {"config": dataclasses.asdict(model.config), **(extra or {})}
    (tmp / FUSION_CONFIG).write_text(json.dumps(info, indent=2), encoding="utf-8")
