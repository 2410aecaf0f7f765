"""A torch IterableDataset of shapes-world samples that works with worker processes and DDP."""

from __future__ import annotations

import torch
from torch.utils.data import IterableDataset

from mmattn.scenes.render import TRAIN, RenderConfig
from mmattn.scenes.samples import Sample, make_sample


def sample_seed(seed: int, index: int) -> int:
    """The scene seed of sample ``index`` of a dataset with base ``seed``."""
    return seed * 1_000_003 + index


class ShapesDataset(IterableDataset):
    """Samples ``i = 0, 1, ...`` (``length`` of them, or forever), sample i drawn with
    :func:`sample_seed` (seed, i). Indices are split across DataLoader workers and
    distributed ranks, so each index is produced exactly once. ``sizes`` cycles image
    sizes (width, height) by index."""

    def __init__(self, seed: int = 0, length: int | None = None, width: int = 128, height: int = 128,
                 config: RenderConfig = TRAIN, lang: str | None = None, sizes: list[tuple[int, int]] | None = None):  # fmt: skip
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0 or None (got {length})")
        self.seed, self.length, self.config, self.lang = seed, length, config, lang
        self.sizes = list(sizes) if sizes else [(width, height)]

    def sample(self, i: int) -> Sample:
        w, h = self.sizes[i % len(self.sizes)]
        return make_sample(sample_seed(self.seed, i), w, h, self.config, self.lang)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        shard, shards = rank * nw + wid, world * nw
        i = shard
        while self.length is None or i < self.length:
            yield self.sample(i)
            i += shards


def fixed_split(n: int, seed: int, **kw) -> list[Sample]:
    """The first ``n`` samples of ``ShapesDataset(seed, **kw)`` as a list (evaluation sets)."""
    ds = ShapesDataset(seed=seed, length=n, **kw)
    return [ds.sample(i) for i in range(n)]
