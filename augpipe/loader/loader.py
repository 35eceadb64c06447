"""``Loader``: batches of augmented images from a packed dataset, built by worker processes
straight into shared memory.

Example::

    from augpipe import Compose, HorizontalFlip, Loader, RandomResizedCrop

    pipe = Compose([RandomResizedCrop(224), HorizontalFlip()])
    with Loader("photos.packed", 256, pipe, workers=4, device="cuda", normalize="dataset",
                dtype="bfloat16", channels_last=True) as loader:
        for epoch in range(90):
            loader.set_epoch(epoch)
            for images, labels in loader:
                ...

The loader is a cursor over (epoch, batch): ``state_dict()`` saves it, ``load_state_dict``
restores it, and the next iteration continues with exactly the batches an uninterrupted run
would have produced.  See docs/loader.md for slot lifetime and the rank policy.
"""

from __future__ import annotations

import json
import os
import weakref

import numpy as np

from augpipe.errors import ConfigError, bad_param
from augpipe.loader import options as opt
from augpipe.loader import remote_hooks as rh
from augpipe.loader import stages
from augpipe.loader.buffers import BatchBuffers
from augpipe.loader.handover import describe as describe_object
from augpipe.loader.order import (
    ORDERS,
    EpochPlan,
    batch_count,
    epoch_order,
    rank_indices,
    samples_per_rank,
)
from augpipe.loader.pool import WorkerPool
from augpipe.loader.schedule import Schedule
from augpipe.loader.shm import SlotLayout, SlotRing

STATE_VERSION = 1
_STATE_KEYS = ("seed", "batch_size", "shuffle", "drop_last", "rank", "world_size", "order",
               "dataset_len")  # fmt: skip


def _open_dataset(data, remote: dict):
    if isinstance(data, (str, os.PathLike)):
        from augpipe.format.dataset import ShardDataset

        data = ShardDataset(data, **remote) if rh.is_url(data) else ShardDataset(data)
    if not hasattr(data, "labels") or not hasattr(data, "__len__"):
        raise bad_param("data", "a ShardDataset or the path of a packed dataset", data)
    validate = getattr(data, "validate", None)
    if validate is not None:  # damaged shards: an error here, before any worker starts
        validate()
    return data


def _shard_sizes(dataset) -> list[int] | None:
    shards = getattr(dataset, "manifest", {}).get("shards")
    if shards:
        return [int(s["count"]) for s in shards]
    return getattr(dataset, "shard_sizes", None)


class Loader:
    """Iterate ``(images, labels)`` batches; see the module docstring and docs/loader.md.

    ``images`` are NHWC uint8 NumPy arrays (``output="numpy"``) or NCHW torch tensors
    (``output="torch"``); ``labels`` int64.  A batch that is a view of shared memory (NumPy
    uint8, or torch uint8 with ``channels_last=True`` on the CPU) is valid until the next
    batch is requested; pass ``copy=True`` to get batches you may keep.
    """

    def __init__(
        self,
        data,
        batch_size: int,
        pipeline,
        shuffle: bool = True,
        seed: int = 0,
        workers: int | None = None,
        prefetch: int | None = None,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        output: str = "torch",
        device: str = "cpu",
        dtype=None,
        normalize=None,
        channels_last: bool = False,
        *,
        order: str | None = None,
        copy: bool = False,
        start_method: str | None = None,
        partitions: int | None = None,
        block: int | None = None,
        cache_dir=None,
        cache_limit=None,
        storage_options: dict | None = None,
        targets=None,
    ):
        self._owns_dataset = isinstance(data, (str, os.PathLike))
        self.dataset = _open_dataset(data, dict(cache_dir=cache_dir, cache_limit=cache_limit,
                                                storage_options=storage_options))  # fmt: skip
        order = rh.default_order(self.dataset) if order is None else order
        self.batch_size = opt.check_int("batch_size", batch_size, 1)
        self.seed = opt.check_int("seed", seed, 0)
        self.workers = opt.default_workers() if workers is None else opt.check_int(
            "workers", workers, 0)  # fmt: skip
        prefetch = max(2, 2 * self.workers) if prefetch is None else prefetch
        self.prefetch = opt.check_int("prefetch", prefetch, 1)
        self.shuffle, self.drop_last, self.copy = bool(shuffle), bool(drop_last), bool(copy)
        opt.check_choice("output", output, ("torch", "numpy"))
        opt.check_choice("order", order, ORDERS)
        self.output, self.order = output, order
        # None: decided when the workers start (fork_is_safe() then); see docs/loader.md
        self.start_method = opt.check_start_method(start_method)
        self.rank, self.world_size = opt.resolve_rank(rank, world_size)
        if pipeline is None:
            raise bad_param(
                "pipeline",
                "a transforms pipeline",
                None,
                "e.g. Compose([RandomResizedCrop(224), HorizontalFlip()])",
            )
        self.pipeline = pipeline.bind(self.dataset)  # validates against the dataset, once
        self._targets = None  # datasets with targets: batches are (images, targets dict)
        if getattr(self.dataset, "has_targets", False):
            from augpipe.targets.batch import TargetPipeline

            self.pipeline = self._targets = TargetPipeline(self.pipeline, self.dataset, targets,
                                                           self.batch_size)  # fmt: skip
        elif targets is not None:
            raise bad_param("targets", "a dataset packed with targets (--coco/--yolo/--voc/"
                            "--masks)", "a dataset without targets", "drop targets=")  # fmt: skip
        self.sample_shape = tuple(int(v) for v in self.pipeline.output_shape)
        self._labels = np.asarray(self.dataset.labels, dtype=np.int64)
        self._n = len(self.dataset)
        per_rank = samples_per_rank(self._n, self.world_size, self.drop_last)
        if per_rank == 0 or (self.drop_last and per_rank < self.batch_size):
            raise ConfigError(
                f"batch_size: a rank gets {per_rank} of the dataset's {self._n} samples, fewer "
                f"than one batch of {self.batch_size} with drop_last=True; lower batch_size or "
                "world_size, or set drop_last=False"
            )
        self._shard_sizes = _shard_sizes(self.dataset) if order == "shard" else None
        self._dtype = opt.dtype_name(dtype, output, normalize)
        self._mean_std = opt.mean_std(normalize, self.dataset, self.sample_shape[-1])
        self.device, self.channels_last = str(device), bool(channels_last)
        # a TorchConverter, or None for NumPy output (never a bound method: that would make
        # a reference cycle and delay the workers' shutdown until the cyclic GC runs)
        self._torch = stages.make_converter(self)
        self._host_bufs = BatchBuffers()  # NumPy outputs the main process builds (copies, casts)
        self.epoch = 0
        self._batch = 0  # batches of self.epoch already yielded
        self._pool: WorkerPool | None = None
        self._ring: SlotRing | None = None
        self._active = None  # weakref to the running iterator
        self._plans: dict[tuple[int, int], EpochPlan] = {}  # this epoch's and the next one's
        self._sched: Schedule | None = None
        self._spec: dict | None = None
        # order="partitioned" and remote datasets: augpipe/loader/remote_hooks.py
        self._part = rh.make_order(self, order, partitions, block, _shard_sizes(self.dataset))
        self._offset = 0  # partitioned order: per-partition position where self.epoch resumes
        self._feeder = rh.make_feeder(self)
        if self.start_method == "spawn" and self.workers:
            self._worker_spec()  # a pipeline fresh workers cannot rebuild: an error now

    # ----------------------------------------------------------------- order and state

    def _plan(self, epoch: int, rank: int | None = None) -> EpochPlan:
        if rank is not None and rank != self.rank:  # another rank of this node (prefetch)
            return rh.plan(self, epoch, rank)
        key = (epoch, self._offset if epoch == self.epoch else 0)
        plan = self._plans.get(key)
        if plan is None:
            custom = getattr(self.dataset, "rank_order", None)  # augpipe.loader.repeat
            if self._part is not None:
                plan = rh.plan(self, epoch, self.rank)
            else:
                if custom is not None:
                    mine = custom(self.seed, epoch, self.shuffle, self.rank, self.world_size)
                else:
                    order = epoch_order(self._n, self.seed, epoch, self.shuffle, self.order,
                                        self._shard_sizes)  # fmt: skip
                    mine = rank_indices(order, self.rank, self.world_size, self.drop_last)
                plan = EpochPlan(mine, self.batch_size, self.drop_last)
            if len(self._plans) >= 2:  # this epoch's and the next one's (prepared ahead)
                self._plans.pop(min(self._plans))
            self._plans[key] = plan
        return plan

    def _worker_spec(self) -> dict:
        """The dataset and the pipeline as data, for fresh worker interpreters."""
        if self._spec is None:
            self._spec = {"dataset": describe_object(self.dataset, "data"),
                          "pipeline": describe_object(self.pipeline, "pipeline")}  # fmt: skip
        return self._spec

    def __len__(self) -> int:
        if self._part is not None:
            return rh.full_len(self)
        per_rank = samples_per_rank(self._n, self.world_size, self.drop_last)
        if hasattr(self.dataset, "rank_order"):
            per_rank = len(self._plan(self.epoch).indices)
        return batch_count(per_rank, self.batch_size, self.drop_last)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's dataset indices for ``epoch`` (default: the current one), in order."""
        plan = self._plan(self.epoch if epoch is None else epoch)
        return plan.indices[: plan.n_batches * self.batch_size]

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run ``epoch``; a different epoch starts at its batch 0,
        the current one keeps its position (so a loader restored from a state continues)."""
        epoch = opt.check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self._close_iterator()
            self.epoch, self._batch, self._offset = epoch, 0, 0
            if self._sched is not None:
                self._sched.forget()

    def state_dict(self) -> dict:
        """A plain JSON-able dict: where the loader is and what it must match to resume."""
        state = {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "batch": self._batch,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "rank": self.rank,
            "world_size": self.world_size,
            "order": self.order,
            "dataset_len": self._n,
        }
        return rh.add_state(self, state) if self._part is not None else state

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from ``state_dict()``, maybe via JSON)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise bad_param(
                "state",
                f"a dict from Loader.state_dict() (version {STATE_VERSION})",
                state if not isinstance(state, dict) else state.get("version"),
            )
        mine = self.state_dict()
        keys = rh.STATE_KEYS if self._part is not None else _STATE_KEYS
        diff = {k: (state.get(k), mine[k]) for k in keys if state.get(k) != mine[k]}
        if diff:
            text = ", ".join(f"{k}: saved {a!r}, this loader {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"state: saved by a loader with other settings ({text}); build the Loader with "
                "the saved settings to resume exactly"
            )
        self._close_iterator()
        if self._sched is not None:  # e.g. partitioned order: same keys, another offset
            self._sched.forget()
        self.epoch = opt.check_int("state['epoch']", state["epoch"], 0)
        self._batch = opt.check_int("state['batch']", state["batch"], 0)
        if self._part is not None:  # continue from the samples consumed, at any world size
            self._offset, self._batch = rh.resume_offset(self, state), 0
            if self._offset >= self._part.length:
                self.epoch, self._offset = self.epoch + 1, 0
        elif self._batch >= len(self):
            self.epoch, self._batch = self.epoch + 1, 0

    # ----------------------------------------------------------------- output conversion

    def _convert(self, images: np.ndarray, labels: np.ndarray, epoch: int = 0, batch: int = 0,
                 indices=None, drawn=None):  # fmt: skip
        return stages.convert(self, images, labels, epoch, batch, indices, drawn)

    # ----------------------------------------------------------------- iteration

    def _start(self) -> None:
        # in process, one slot for the batch being used and one to build the next in
        n_slots = 2 if self.workers == 0 else self.prefetch + 1
        extra = self._targets.extra_bytes(self.batch_size) if self._targets else 0
        mix = stages.mix_bytes(self.pipeline, self.batch_size)  # the host Mixup's λ
        layout = SlotLayout(n_slots, self.batch_size, self.sample_shape, extra, mix)
        if self.workers == 0:
            if self._ring is None:
                self._ring = SlotRing.in_process(layout)
        elif self._pool is None:
            method = self.start_method or ("fork" if opt.fork_is_safe() else "spawn")
            spec = self._worker_spec() if method == "spawn" else None
            self._pool = WorkerPool(layout, self.workers, method, self.dataset, self.pipeline,
                                    spec)  # fmt: skip
            self._ring = self._pool.ring
            self._sched = Schedule(self._pool, self._plan, self.seed, rank=self.rank,
                                   world_size=self.world_size)  # fmt: skip

    def __iter__(self):
        self._close_iterator()
        it = self._iterate()
        self._active = weakref.ref(it)
        return it

    def _close_iterator(self) -> None:
        it = self._active() if self._active is not None else None
        if it is not None:
            it.close()
        self._active = None

    def _iterate(self):
        epoch, start = self.epoch, self._batch
        plan = self._plan(epoch)
        self._start()
        feeder = self._feeder
        if feeder is not None:  # after _start: the workers are forked before its thread runs
            feeder.begin(rh.node_schedule(self, epoch), start)
        ring, sched = self._ring, self._sched
        free = list(range(ring.layout.n_slots))  # workers=0 only
        held = None
        finished = False
        try:
            if sched is not None:  # keeps what was prepared ahead for (epoch, start)
                sched.acquire = feeder.acquire if feeder is not None else None  # remote shards
                sched.begin(epoch, start)
            for b in range(start, plan.n_batches):
                if feeder is not None and b > start:
                    feeder.release(epoch, b - 1)
                if sched is None:
                    if held is not None:  # the consumer moved past the previous batch
                        free.append(held)
                        held = None
                    slot = free.pop()
                    if feeder is not None:
                        feeder.acquire(epoch, b, plan.batch(b))
                    stages.run_here(self, plan.batch(b), slot, epoch, b)
                else:
                    sched.release()  # the consumer moved past the previous batch
                    sched.fill()  # this epoch's next batches, then the next epoch's first
                    slot = sched.take(epoch, b)
                idx = plan.batch(b)
                out, keeps = self._convert(ring.images(slot)[: len(idx)], self._labels[idx],
                                           epoch, b, idx, ring.mix(slot))  # fmt: skip
                if self._targets is not None:  # copied out: the slot's target area is reused
                    out = (out[0], self._targets.read(ring.extra(slot), len(idx), self.batch_size,
                                                      self.output == "torch"))  # fmt: skip
                if keeps:
                    if sched is None:
                        held = slot
                    else:
                        sched.held = slot
                elif sched is None:
                    free.append(slot)
                else:
                    sched.free.append(slot)
                self._batch = b + 1
                if self._batch == plan.n_batches:  # position after the epoch's last batch
                    self.epoch, self._batch, self._offset = epoch + 1, 0, 0
                    # A consumer that stops after exactly len(loader) batches (without asking
                    # for the StopIteration) has not broken off the epoch: the workers stay
                    # up, building the next epoch's first batches.
                    finished = True
                yield out
            finished = True
        finally:
            if feeder is not None:  # this epoch's pins; all of them when broken off
                feeder.end(epoch if finished else None)
            if not finished:  # break, exception, close(): stop the workers, free the memory
                self._stop()

    def _stop(self) -> None:
        if self._pool is not None:
            pool, self._pool, self._ring, self._sched = self._pool, None, None, None
            pool.shutdown()
            if self._feeder is not None:  # the work prepared ahead is gone, and so its pins
                self._feeder.end()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty before the first batch and after close)."""
        return self._pool.pids if self._pool is not None else []

    def close(self) -> None:
        """Stop the workers and free the shared memory; iterating again restarts them."""
        self._close_iterator()
        self._stop()
        if self._owns_dataset and hasattr(self.dataset, "close"):
            self.dataset.close()  # only open here with workers=0; reopens on use

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Loader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"workers={self.workers}, output={self.output!r}, state="
                f"{json.dumps(self.state_dict())})")  # fmt: skip
