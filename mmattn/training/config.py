"""The configuration of a training run (``mmattn train``): :class:`TrainConfig`.

Its own module so that the checkpoint writer (:mod:`mmattn.training.state`) and the training
loop (:mod:`mmattn.training.train`) both read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmattn.api.precision import ARITHMETICS
from mmattn.training.batches import RELATION_NEGATIVES

MIN_SIDE, MAX_SIDE = 32, 1024  #: training image sides (pixels): scenes need at least 32 (mmattn.scenes.make_sample)
#: image sizes (width, height) drawn for training batches: square and both orientations
TRAIN_SIZES = ((96, 96), (96, 72), (72, 96), (96, 64), (64, 96), (96, 80), (80, 96), (96, 48), (48, 96))


@dataclass
class TrainConfig:
    out: str = "runs/default"  # checkpoints go to OUT/last (the last one is the final model)
    steps: int = 1500
    batch_size: int = 64  # images per process per step (each with a true and a counterfactual caption)
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    seed: int = 0
    match: bool = True
    contrastive: bool = False
    grounding: bool = True  # supervise attention with the masks (False = weakly supervised)
    aux: bool = True
    grounded: bool = True
    eval_every: int = 250
    eval_scenes: int = 200
    ckpt_every: int = 100
    workers: int = 1
    minutes: float | None = None  # stop (and save) after this much training time
    resume: bool = False
    sizes: tuple = TRAIN_SIZES  # (width, height) of training images, cycled by step
    #: scenes are drawn this many times the training size, then resized to it by the model's
    #: resize policy, as a user's bigger (or smaller) image is; cycled per round of ``sizes``
    render_scales: tuple = (1.0,)
    model: dict = field(default_factory=dict)  # GroundingConfig overrides
    relation_negatives: float = RELATION_NEGATIVES  # share of relational captions trained against their relation swap
    precision: str = "float32"  # arithmetic of forward and backward: "float32" or "bfloat16" (autocast)
    #: decay of the moving average of the weights that is evaluated and saved (0: none, the raw weights)
    ema: float = 0.0
    #: also checkpoint at the step that crosses each of these minutes, kept as OUT/at-{m}min
    snapshots: tuple = ()
    #: share of the scenes drawn as relational scenes (:mod:`mmattn.scenes.relational`: a
    #: same-shape distractor that only the relation to a landmark tells apart)
    relational: float = 0.0
    #: start from the weights of this checkpoint folder (fine-tuning), with its tokenizer and
    #: config (``model`` overrides it); parameters it lacks (new sublayers) keep their initialisation
    init: str | None = None
    #: parts of the model that are not trained, as prefixes of parameter names (e.g.
    #: ("text_encoder", "image_encoder", "fusion.0") when fine-tuning a new sublayer: faster
    #: steps, and what the frozen parts know stays); ``unfreeze`` prefixes are trained anyway
    freeze: tuple = ()
    unfreeze: tuple = ()
    anchor: bool = True  # supervise an AnchorBias's roles, direction and gate with the captions' structure
    #: an AnchorBias's parameters (small linear reads of the text) learn at this multiple of ``lr``
    anchor_lr: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.relational <= 1.0:
            raise ValueError(f"relational is a share in [0, 1] (got {self.relational!r})")
        for name, least in (("steps", 1), ("batch_size", 1), ("ckpt_every", 1), ("eval_every", 0), ("eval_scenes", 1),
                            ("workers", 0), ("warmup", 0)):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be a whole number >= {least} (got {value!r})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr!r})")
        if not self.sizes:
            raise ValueError("sizes must list at least one WIDTHxHEIGHT, e.g. 96x96")
        for size in self.sizes:
            if len(size) != 2 or any(not isinstance(v, int) or v < MIN_SIDE or v > MAX_SIDE for v in size):
                raise ValueError(f"each training size must be WIDTHxHEIGHT with sides {MIN_SIDE}..{MAX_SIDE} pixels "
                                 f"(got {'x'.join(map(str, size))}), e.g. 96x96,96x72")  # fmt: skip
            for scale in self.render_scales:
                if min(size) * scale < MIN_SIDE:
                    raise ValueError(f"render scale {scale:g} draws {'x'.join(map(str, size))} images below "
                                     f"{MIN_SIDE} pixels a side: use larger sizes or scales")  # fmt: skip
        if self.precision not in ARITHMETICS:
            raise ValueError(f"precision must be one of {', '.join(ARITHMETICS)} (got {self.precision!r})")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema is a decay in [0, 1), e.g. 0.998 (got {self.ema!r})")
