"""Processors: raw inputs -> model inputs, one rule for each decision (as transformers' processors).

A backend is a model plus a :class:`Processor`. The processor decides, once for every caller
(grounding, the explanations, evaluation, training, the demo):

- **the caption**: whether it is acceptable (:meth:`Processor.check_caption`), how it splits
  into words and tokens, and where it is cut (:meth:`Processor.encode`, at most ``max_tokens``
  tokens, whole words only);
- **the words shown**: punctuation is read by the model but never reported
  (:func:`is_punctuation`, :meth:`Processor.caption`);
- **the image**: how it becomes the model's pixels (:meth:`Processor.pixel`) and on which patch
  grid (:meth:`Processor.model_size`).

Index letters: B batch, T tokens (specials included), W words, P patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import punctuation

import torch
from PIL import Image

from mmattn.api.image import target_size, to_tensor
from mmattn.api.inputs import check_caption
from mmattn.models.tokenizer import MAX_TOKENS, Encoded, encode, unshare_state

#: punctuation of Chinese text, besides ASCII's
CJK_PUNCTUATION = "，。！？、；：“”‘’（）《》…"


def is_punctuation(word: str) -> bool:
    """A word made only of punctuation (ASCII or Chinese) or unprintable characters: read by
    the model, never reported as a word."""
    return all(ch in punctuation or ch in CJK_PUNCTUATION or not ch.isprintable() for ch in word)


@dataclass
class Caption:
    """How the model reads one caption.

    ``words`` are the words reported to users (punctuation dropped) and ``word_tokens[i]``
    the positions in ``tokens`` of word ``i``'s tokens (its subword pieces)."""

    text: str
    tokens: list[str]  #: the T tokens, specials included, no padding
    words: list[str]  #: the W words reported (punctuation dropped)
    word_tokens: list[list[int]]  #: token positions of each reported word
    word_ids: list[int | None]  #: for each token, its word's index in ``all_words`` (None for specials)
    all_words: list[str]  #: every word the model read, punctuation included
    truncated: bool  #: the caption was cut to fit ``max_tokens``


class Processor:
    """The caption and image rules shared by every backend; a backend provides
    :meth:`encode` (captions -> token ids with each token's word) and :meth:`pixel`
    (an RGB image -> normalised pixels)."""

    languages: tuple[str, ...] = ("en",)  #: languages its captions may be in (ISO 639-1)

    def __init__(self, tokenizer, *, image_size: int, patch_size: int, max_tokens: int = MAX_TOKENS):
        unshare_state(tokenizer)  # threads share it from here on (see mmattn.models.tokenizer.encode_split)
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.patch_size = patch_size
        self.max_tokens = max_tokens

    # ---- captions ------------------------------------------------------------------
    @staticmethod
    def check_caption(caption) -> str:
        """``caption`` if it can be read; else TypeError / ValueError saying what to type
        (:func:`mmattn.api.inputs.check_caption`)."""
        return check_caption(caption)

    def encode(self, captions: list[str]) -> Encoded:
        """Captions -> a padded batch of token ids (B, T) with the word of every token."""
        raise NotImplementedError

    def caption(self, caption: str) -> Caption:
        """One caption as the model reads it (checked, tokenised, words and their tokens)."""
        return self.captions([caption])[0]

    def captions(self, captions: list[str], enc: Encoded | None = None) -> list[Caption]:
        """:meth:`caption` for a batch; ``enc`` reuses an :meth:`encode` of the same captions."""
        enc = self.encode([self.check_caption(c) for c in captions]) if enc is None else enc
        out = []
        for b, text in enumerate(captions):
            n = int(enc.attention_mask[b].sum())
            ids, word_ids, all_words = enc.ids[b, :n].tolist(), enc.word_ids[b][:n], enc.words[b]
            keep = [w for w, word in enumerate(all_words) if not is_punctuation(word)]
            out.append(Caption(
                text=text, tokens=self.tokenizer.convert_ids_to_tokens(ids), words=[all_words[w] for w in keep],
                word_tokens=[[t for t, wid in enumerate(word_ids) if wid == w] for w in keep],
                word_ids=list(word_ids), all_words=list(all_words), truncated=bool(enc.truncated[b]),
            ))  # fmt: skip
        return out

    # ---- images ----------------------------------------------------------------------
    def model_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) the model sees for an image of this size (see :mod:`mmattn.image`)."""
        return target_size(width, height, self.image_size, self.patch_size)

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """The (gh, gw) patch grid for an image of this size."""
        w, h = self.model_size(width, height)
        return h // self.patch_size, w // self.patch_size

    def pixel(self, image: Image.Image) -> torch.Tensor:
        """A PIL RGB image -> the model's pixels (3, h, w)."""
        raise NotImplementedError

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images of one model input size -> (B, 3, h, w)."""
        return torch.stack([self.pixel(im) for im in images])


class MmattnProcessor(Processor):
    """The shipped model's processor: its WordPiece tokenizer (:mod:`mmattn.tokenizer`; English
    and Chinese, one word per Chinese character) and :func:`mmattn.image.to_tensor`."""

    languages = ("en", "zh")

    def encode(self, captions: list[str]) -> Encoded:
        return encode(self.tokenizer, list(captions), self.max_tokens)

    def pixel(self, image: Image.Image) -> torch.Tensor:
        return to_tensor(image, self.image_size, self.patch_size)
