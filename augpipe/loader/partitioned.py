"""The shard-aware order (``order="partitioned"``): the same global batches for any number of
nodes, ranks and workers, with each node reading a bounded window of shards at a time.

Per epoch, a pure function of (dataset, seed, epoch, partitions, block):

1. the shards are shuffled (``augpipe.rng`` stream ``_SHARD_STREAM``, from (seed, epoch));
   their records, concatenated in that order, are cut into ``partitions`` equal contiguous
   parts (the canonical partitions; with ``drop_last=False`` the sequence first wraps round to
   a multiple of ``partitions``, so up to ``partitions - 1`` records appear twice);
2. each partition is shuffled within blocks of ``block`` consecutive positions (stream
   ``_BLOCK_STREAM``), so a partition needs only the few shards that its current block spans;
3. global step t takes the next ``c = global_batch / partitions`` records of every partition.

Rank r of W takes partitions ``[r*P/W, (r+1)*P/W)`` (ranks of a node are consecutive, so a node
reads only its partitions' shards), so its batch of step t is its partitions' chunks t: the
union over ranks is global batch t, whatever W is, as long as the global batch size
``batch_size * world_size`` stays the same.  Resuming needs only the samples consumed: each
partition continues at ``consumed / P``, at any world size (and any batch size: later batches
then differ, but no record is skipped or repeated).
"""

from __future__ import annotations

import numpy as np

from augpipe import rng
from augpipe.errors import ConfigError

_SHARD_STREAM = 0x5EED0201
_BLOCK_STREAM = 0x5EED0202
DEFAULT_BLOCK = 1 << 14


def check_layout(partitions: int, world_size: int, batch_size: int) -> int:
    """Records each partition gives a rank's batch per step (``c``); ConfigError otherwise."""
    if partitions % world_size:
        raise ConfigError(
            f"partitions: expected a multiple of world_size={world_size}, got {partitions}; "
            f"choose a partition count that every world size you run at divides (e.g. "
            f"{world_size * max(1, -(-partitions // world_size))})"
        )
    per_rank = partitions // world_size
    if batch_size % per_rank:
        raise ConfigError(
            f"batch_size: with partitions={partitions} over world_size={world_size} a rank "
            f"reads {per_rank} partitions, so batch_size must be a multiple of {per_rank}, got "
            f"{batch_size}"
        )
    return batch_size // per_rank


class PartitionedOrder:
    """The partitions of each epoch (see the module docstring).

    ``order.partitions_of(epoch)`` -> (P, L) int64 record indices.
    """

    def __init__(self, shard_sizes, seed: int, shuffle: bool, partitions: int, block: int,
                 drop_last: bool):  # fmt: skip
        self.sizes = np.asarray(shard_sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n = int(self.starts[-1])
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.partitions, self.block = int(partitions), int(block)
        self.length = self.n // self.partitions if drop_last else -(-self.n // self.partitions)
        if self.length < 1:
            raise ConfigError(
                f"partitions: {self.partitions} partitions of a {self.n}-record dataset leave "
                "none for some partition; use fewer partitions"
            )
        self._cache: tuple[int, np.ndarray] | None = None

    def shard_of(self, indices: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, indices, side="right") - 1

    def partitions_of(self, epoch: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        s_count = len(self.sizes)
        if self.shuffle:
            keys = rng.bits(self.seed, epoch, np.arange(s_count, dtype=np.uint64), _SHARD_STREAM)
            shards = np.argsort(keys, kind="stable")
        else:
            shards = np.arange(s_count)
        # records of the shards in that order: each shard's start, then consecutive
        lens = self.sizes[shards]
        seq = np.repeat(self.starts[shards] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        seq += np.arange(self.n, dtype=np.int64)
        total = self.length * self.partitions
        seq = np.resize(seq, total) if total > self.n else seq[:total]
        parts = seq.reshape(self.partitions, self.length)
        if self.shuffle:
            pos = np.arange(total, dtype=np.uint64).reshape(parts.shape)
            keys = rng.bits(self.seed, epoch, pos, _BLOCK_STREAM)
            block_id = np.arange(self.length) // self.block
            parts = np.stack([p[np.lexsort((k, block_id))] for p, k in zip(parts, keys)])
        self._cache = (epoch, parts)
        return parts


class PartitionedPlan:
    """One rank's batches of one epoch from partition position ``offset`` on (the interface of
    ``order.EpochPlan``: ``n_batches``, ``batch(b)``, ``indices``)."""

    def __init__(self, order: PartitionedOrder, epoch: int, rank: int, world_size: int,
                 batch_size: int, offset: int = 0):  # fmt: skip
        self.chunk = check_layout(order.partitions, world_size, batch_size)
        per_rank = order.partitions // world_size
        self.order, self.offset, self.batch_size = order, int(offset), batch_size
        self.parts = order.partitions_of(epoch)[rank * per_rank : (rank + 1) * per_rank, offset:]
        remaining = order.length - self.offset
        c = self.chunk
        self.n_batches = remaining // c if order.drop_last else -(-remaining // c)

    def batch(self, b: int) -> np.ndarray:
        c = self.chunk
        return self.parts[:, b * c : (b + 1) * c].reshape(-1)

    def chunk_len(self, b: int) -> int:
        """Records each partition gives batch ``b`` (``c``, less in a last partial batch)."""
        return max(0, min(self.chunk, self.order.length - self.offset - b * self.chunk))

    @property
    def indices(self) -> np.ndarray:
        if self.n_batches == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([self.batch(b) for b in range(self.n_batches)])


class NodeSchedule:
    """Which shards a node's ranks need at each step, for prefetch, eviction and the cache size.

    ``plans``: the epoch plans of the node's ranks (torchrun numbers them consecutively);
    ``shard_of``: record indices -> shard numbers.
    """

    def __init__(self, plans: list, shard_of, shard_bytes: np.ndarray):
        self.bytes = np.asarray(shard_bytes, dtype=np.int64)
        pairs = [np.zeros((2, 0), np.int64)]
        for plan in plans:  # an EpochPlan or a PartitionedPlan: only the last batch is short
            idx = plan.indices
            steps = np.arange(len(idx), dtype=np.int64) // plan.batch_size
            pairs.append(np.stack([shard_of(idx).astype(np.int64), steps]))
        pairs = np.unique(np.concatenate(pairs, axis=1), axis=1)  # sorted by shard, then step
        self.shard, self.step = pairs[0], pairs[1]
        self.n_steps = max([p.n_batches for p in plans] + [0])
        by_step = np.lexsort((self.shard, self.step))
        self._step_sorted = (self.step[by_step], self.shard[by_step])
        self._bounds = np.searchsorted(self.shard, np.arange(len(self.bytes) + 1))
        # last step that needs each shard (-1: none this epoch)
        ends = self._bounds[1:]
        used = ends > self._bounds[:-1]
        self.last_step = np.where(used, self.step[np.maximum(ends - 1, 0)], -1)

    def steps_of(self, shard: int) -> np.ndarray:
        return self.step[self._bounds[shard] : self._bounds[shard + 1]]

    def next_use(self, shard: int, now: int) -> float:
        """Steps from ``now`` until the node next needs ``shard`` (inf: not this epoch)."""
        steps = self.steps_of(shard)
        k = np.searchsorted(steps, now)
        return float(steps[k] - now) if k < len(steps) else float("inf")

    def upcoming(self, now: int) -> list[int]:
        """The shards needed from step ``now`` on, in order of first need."""
        steps, shards = self._step_sorted
        ahead = shards[np.searchsorted(steps, now) :]
        _, first = np.unique(ahead, return_index=True)
        return [int(s) for s in ahead[np.sort(first)]]

    def peak_bytes(self, window: int) -> int:
        """The most bytes of shards live at once when ``window`` consecutive steps are in
        flight (held by the consumer, or being built by the workers)."""
        if len(self.shard) == 0:
            return 0
        sh, st = self.shard, self.step
        new = np.ones(len(sh), bool)
        new[1:] = (sh[1:] != sh[:-1]) | (st[1:] - st[:-1] > window)
        last = np.append(new[1:], True)
        lo = np.maximum(st[new] - window + 1, 0)
        hi = st[last]
        diff = np.zeros(self.n_steps + 2, np.int64)
        b = self.bytes[sh[new]]
        np.add.at(diff, lo, b)
        np.add.at(diff, hi + 1, -b)
        return int(np.cumsum(diff).max())
