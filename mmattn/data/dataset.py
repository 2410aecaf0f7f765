"""Torch dataset of procedurally generated shapes-world samples.

Sample ``i`` of ``ShapesDataset(seed=s)`` is ``make_sample(sample_seed(s, i),
...)``, so every index is reproducible on its own, whatever the sharding.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from .render import TRAIN, RenderConfig
from .scenes import Sample, make_sample

logger = logging.getLogger(__name__)


def sample_seed(seed: int, index: int) -> int:
    """64-bit seed of sample ``index`` of a dataset with base ``seed``."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    hi, lo = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return (int(hi) << 32) | int(lo)


class ShapesDataset(IterableDataset):
    """Infinite (``length=None``) or finite stream of :class:`Sample` s.

    Indices are sharded across distributed ranks and DataLoader workers: the
    stream with ``R`` ranks x ``K`` workers gives shard ``rank * K + worker``
    the indices ``shard, shard + R*K, shard + 2*R*K, ...`` so no index is
    produced twice and, for finite length, the union is ``range(length)``.

    Args:
        seed: base seed.
        length: number of samples (None = infinite).
        width, height: image size when ``sizes`` is None.
        config: render preset (TRAIN, SHIFTED, ...).
        lang: "en", "zh" or None (random per sample).
        sizes: optional list of (width, height); sample i uses
            ``sizes[i % len(sizes)]``.
    """

    def __init__(self, seed: int = 0, length: int | None = None, width: int = 128,
                 height: int = 128, config: RenderConfig = TRAIN, lang: str | None = None,
                 sizes: list[tuple[int, int]] | None = None) -> None:
        super().__init__()
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if length is not None and length < 0:
            raise ValueError(f"length must be non-negative or None, got {length}")
        if sizes is not None and len(sizes) == 0:
            raise ValueError(f"sizes must be None or non-empty, got {sizes!r}")
        self.seed = seed
        self.length = length
        self.width = width
        self.height = height
        self.config = config
        self.lang = lang
        self.sizes = [tuple(s) for s in sizes] if sizes is not None else None

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("infinite ShapesDataset (length=None) has no len()")
        return self.length

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of sample ``index``."""
        if self.sizes is None:
            return self.width, self.height
        return self.sizes[index % len(self.sizes)]

    def sample(self, index: int) -> Sample:
        """Sample ``index`` (random access, independent of sharding)."""
        if self.length is not None and not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for length {self.length}")
        width, height = self.size_of(index)
        s = make_sample(sample_seed(self.seed, index), width, height, self.config, self.lang)
        s.index = index
        return s

    def __getitem__(self, index: int) -> Sample:
        return self.sample(index)

    @staticmethod
    def _shard() -> tuple[int, int]:
        """(shard id, number of shards) over distributed ranks x workers."""
        rank, world = 0, 1
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nworkers + wid, world * nworkers

    def __iter__(self) -> Iterator[Sample]:
        shard, n_shards = self._shard()
        if self.length is None:
            indices = itertools.count(shard, n_shards)
        else:
            indices = iter(range(shard, self.length, n_shards))
        for index in indices:
            yield self.sample(index)


def fixed_split(n: int, seed: int, **kw) -> list[Sample]:
    """The first ``n`` samples of ``ShapesDataset(seed=seed, length=n, **kw)``
    (single process), e.g. for evaluation sets."""
    ds = ShapesDataset(seed=seed, length=n, **kw)
    return [ds.sample(i) for i in range(n)]


__all__ = ["ShapesDataset", "fixed_split", "sample_seed"]
