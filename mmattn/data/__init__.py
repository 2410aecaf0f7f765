"""Procedural "shapes world" data: scenes, captions (en / zh), datasets."""

from .captions import (
    LANGS, OPPOSITE, RELATIONS, WORD_KINDS, ZH_COLOURS, ZH_RELATIONS, ZH_SHAPES, ZH_SIZES,
    Caption, Phrase, Style, Word, caption_corpus, changed_span, realise, vocabulary,
)
from .dataset import ShapesDataset, fixed_split, sample_seed
from .render import (
    BACKGROUNDS, COLOURS, PALETTE, SHAPES, SHIFTED, SIZE_CLASSES, SIZES, TRAIN, RenderConfig,
)
from .scenes import (
    NEG_KINDS, RELATION_RATIO, Sample, SceneObject, caption_true, make_sample, matches,
    referents, relation_between, relation_plausible,
)

__all__ = [
    "BACKGROUNDS", "COLOURS", "LANGS", "NEG_KINDS", "OPPOSITE", "PALETTE", "RELATIONS",
    "RELATION_RATIO", "SHAPES", "SHIFTED", "SIZES", "SIZE_CLASSES", "TRAIN", "WORD_KINDS",
    "ZH_COLOURS", "ZH_RELATIONS", "ZH_SHAPES", "ZH_SIZES",
    "Caption", "Phrase", "RenderConfig", "Sample", "SceneObject", "ShapesDataset", "Style",
    "Word", "caption_corpus", "caption_true", "changed_span", "fixed_split", "make_sample",
    "matches", "realise", "referents", "relation_between", "relation_plausible",
    "sample_seed", "vocabulary",
]
