"""Chinese-CLIP behind the CLIP backend: Chinese (and English) captions on photographs.

``Grounder.from_pretrained(folder)`` on a transformers Chinese-CLIP checkpoint (``config.json``
with ``model_type: chinese_clip``, e.g. OFA-Sys/chinese-clip-vit-base-patch16) gives a
:class:`ChineseClipGrounder`: the CLIP backend's model (:class:`~mmattn.clip.ClipGroundingModel`,
the same vision tower, dense features and zero-shot fusion) with a BERT text tower and
its processor.

What differs from CLIP:

- **Words**: Chinese is segmented into words by ``jieba`` ("红色的狗" -> 红色 / 的 / 狗;
  BERT's tokenizer still reads one token per character), a run of letters and digits
  ("dog's", "2024") is a word, and so is a run of punctuation; the tokenizer's ``word_ids``
  merge a word's characters and WordPiece pieces back. A word the vocabulary does not hold
  (any ``[UNK]`` piece) is reported as unknown. The text tower still reads each token's
  prompt per character-or-piece run (:meth:`ChineseClipTextEncoder._words`); a word's map
  is the mean of its tokens' maps.
- **Text tower**: BERT, pooled at ``[CLS]`` (Chinese-CLIP's ``get_text_features``), so
  ``[CLS]`` reads the whole caption in the fusion; ``[SEP]`` and padding read the neutral
  prompt. Words are read alone in ``"一张{}的照片。"`` ("a photo of {}"), the reference being
  ``"一张照片。"`` ("a photo."); Chinese function characters (的, 是, 在, ...) are never grounded.

Index letters: B batch, T tokens, V vocabulary.
"""

from __future__ import annotations

import re
import unicodedata

import torch
from torch import Tensor, nn

from mmattn.backends.clip.grounder import ClipGrounder, ClipProcessor
from mmattn.backends.clip.model import FUNCTION_WORDS, ClipGroundingConfig, ClipTextEncoder
from mmattn.models.segment import CJK, CJK_RUN, jieba_words
from mmattn.models.tokenizer import MAX_TOKENS, Encoded, encode_split

PROMPT = "一张{}的照片。"  #: the template a word is read in ("a photo of {}.")
NEUTRAL = "一张照片。"  #: the neutral prompt ("a photo.")
#: Chinese characters that name no region: particles, prepositions, relations, pronouns, measure words
FUNCTION_CHARS = frozenset(
    "的得了着过是在和与及或也都很就还又而且但把被从向往对于之其这那些个只张一上下左右前后里中间旁边外内他她它们我你有没无不"
)
#: a word: a run of Chinese characters (segmented further by jieba), a run of other
#: letters/digits (inner apostrophes), or punctuation
WORD = re.compile(rf"[{CJK}]+|[^\W{CJK}]+(?:['’][^\W{CJK}]+)*|[^\w\s]+")


def split_words(caption: str) -> list[str]:
    """The caption's words, Chinese by ``jieba``: "红色的狗, a red dog!" -> ["红色", "的", "狗",
    ",", "a", "red", "dog", "!"]."""
    words = []
    for w in WORD.findall(unicodedata.normalize("NFC", caption).lower()):
        words += jieba_words(w) if CJK_RUN.fullmatch(w) else [w]
    return words


def encode_words(tokenizer, captions: list[str], max_tokens: int = MAX_TOKENS) -> Encoded:
    """Tokenise captions word by word with a BERT tokenizer, keeping the word of every token;
    a caption longer than ``max_tokens`` tokens ([CLS] and [SEP] included) keeps its first
    whole words that fit and is flagged in ``truncated``."""
    return encode_split(tokenizer, [split_words(c) or [""] for c in captions], max_tokens)


class ChineseClipTextEncoder(ClipTextEncoder):
    """Chinese-CLIP's BERT text tower -> unit-norm features of every token in the joint space
    (:class:`~mmattn.clip.ClipTextEncoder`'s rules, pooled at ``[CLS]``, words from WordPiece)."""

    def __init__(self, text_model: nn.Module, text_projection: nn.Linear, tokenizer, config: ClipGroundingConfig):
        nn.Module.__init__(self)
        self.text_model, self.text_projection = text_model, text_projection
        self.mode = config.text_queries
        self.bos_id, self.eos_id = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)  # [CLS] ... [SEP]
        self.pad_id = int(tokenizer.pad_token_id)
        size = max(len(tokenizer), text_model.config.vocab_size)
        continues, function = torch.zeros(size, dtype=torch.bool), torch.zeros(size, dtype=torch.bool)
        for tok, i in tokenizer.get_vocab().items():
            continues[i] = tok.startswith("##")
            function[i] = tok in FUNCTION_CHARS or tok in FUNCTION_WORDS
        self.register_buffer("continues", continues, persistent=False)  # (V,) a WordPiece continuation (##...)
        self.register_buffer("function", function, persistent=False)  # (V,) the token is a whole function word
        self._set_prompts(tokenizer, config)

    def _pooled(self, out) -> Tensor:
        """The text tower's output -> (N, Dt) at [CLS], as Chinese-CLIP's ``get_text_features``."""
        return out.last_hidden_state[:, 0]

    def _pool_index(self, ids: Tensor, real: Tensor) -> Tensor:
        return torch.zeros(ids.size(0), dtype=torch.long, device=ids.device)  # [CLS]

    def _words(self, ids: Tensor, content: Tensor) -> list[tuple[int, list[int], tuple[int, ...]]]:
        """The words of each caption as (b, token positions, token ids): runs of content
        tokens, a new word at every token that is not a ``##`` continuation."""
        B, T = ids.shape
        ids_l, content_l, cont_l = ids.tolist(), content.tolist(), self.continues[ids].tolist()
        spans = []
        for b in range(B):
            run: list[int] = []
            for t in range(T + 1):
                starts = t == T or not content_l[b][t] or not cont_l[b][t]
                if run and starts:
                    spans.append((b, run, tuple(ids_l[b][i] for i in run)))
                    run = []
                if t < T and content_l[b][t]:
                    run.append(t)
        return spans


class ChineseClipProcessor(ClipProcessor):
    """Chinese-CLIP's processor: words by :func:`split_words` (Chinese by ``jieba``),
    BERT's WordPiece, and CLIP's pixels (the checkpoint's ``ChineseCLIPImageProcessor`` mean,
    std and filter)."""

    languages = ("zh", "en")

    def encode(self, captions: list[str]) -> Encoded:
        return encode_words(self.tokenizer, captions, self.max_tokens)


class _WordPieceVocabulary:
    """The words a WordPiece tokenizer reads without ``[UNK]`` (``in``); iterating gives its
    whole-word tokens (what "did you mean" suggestions are drawn from)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.unk = tokenizer, tokenizer.unk_token_id
        self.words = tuple(t for t in tokenizer.get_vocab() if not t.startswith(("##", "[")))

    def __contains__(self, word) -> bool:
        ids = self.tokenizer(str(word), add_special_tokens=False)["input_ids"]
        return bool(ids) and self.unk not in ids

    def __iter__(self):
        return iter(self.words)


class ChineseClipGrounder(ClipGrounder):
    """The CLIP backend on a Chinese-CLIP checkpoint (Chinese and English captions:
    ``processor.languages``)."""

    config_defaults = {"prompt": PROMPT, "neutral": NEUTRAL}
    model_types = ("chinese_clip",)
    clip_class, image_processor_class = "ChineseCLIPModel", "ChineseCLIPImageProcessor"
    text_encoder_class = ChineseClipTextEncoder  # BERT, pooled at [CLS]

    def __init__(self, model, tokenizer, image_processor, **kwargs):
        super().__init__(model, tokenizer, image_processor, **kwargs)
        cfg = model.config
        self.processor = ChineseClipProcessor(tokenizer, image_processor, image_size=cfg.image_size, patch_size=cfg.patch_size)
        self._known = _WordPieceVocabulary(tokenizer)
        self.backend = f"Chinese-CLIP backend, {'trained' if self.trained else 'zero-shot'} fusion"
