"""mmattn: bidirectional multimodal cross-attention for grounding words in images.

    import mmattn
    g = mmattn.Grounder.from_pretrained()          # the shipped model in assets/model
    r = g.ground("scene.png", "a red circle left of the blue square")
    r.words, r.word_maps, r.grounded, r.boxes, r.match_score, r.words_at(x, y)
"""

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .grounding import Grounder
from .model import CheckpointError, GroundingConfig, GroundingModel, GroundingOutput
from .positional import sinusoidal_1d, sinusoidal_2d
from .result import Grounding

__all__ = [
    "CheckpointError",
    "Grounder",
    "Grounding",
    "GroundingConfig",
    "GroundingModel",
    "GroundingOutput",
    "MultiHeadAttention",
    "scaled_dot_product_attention",
    "sinusoidal_1d",
    "sinusoidal_2d",
]
__version__ = "0.1.0"
