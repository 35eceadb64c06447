"""``ShardFeeder``: a remote dataset's shards, there when the loader's batches need them.

The loader's order is known in advance, so the feeder (in the main process of each rank):

- checks at start that ``cache_limit`` holds the node's live window (the shards of the
  ``window`` batches in flight, over all ranks of the node) and refuses otherwise, saying the
  smallest limit that works;
- pins the shards of each batch before it is handed to a worker and unpins them once the
  consumer has moved past it (pinned shards are never evicted, by any process of the node);
- prefetches, in a background thread, the shards in order of first need, as far ahead as
  the cache has room without pushing out a shard needed sooner;
- tells the cache each shard's next use, so that eviction takes the one needed last.

Workers only open shards that are already there.
"""

from __future__ import annotations

import threading

import numpy as np

from augpipe.errors import ConfigError, RemoteError
from augpipe.loader.partitioned import NodeSchedule
from augpipe.remote.cache import format_size

_IDLE_S = 0.1


class ShardFeeder:
    """Drives ``cache`` (a ``ShardCache``) for a dataset with shards ``names``."""

    def __init__(self, cache, names: list[str], shard_of):
        self.cache, self.names, self.shard_of = cache, list(names), shard_of
        self.bytes = np.array([cache.size[n] for n in self.names], dtype=np.int64)
        self._index = {n: i for i, n in enumerate(self.names)}
        self._pins: dict[tuple[int, int], list[str]] = {}  # (epoch, batch) -> shards
        self._now = 0
        self._schedule: NodeSchedule | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def check(self, plans: list, window: int, what: str, more: tuple = ()) -> NodeSchedule:
        """The node's schedule for ``plans``; ConfigError when the cache cannot hold it, or
        cannot hold the schedule of any plan list in ``more`` (the next epochs, at start)."""
        schedule = NodeSchedule(plans, self.shard_of, self.bytes)
        limit = self.cache.limit
        if limit is not None:
            peak = schedule.peak_bytes(window)
            if more:  # also when already over: the limit suggested must hold every epoch
                peak = max([peak] + [NodeSchedule(p, self.shard_of, self.bytes).peak_bytes(window)
                                     for p in more])  # fmt: skip
            if peak > limit:
                raise ConfigError(
                    f"cache_limit: {format_size(limit)} is smaller than the {format_size(peak)} "
                    f"of shards this node needs at once ({what}, {window} batches in flight); "
                    f"use cache_limit={format_size(peak)!r} or more, or lower prefetch or "
                    "(order='partitioned') block"
                )
        return schedule

    def begin(self, schedule: NodeSchedule, start: int) -> None:
        """Start prefetching for an epoch whose next batch is ``start``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._schedule, self._now = schedule, start
        self.cache.next_use = self._next_use
        self._stop.clear()
        self._thread = threading.Thread(target=self._prefetch, name="augpipe-prefetch",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _next_use(self, name: str) -> float:
        s = self._index.get(name)
        if s is None or self._schedule is None:
            return float("inf")
        return self._schedule.next_use(s, self._now)

    def acquire(self, epoch: int, b: int, indices: np.ndarray) -> None:
        """Pin (and fetch if need be) the shards of batch ``b`` of ``epoch`` before a worker
        builds it."""
        names = [self.names[s] for s in np.unique(self.shard_of(indices))]
        for name in names:
            self.cache.pin(name)
        self._pins[(epoch, b)] = names
        for name in names:
            self.cache.ensure(name, required=True)

    def release(self, epoch: int, b: int) -> None:
        """The consumer is past batch ``b`` of ``epoch``."""
        for name in self._pins.pop((epoch, b), ()):
            self.cache.unpin(name)
        self._now = max(self._now, b + 1)

    def end(self, epoch: int | None = None) -> None:
        """Stop prefetching and drop the pins of ``epoch`` and before (None: every pin; a
        batch of a later epoch may already be with a worker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for key in [k for k in self._pins if epoch is None or k[0] <= epoch]:
            for name in self._pins.pop(key):
                self.cache.unpin(name)
        self.cache.next_use = None

    def _prefetch(self) -> None:
        """Fetch shards in order of first need (computed once per epoch), skipping those whose
        last use is behind the consumer, never more than the limit ahead."""
        cache, schedule = self.cache, self._schedule
        budget = cache.limit if cache.limit is not None else float("inf")
        order, last = schedule.upcoming(self._now), schedule.last_step.tolist()
        seen: set[int] = set()  # found present: acquire() re-checks what it needs anyway
        while not self._stop.is_set():
            fetched, ahead, now = False, 0, self._now
            for s in order:
                if last[s] < now:
                    continue
                ahead += int(self.bytes[s])
                if ahead > budget or self._stop.is_set():
                    break
                if s in seen:
                    continue
                name = self.names[s]
                if cache.present(name):
                    seen.add(s)
                    continue
                try:
                    if not cache.ensure(name, required=False):
                        break  # no room now: wait until the consumer moves on
                except RemoteError as exc:  # acquire() will meet it and raise it there
                    self.error = exc
                    return
                seen.add(s)
                fetched = True
                break  # re-plan from the consumer's new position
            if not fetched:
                self._stop.wait(_IDLE_S)
