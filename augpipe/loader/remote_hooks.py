"""The Loader's side of the shard-aware order and of remote datasets, kept out of loader.py.

``order="partitioned"`` (the default for a remote dataset; see ``partitioned.py``) replaces the
epoch plan and the resume state: the state holds the manifest's hash, the seed, the partition
count, the block and the samples consumed, and a run resumes from it at any world size.  A
remote dataset also gets a ``ShardFeeder`` (``feeder.py``): cache-size check, pins, prefetch.
"""

from __future__ import annotations

import hashlib
import json
import os

from augpipe.errors import ConfigError
from augpipe.loader import options as opt
from augpipe.loader.order import EpochPlan, epoch_order, rank_indices
from augpipe.loader.partitioned import DEFAULT_BLOCK, PartitionedOrder, PartitionedPlan

STATE_KEYS = ("seed", "shuffle", "drop_last", "order", "dataset_len", "partitions", "block",
              "manifest_sha256")  # fmt: skip


def is_url(data) -> bool:
    return isinstance(data, str) and "://" in data


def _remote(dataset):
    """(remote dataset, indices into it or None): the dataset itself, or the base of a subset
    (the trainer's held-out split, ``train/split.py``)."""
    if getattr(dataset, "cache", None) is not None:
        return dataset, None
    base = getattr(dataset, "base", None)
    if getattr(base, "cache", None) is not None and hasattr(dataset, "indices"):
        return base, dataset.indices
    return None, None


def default_order(dataset) -> str:
    return "partitioned" if _remote(dataset)[0] is not None else "global"


def manifest_hash(dataset) -> str:
    """SHA-256 of the manifest's canonical JSON: the same for a dataset and its copies."""
    manifest = getattr(dataset, "manifest", None)
    if manifest is None:  # a dataset object without a manifest: its size and shards
        manifest = {"count": len(dataset), "shards": getattr(dataset, "shard_sizes", None)}
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def make_order(loader, order: str, partitions, block, shard_sizes) -> PartitionedOrder | None:
    if order != "partitioned":
        for name, value in (("partitions", partitions), ("block", block)):
            if value is not None:
                raise ConfigError(f"{name}: only used with order='partitioned', got order="
                                  f"{order!r}; drop {name} or set order='partitioned'")  # fmt: skip
        return None
    partitions = loader.world_size if partitions is None else partitions
    partitions = opt.check_int("partitions", partitions, 1)
    block = opt.check_int("block", DEFAULT_BLOCK if block is None else block, 1)
    if not shard_sizes or sum(shard_sizes) != loader._n:  # a subset: its records in order
        shard_sizes = None
    sizes = shard_sizes or [loader._n]
    porder = PartitionedOrder(sizes, loader.seed, loader.shuffle, partitions, block,
                              loader.drop_last)  # fmt: skip
    plan = PartitionedPlan(porder, 0, loader.rank, loader.world_size, loader.batch_size)
    if loader.drop_last and plan.n_batches == 0:
        raise ConfigError(
            f"batch_size: each of the {partitions} partitions holds {porder.length} samples, "
            f"fewer than the {plan.chunk} a batch of {loader.batch_size} takes from each with "
            "drop_last=True; lower batch_size or partitions, or set drop_last=False"
        )
    loader._manifest_sha = manifest_hash(loader.dataset)
    return porder


def plan(loader, epoch: int, rank: int):
    if loader._part is not None:
        offset = loader._offset if epoch == loader.epoch else 0
        return PartitionedPlan(loader._part, epoch, rank, loader.world_size, loader.batch_size,
                               offset)  # fmt: skip
    order = epoch_order(loader._n, loader.seed, epoch, loader.shuffle, loader.order,
                        loader._shard_sizes)  # fmt: skip
    mine = rank_indices(order, rank, loader.world_size, loader.drop_last)
    return EpochPlan(mine, loader.batch_size, loader.drop_last)


def full_len(loader) -> int:
    return PartitionedPlan(loader._part, 0, loader.rank, loader.world_size,
                           loader.batch_size).n_batches  # fmt: skip


def samples_consumed(loader) -> int:
    """Records of the current epoch that the ranks together have taken so far."""
    p = loader._part
    chunk = PartitionedPlan(p, loader.epoch, loader.rank, loader.world_size, loader.batch_size,
                            loader._offset).chunk  # fmt: skip
    return p.partitions * min(p.length, loader._offset + loader._batch * chunk)


def add_state(loader, state: dict) -> dict:
    state.update(partitions=loader._part.partitions, block=loader._part.block,
                 manifest_sha256=loader._manifest_sha,
                 samples_consumed=samples_consumed(loader))  # fmt: skip
    return state


def resume_offset(loader, state: dict) -> int:
    consumed = opt.check_int("state['samples_consumed']", state.get("samples_consumed"), 0)
    p = loader._part.partitions
    if consumed % p:
        raise ConfigError(
            f"state['samples_consumed']: expected a multiple of partitions={p}, got "
            f"{consumed}; the state is not from a Loader.state_dict()"
        )
    return consumed // p


def local_ranks(loader) -> list[int]:
    """The global ranks on this node: torchrun's LOCAL_WORLD_SIZE consecutive ranks."""
    try:
        lws = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        lws = 1
    if lws < 1 or loader.world_size % lws:
        lws = 1
    first = loader.rank - loader.rank % lws
    return list(range(first, first + lws))


def window(loader) -> int:
    """Batches in flight at once: the one the consumer holds and those being built."""
    return 2 if loader.workers == 0 else loader.prefetch + 1


_LOOK_AHEAD_EPOCHS = 2  # also checked when the Loader is built, so a later epoch is no surprise


def node_schedule(loader, epoch: int, ahead: int = 0):
    ranks = local_ranks(loader)
    plans = [loader._plan(epoch, r) for r in ranks]
    more = [[plan(loader, e, r) for r in ranks] for e in range(epoch + 1, epoch + 1 + ahead)]
    # ranks of a node keep step within one batch of each other (each step's collective), so a
    # node's window is one batch longer than a rank's
    steps = window(loader) + (1 if len(ranks) > 1 else 0)
    what = f"epoch {epoch}" + (f" to {epoch + ahead}" if ahead else "")
    return loader._feeder.check(plans, steps, what, more)


def make_feeder(loader):
    ds, subset = _remote(loader.dataset)
    if ds is None:
        return None
    from augpipe.loader.feeder import ShardFeeder

    if subset is None:
        feeder = ShardFeeder(ds.cache, ds._names, lambda idx: _shard_of(ds, idx))
    else:
        feeder = ShardFeeder(ds.cache, ds._names, lambda idx: _shard_of(ds, subset[idx]))
    loader._feeder = feeder
    # refuse a too-small cache_limit now, for this epoch and the next ones, not mid-run
    node_schedule(loader, loader.epoch, _LOOK_AHEAD_EPOCHS)
    return feeder


def _shard_of(ds, indices):
    import numpy as np

    return np.searchsorted(ds._first_list, indices, side="right") - 1
