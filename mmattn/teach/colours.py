"""One colour per word, that never contradicts the word: a colour word ("red", "红色") is drawn
in its own colour family; every other word takes a colour from a family the caption does not
name (so "square" is never drawn in red next to the word "red").

The same colours are used everywhere a word is shown: its map and outline on the picture, its
box, its chip in the legend and its box in the word picker."""

from __future__ import annotations

#: colour family -> its colour (dark enough to read on white and on the scenes' grey)
FAMILIES = {
    "red": "#d62728", "orange": "#e8730c", "yellow": "#b59b00", "green": "#2ca02c", "cyan": "#0f9fb0",
    "blue": "#1f5fbf", "purple": "#8e44ad", "pink": "#e0529c", "brown": "#8c564b", "grey": "#6b7280",
}  # fmt: skip
#: the words that name a family, in English and Chinese (single characters too: a caption read character by character)
NAMES = {
    "red": ("red", "红色", "红"), "orange": ("orange", "橙色", "橙"), "yellow": ("yellow", "黄色", "黄"),
    "green": ("green", "绿色", "绿"), "cyan": ("cyan", "青色", "青"), "blue": ("blue", "蓝色", "蓝"),
    "purple": ("purple", "紫色", "紫"), "pink": ("pink", "粉色", "粉", "粉红色"), "brown": ("brown", "棕色", "棕"),
    "grey": ("grey", "gray", "灰色", "灰"),
}  # fmt: skip
WORD_FAMILY = {w: family for family, words in NAMES.items() for w in words}
#: the order in which content words that name no colour take the families the caption leaves free
OTHERS = ("brown", "cyan", "purple", "orange", "pink", "green", "yellow", "blue", "red")
NEUTRAL = "grey"  #: function words ("the", "of", "的"): the model grounds none of them


def colour_family(word: str) -> str | None:
    """The colour family ``word`` names ("red" for "red", "Red" and "红色"), or None."""
    return WORD_FAMILY.get(word.strip().lower())


def word_colours(words: list[str], function_words=frozenset()) -> list[str]:
    """A colour for each word: its own family for a colour word, grey for a function word; for
    the others, in turn, the families the caption does not name (cycled when there are more
    words than free families)."""
    named = {colour_family(w) for w in words} - {None}
    free = [f for f in OTHERS if f not in named] or list(OTHERS)
    out, k = [], 0
    for w in words:
        family = colour_family(w)
        if family is None and w.strip().lower() in function_words:
            family = NEUTRAL
        elif family is None:
            family, k = free[k % len(free)], k + 1
        out.append(FAMILIES[family])
    return out
