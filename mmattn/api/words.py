"""Words a model does not know: "did you mean" by Damerau-Levenshtein distance.

:func:`suggest` proposes a close known word for an unknown one (a typo: "sqare" ->
"square"); a swap of two neighbouring letters counts as one edit, so "circel" -> "circle".
Every backend uses it with its own vocabulary (``Grounder.suggest``).
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher


def _distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
    substitutions and swaps of neighbouring characters each cost 1."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _allowed_edits(word: str) -> int:
    """Edits a typo may have: none under 3 characters (too short to guess), 1 up to 7, 2 beyond."""
    return 0 if len(word) < 3 else 1 if len(word) < 8 else 2


def suggest(word: str, known_words: Iterable[str]) -> str | None:
    """The known word closest to ``word`` when it is close enough to be a typo, else None
    (also None when ``word`` is known). Case-insensitive; ties go to the more similar
    spelling (difflib's ratio), then alphabetically.

    >>> suggest("sqare", {"square", "star"}), suggest("cat", {"circle", "a"})
    ('square', None)
    """
    w = word.strip().lower()
    known = {k.lower() for k in known_words}
    if not w or w in known:
        return None
    limit = _allowed_edits(w)
    best = None
    for k in known:
        if abs(len(k) - len(w)) > limit:
            continue
        d = _distance(w, k)
        if d <= limit:
            key = (d, -SequenceMatcher(None, w, k).ratio(), k)
            best = min(best, key) if best else key
    return best[2] if best else None


def unknown_word_message(word: str, suggestion: str | None = None, lang: str = "en") -> str:
    """One sentence: ``word`` is not in the model's vocabulary (and the suggestion, if any).

    >>> unknown_word_message("sqare", "square")
    '"sqare" is not in the model\\'s vocabulary — did you mean "square"?'
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh' (got {lang!r})")
    if lang == "en":
        tail = f' — did you mean "{suggestion}"?' if suggestion else "."
        return f'"{word}" is not in the model\'s vocabulary{tail}'
    tail = f"——你是不是想说“{suggestion}”？" if suggestion else "。"
    return f"“{word}”不在模型的词汇表中{tail}"
