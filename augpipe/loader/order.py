"""Which dataset indices each batch of an epoch holds, for one rank.

Everything here is a pure function of (dataset size, seed, epoch, options): the main process
and a resumed run compute the same order without any saved state beyond (epoch, batch).

Rank partition (``world_size`` > 1): the epoch's order is cut into ``world_size`` contiguous
chunks of equal length.  With ``drop_last=False`` the order is first padded by wrapping around
to a multiple of ``world_size`` (up to ``world_size - 1`` samples appear twice in the epoch, on
different ranks); with ``drop_last=True`` the tail is dropped instead (up to ``world_size - 1``
samples are skipped this epoch), and each rank also drops its last partial batch.  Contiguous
chunks keep a rank's reads inside few shards when ``order="shard"``.
"""

from __future__ import annotations

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param

# streams of augpipe.rng used for ordering, apart from the augmentation streams
_SHARD_STREAM = 0x5EED0001
_WITHIN_STREAM = 0x5EED0100

ORDERS = ("global", "shard", "partitioned")  # partitioned: see partitioned.py


def _argsort_hash(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    keys = rng.bits(seed, epoch, np.arange(n, dtype=np.uint64), stream=stream)
    return np.argsort(keys, kind="stable").astype(np.int64)


def epoch_order(
    n: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    order: str = "global",
    shard_sizes: list[int] | None = None,
) -> np.ndarray:
    """All ``n`` dataset indices in this epoch's order.

    ``order="global"`` is a uniform permutation (``augpipe.rng.permutation``).
    ``order="shard"`` shuffles the shards, then the records inside each shard, so that
    consecutive batches read from one shard at a time (for datasets larger than RAM).
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    if order == "global" or not shard_sizes:
        return rng.permutation(n, seed, epoch)
    starts = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(np.int64)
    if starts[-1] != n:
        raise bad_param(
            "shard_sizes", f"sizes that add up to the dataset's {n} records", shard_sizes
        )
    parts = []
    for s in _argsort_hash(len(shard_sizes), seed, epoch, _SHARD_STREAM):
        size = int(shard_sizes[s])
        parts.append(starts[s] + _argsort_hash(size, seed, epoch, _WITHIN_STREAM + int(s)))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def rank_indices(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """This rank's share of an epoch's order; every rank gets the same number of samples."""
    n = len(order)
    if world_size == 1:
        return order
    if drop_last:
        per_rank = n // world_size
    else:
        per_rank = -(-n // world_size)
        pad = per_rank * world_size - n
        if pad:
            order = np.concatenate([order, np.resize(order, pad)])
    return order[rank * per_rank : (rank + 1) * per_rank]


def batch_count(n_samples: int, batch_size: int, drop_last: bool) -> int:
    return n_samples // batch_size if drop_last else -(-n_samples // batch_size)


def samples_per_rank(n: int, world_size: int, drop_last: bool) -> int:
    return n // world_size if drop_last else -(-n // world_size)


class EpochPlan:
    """The batches of one epoch for one rank: ``plan.batch(b)`` -> int64 indices."""

    def __init__(self, indices: np.ndarray, batch_size: int, drop_last: bool):
        self.indices = indices
        self.batch_size = batch_size
        self.n_batches = batch_count(len(indices), batch_size, drop_last)

    def batch(self, b: int) -> np.ndarray:
        return self.indices[b * self.batch_size : (b + 1) * self.batch_size]
