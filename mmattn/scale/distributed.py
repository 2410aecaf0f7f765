"""Grounding a Ray Data dataset on a cluster (``pip install "mmattn[ray]"``).

    import ray
    from mmattn.scale.distributed import ground_dataset

    ds = ray.data.read_csv("s3://bucket/captions.csv")        # columns: image (a path or URL the
    results = ground_dataset(ds, concurrency=8)               # workers can read), caption, ...
    results.write_parquet("s3://bucket/groundings/")

:func:`ground_dataset` runs :class:`GroundingPredictor` in a pool of ``concurrency`` actors
(``Dataset.map_batches``): each loads the model once and grounds a batch at a time with
``Grounder.ground_batch``. The result keeps the input's columns and adds
:data:`mmattn.scale.rows.COLUMNS` (``words``, ``boxes``, ``grounded``, ``scores``,
``match_score``, ``notice``, ``error``; ``maps`` with ``maps=True``). Rows come in no fixed
order unless ``DataContext.get_current().execution_options.preserve_order = True``.
docs/scale.md says how to run it on a cluster and what it measured.
"""

from __future__ import annotations

import numpy as np

from mmattn.api.grounder import Grounder
from mmattn.scale.rows import ground_rows

__all__ = ["GroundingPredictor", "ground_dataset"]


def _require_ray():
    try:
        import ray.data  # noqa: F401

        return ray
    except ImportError:
        raise ImportError('ground_dataset needs ray[data]: pip install "mmattn[ray]"') from None


class GroundingPredictor:
    """A callable class for ``Dataset.map_batches``: the model is loaded once per actor.

    ``model``: a checkpoint folder or hub id (None: the shipped model); ``method``, ``layer``,
    ``heads``: as ``Grounder.ground``; ``batch_size``: pairs per forward pass; ``maps``: add each
    pair's (W, gh, gw) patch-grid maps as an array column."""

    def __init__(self, model: str | None = None, method: str = "attention", batch_size: int = 32, *, layer: int | None = None,
                 heads: str | int = "mean", maps: bool = False, image_column: str = "image", caption_column: str = "caption",
                 precision: str = "auto"):  # fmt: skip
        self.grounder = Grounder.from_pretrained(model, precision=precision)
        self.grounder._check(layer, heads, method)  # a bad setting fails when the actor starts, not on every batch
        self.options = {"method": method, "layer": layer, "heads": heads, "batch_size": batch_size, "maps": maps}
        self.image_column, self.caption_column = image_column, caption_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for column in (self.image_column, self.caption_column):
            if column not in batch:
                raise ValueError(f"the dataset has no {column!r} column (its columns: {', '.join(batch)})")
        images = [_image(x) for x in batch[self.image_column]]
        captions = [str(c) for c in batch[self.caption_column]]
        rows = ground_rows(self.grounder, images, captions, **self.options)
        out = dict(batch)
        for key in rows[0] if rows else ():
            out[key] = _column([r[key] for r in rows])
        return out


def _image(x):
    """A dataset cell -> what ``load_image`` takes (paths and bytes as they are, arrays as arrays)."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":  # a numpy string
        return str(x)
    return x


def _column(values: list) -> np.ndarray:
    """A result column as Ray Data takes it: numbers as a numeric array, ragged values (lists,
    maps of different shapes, None) as an object array."""
    if values and all(isinstance(v, float) for v in values):
        return np.asarray(values, np.float64)
    col = np.empty(len(values), dtype=object)
    col[:] = values
    return col


def ground_dataset(ds, image_column: str = "image", caption_column: str = "caption", *, concurrency: int | tuple[int, int] = 1,
                   model: str | None = None, method: str = "attention", batch_size: int = 32, layer: int | None = None,
                   heads: str | int = "mean", maps: bool = False, num_cpus: float = 1, precision: str = "auto"):  # fmt: skip
    """``ds`` (a ``ray.data.Dataset`` with an image column, holding paths, bytes or arrays, and
    a caption column) grounded by ``concurrency`` actors (an int, or (min, max) to autoscale),
    each with ``num_cpus`` CPUs: a Dataset of the input's rows with the result columns added."""
    _require_ray()
    if isinstance(concurrency, bool) or not (isinstance(concurrency, int) and concurrency >= 1 or isinstance(concurrency, tuple)):
        raise ValueError(f"concurrency must be an int >= 1 or a (min, max) pair (got {concurrency!r})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size!r})")
    missing = [c for c in (image_column, caption_column) if c not in ds.columns()]
    if missing:
        raise ValueError(f"the dataset has no {', '.join(map(repr, missing))} column (its columns: {', '.join(ds.columns())})")
    import ray.data

    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    return ds.map_batches(
        GroundingPredictor,
        fn_constructor_kwargs={"model": model, "method": method, "batch_size": batch_size, "layer": layer, "heads": heads,
                               "maps": maps, "image_column": image_column, "caption_column": caption_column, "precision": precision},
        batch_size=batch_size, batch_format="numpy", compute=compute, num_cpus=num_cpus,
    )  # fmt: skip
