"""The caption tokenizer: a WordPiece built with Hugging Face ``tokenizers``, used through
transformers' fast-tokenizer API so that ``word_ids()`` maps every token back to its word.

- Lower-cases, strips accents, drops control and zero-width characters (BERT normaliser).
- Splits on whitespace and punctuation. Every Chinese character is its own token, but words
  are found by :func:`split_words` (longest match over the shapes world's Chinese words,
  :data:`mmattn.scenes.ZH_WORDS`, then ``jieba``): "红色的圆形" is the words 红色 / 的 / 圆形,
  read as the tokens 红 色 的 圆 形, each token knowing its word.
- Known words are single tokens; other English words fall apart into letter pieces
  (``"ball" -> b ##a ##l ##l``), anything else (emoji, rare scripts) becomes ``[UNK]``.
- At most :data:`MAX_TOKENS` tokens per caption, ``[CLS]`` and ``[SEP]`` included; longer
  captions are truncated (callers are told, see :func:`encode`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from mmattn.io.checkpoint import CheckpointError, tokenizer_ids
from mmattn.models.segment import CJK, is_cjk, lexicon_words
from mmattn.scenes import ZH_WORDS

MAX_TOKENS = 32  #: maximum caption length in tokens, [CLS] and [SEP] included
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3


def build_tokenizer(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    """A WordPiece whose vocabulary is every word of ``corpus`` plus letters, digits and
    punctuation (so that unknown English words become letter pieces, not ``[UNK]``)."""
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: dict[str, None] = {}
    for text in corpus:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)):
            words.setdefault(word)
    chars = string.ascii_lowercase + string.digits
    pieces = list(chars) + ["##" + c for c in chars] + list(string.punctuation)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(SPECIALS + sorted(words) + pieces))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=50))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=1_000_000,  # we truncate ourselves, by whole words (see encode)
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved with ``save_pretrained`` (``tokenizer.json`` in ``path``).
    A damaged file is a :class:`~mmattn.checkpoint.CheckpointError` that names it."""
    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path}: pass the folder of an mmattn checkpoint")
    tokenizer_ids(str(file))  # a bounded JSON object with integer ids, or a CheckpointError
    try:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(file), model_max_length=1_000_000)
    except Exception as e:  # the tokenizers library raises a bare Exception that names no file
        raise CheckpointError(f"{file} is not a valid tokenizer ({e}); re-save or re-download it") from e
    missing = [t for t in SPECIALS if t not in tok.get_vocab()]
    if missing:
        raise CheckpointError(f"{file} is not an mmattn tokenizer: it lacks the special tokens {', '.join(missing)}")
    tok.add_special_tokens({k: v for k, v in zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIALS)})
    return tok


@dataclass
class Encoded:
    """A tokenised batch.  ids, attention_mask: (B, T); word_ids[b][t] is the index of the
    word that token t belongs to (None for specials and padding); words[b] lists the words."""

    ids: torch.Tensor
    attention_mask: torch.Tensor
    word_ids: list[list[int | None]]
    words: list[list[str]]
    truncated: list[bool]


def split_words(tokenizer: PreTrainedTokenizerFast, caption: str) -> list[str]:
    """The caption's words as the tokenizer sees them: normalised, split on spaces and
    punctuation, Chinese segmented into the words the model knows ("Red,红色的圆" ->
    ["red", ",", "红色", "的", "圆"]; see :func:`lexicon`)."""
    backend = tokenizer.backend_tokenizer
    norm, pre = backend.normalizer, backend.pre_tokenizer
    words: list[str] = []
    for part in re.split(f"([{CJK}]+)", caption):
        if is_cjk(part):  # the normaliser spaces Chinese characters out (and unifies compatibility forms)
            words += lexicon_words(norm.normalize_str(part).replace(" ", ""), lexicon(tokenizer))
        elif part:
            words += [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(part))]
    return words


def lexicon(tokenizer: PreTrainedTokenizerFast) -> frozenset[str]:
    """The Chinese words the model knows: the shapes world's words (:data:`ZH_WORDS`) whose
    every character is a token of ``tokenizer``."""
    vocab = tokenizer.get_vocab()
    return frozenset(w for w in ZH_WORDS if all(ch in vocab for ch in w))


def known_word(vocab, word: str) -> bool:
    """Whether the model reads ``word`` without letter pieces or ``[UNK]``: a whole token of
    ``vocab``, or a Chinese word all of whose characters are tokens."""
    return word in vocab or (is_cjk(word) and all(ch in vocab for ch in word))


def encode(tokenizer: PreTrainedTokenizerFast, captions: list[str], max_tokens: int = MAX_TOKENS) -> Encoded:
    """Tokenise captions to a padded batch, keeping the word of every token.

    A caption longer than ``max_tokens`` tokens keeps only its first whole words that fit,
    and is flagged in ``truncated``.
    """
    return encode_split(tokenizer, [split_words(tokenizer, c) for c in captions], max_tokens)


def encode_split(tokenizer, words: list[list[str]], max_tokens: int = MAX_TOKENS) -> Encoded:
    """Tokenise captions already split into words (any backend's split), keeping the word of
    every token: the one truncation rule of every backend. A caption longer than
    ``max_tokens`` tokens (the two specials included) keeps its first whole words that fit
    and is flagged in ``truncated``.

    Safe from any number of threads sharing ``tokenizer``: it is only ever called unpadded and
    untruncated, so transformers never reconfigures the shared Rust tokenizer (a padded call
    racing an unpadded one fails with "Unable to create tensor" or "Already borrowed",
    transformers issue #47085); the batch is padded here instead."""
    words = [list(w) for w in words]
    enc = _unpadded(tokenizer, words)
    word_ids = [enc.word_ids(b) for b in range(len(words))]
    truncated = []
    for b, wid in enumerate(word_ids):
        wid = [w for w in wid if w is not None]
        truncated.append(len(wid) > max_tokens - 2)  # room for the two specials ([CLS] and [SEP], or CLIP's start and end)
        if truncated[-1]:
            words[b] = words[b][: wid[max_tokens - 2]]  # up to the first word that does not fit completely
    if any(truncated):
        enc = _unpadded(tokenizer, words)
        word_ids = [enc.word_ids(b) for b in range(len(words))]
    rows = enc["input_ids"]
    T = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows], dtype=torch.long)  # (B, T), padded on the right
    mask = torch.tensor([[True] * len(r) + [False] * (T - len(r)) for r in rows])  # (B, T)
    word_ids = [w + [None] * (T - len(w)) for w in word_ids]
    return Encoded(ids, mask, word_ids, words, truncated)


def _unpadded(tokenizer, words: list[list[str]]):
    """Each caption's tokens with the specials, no padding, no truncation: a call that never
    changes the tokenizer's state (see :func:`unshare_state`)."""
    return tokenizer([w or [""] for w in words], is_split_into_words=True, padding=False, truncation=False)


def unshare_state(tokenizer) -> None:
    """Clear any padding or truncation a tokenizer file set on the Rust tokenizer, once, before
    threads share it, so that no later unpadded call has to change it (see :func:`encode_split`)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
