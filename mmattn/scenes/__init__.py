"""The shapes world: procedurally generated scenes and captions with known answers."""

from mmattn.scenes.dataset import ShapesDataset, fixed_split, sample_seed
from mmattn.scenes.render import BACKGROUNDS, COLOURS, PALETTE, SHAPES, SHIFTED, SIZES, TRAIN, RenderConfig
from mmattn.scenes.samples import (
    ZH_COLOURS,
    ZH_RELATIONS,
    ZH_SHAPES,
    ZH_SIZES,
    ZH_WORDS,
    Caption,
    Sample,
    SceneObject,
    Word,
    caption_corpus,
    make_sample,
    relation,
)

__all__ = [
    "BACKGROUNDS", "COLOURS", "PALETTE", "SHAPES", "SHIFTED", "SIZES", "TRAIN", "ZH_COLOURS", "ZH_RELATIONS",
    "ZH_SHAPES", "ZH_SIZES", "ZH_WORDS", "Caption", "RenderConfig", "Sample", "SceneObject", "ShapesDataset", "Word",
    "caption_corpus", "fixed_split", "make_sample", "relation", "sample_seed",
]  # fmt: skip
