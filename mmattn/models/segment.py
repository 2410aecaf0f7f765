"""Chinese word segmentation: Chinese is written without spaces, so words must be found.

- :func:`jieba_words` splits a run of Chinese characters with ``jieba`` (a maintained
  dictionary + HMM segmenter): "蓝色的天空" -> ["蓝色", "的", "天空"].
- :func:`lexicon_words` splits by longest match over the words a model knows (its
  lexicon), handing every run that no known word covers to :func:`jieba_words`:
  "红色的圆在蓝色方块的左边" with the shapes world's words -> ["红色", "的", "圆", "在",
  "蓝色", "方块", "的", "左边"].

Segmentation decides only which characters form a word; the tokens (one per character for
BERT-style tokenizers) stay as the model was trained, and a word's tokens are merged back
through ``word_ids`` as subword pieces are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from functools import cache

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  #: the CJK ideograph blocks (as BERT's tokenizer counts them)
CJK_RUN = re.compile(f"[{CJK}]+")


def is_cjk(text: str) -> bool:
    """Whether ``text`` is non-empty and made only of Chinese characters."""
    return bool(text) and CJK_RUN.fullmatch(text) is not None


@cache
def _jieba():
    import jieba  # imported on first use: it builds its prefix dictionary (~0.5 s)

    jieba.setLogLevel(logging.WARNING)  # it prints "Building prefix dict ..." otherwise
    return jieba


def jieba_words(run: str) -> list[str]:
    """A run of Chinese characters -> its words by ``jieba`` (accurate mode, HMM for new words)."""
    if not run:
        return []
    return [w for w in _jieba().lcut(run, HMM=True) if w.strip()]


def lexicon_words(run: str, lexicon: Collection[str]) -> list[str]:
    """A run of Chinese characters -> words by longest match over ``lexicon``; each stretch
    no lexicon word starts in is split by :func:`jieba_words`.

    >>> lexicon_words("小的红色圆形", {"小", "的", "红色", "圆形", "圆"})
    ['小', '的', '红色', '圆形']
    """
    longest = max(map(len, lexicon), default=0)
    out: list[str] = []
    i, unknown = 0, ""
    while i < len(run):
        match = next((run[i : i + n] for n in range(min(longest, len(run) - i), 0, -1) if run[i : i + n] in lexicon), None)
        if match is None:
            unknown += run[i]
            i += 1
            continue
        out += jieba_words(unknown)
        unknown = ""
        out.append(match)
        i += len(match)
    return out + jieba_words(unknown)
