"""Which batch is in which slot: the work queue of a running ``WorkerPool``, across epochs.

Tasks are handed out in one stream of (epoch, batch) keys: the batches of an epoch in order,
then — the next epoch's order being a function of (seed, epoch + 1) — the first batches of
the next epoch, as soon as slots are free. So with persistent workers the first batch of an
epoch is usually built while the consumer is still on the last ones of the previous epoch (or
validating, or checkpointing), and does not wait for a cold pipeline.

If the consumer then asks for something other than the continuation of the stream
(``set_epoch`` to another epoch, ``load_state_dict``), the work in flight is drained and
dropped (``restart``); an error from a batch that is dropped is dropped with it.
"""

from __future__ import annotations

from collections.abc import Callable

from augpipe.errors import WorkerError


class Schedule:
    """``plan(epoch)`` gives an ``EpochPlan``; ``ahead`` is whether to cross epoch ends;
    ``rank``/``world_size`` make each task's batch key (``augpipe.loader.stages``)."""

    def __init__(self, pool, plan: Callable, seed: int, ahead: bool = True, rank: int = 0,
                 world_size: int = 1):  # fmt: skip
        self.pool, self.plan, self.seed, self.ahead = pool, plan, seed, ahead
        self.rank, self.world_size = rank, world_size
        self.free = list(range(pool.ring.layout.n_slots))
        self.done: dict[tuple[int, int], int] = {}  # (epoch, batch) -> slot
        self.failed: dict[tuple[int, int], list] = {}  # (epoch, batch) -> error message
        self.inflight: set[tuple[int, int]] = set()
        self.cursor: tuple[int, int] | None = None  # the next (epoch, batch) to hand out
        self.held: int | None = None  # slot of the batch the consumer may still be using
        # called with (epoch, batch, indices) before a batch is handed out (a remote dataset's
        # shard feeder pins and fetches its shards)
        self.acquire: Callable | None = None

    def outstanding(self) -> int:
        return len(self.inflight) + len(self.done) + len(self.failed)

    def begin(self, epoch: int, batch: int) -> None:
        """Make (epoch, batch) the next key the consumer takes; keep work already done for it."""
        self.release()
        if self.cursor is not None and self._first_pending() == (epoch, batch):
            return
        if self.cursor is not None and self.outstanding() == 0 and self.cursor == (epoch, batch):
            return
        self.restart(epoch, batch)

    def _first_pending(self):
        keys = [*self.inflight, *self.done, *self.failed]
        return min(keys) if keys else None

    def forget(self) -> None:
        """The loader's position was set from outside (``load_state_dict``, ``set_epoch``): the
        next ``begin`` drops whatever was prepared, even if its keys look like a match."""
        self.cursor = None

    def restart(self, epoch: int, batch: int) -> None:
        """Drop all work (waiting for what is in flight: its slots are being written)."""
        while self.inflight:
            self._collect("while the loader dropped batches prepared ahead")
        self.free.extend(self.done.values())
        self.free.extend(msg[3] for msg in self.failed.values())
        self.done.clear()
        self.failed.clear()
        self.cursor = (epoch, batch)

    def release(self) -> None:
        """The consumer moved past the batch it held."""
        if self.held is not None:
            self.free.append(self.held)
            self.held = None

    def fill(self) -> None:
        """Hand out the stream's next keys while slots are free."""
        while self.free and self.cursor is not None:
            epoch, batch = self.cursor
            plan = self.plan(epoch)
            if batch >= plan.n_batches:
                if not self.ahead or batch > plan.n_batches:
                    return
                self.cursor = (epoch + 1, 0)
                continue
            if self.acquire is not None:
                self.acquire(epoch, batch, plan.batch(batch))
            slot = self.free.pop(0)
            key = batch * self.world_size + self.rank  # stages.batch_key
            self.pool.submit(epoch, batch, slot, plan.batch(batch), self.seed, key)
            self.inflight.add((epoch, batch))
            self.cursor = (epoch, batch + 1)

    def take(self, epoch: int, batch: int) -> int:
        """Wait for (epoch, batch) and return its slot (the caller frees or holds it)."""
        key = (epoch, batch)
        while key not in self.done and key not in self.failed:
            self._collect(f"while the loader waited for batch {batch} of epoch {epoch}")
        if key in self.failed:
            _, e, b, slot, index, summary, tb = self.failed.pop(key)
            self.free.append(slot)
            err = WorkerError(f"loader worker failed on sample {index} (batch {b} of epoch "
                              f"{e}): {summary}\n\nWorker traceback:\n{tb}")  # fmt: skip
            err.index, err.worker_traceback = index, tb
            raise err
        return self.done.pop(key)

    def _collect(self, context: str) -> None:
        for msg in self.pool.receive(context):
            key = (msg[1], msg[2])
            if msg[0] == "done":
                self.inflight.discard(key)
                self.done[key] = msg[3]
            elif msg[0] == "error":
                self.inflight.discard(key)
                self.failed[key] = msg
