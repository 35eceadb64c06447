"""The shard-aware order (order="partitioned"): the same global batches for any world size,
disjoint ranks, bounded shard windows, and resume from the samples consumed at another world
size (loader/partitioned.py, loader/remote_hooks.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from loader_fakes import FakeDataset, FakePipeline, index_of

from augpipe.errors import ConfigError
from augpipe.loader.loader import Loader
from augpipe.loader.partitioned import NodeSchedule, PartitionedOrder

SHARDS = [7, 5, 9, 6, 8, 4, 7, 6, 5, 7]  # 64 records


def _loader(rank=0, world=1, bs=8, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("partitions", 4)
    kw.setdefault("block", 5)
    ds = FakeDataset(sum(SHARDS), shard_sizes=SHARDS)
    return Loader(ds, bs, FakePipeline(), output="numpy", seed=11, order="partitioned",
                  rank=rank, world_size=world, **kw)  # fmt: skip


def _global_batches(world: int, global_batch: int = 8, **kw) -> list[Counter]:
    per_rank = [[index_of(x).tolist() for x, _ in _loader(r, world, global_batch // world, **kw)]
                for r in range(world)]  # fmt: skip
    assert len({len(b) for b in per_rank}) == 1  # every rank has as many batches (no DDP hang)
    return [Counter(sum((b[t] for b in per_rank), [])) for t in range(len(per_rank[0]))]


def test_global_batches_are_the_same_for_any_world_size_and_workers():
    one = _global_batches(1)
    assert _global_batches(2) == one
    assert _global_batches(4) == one
    assert _global_batches(2, workers=2) == one
    assert sum(sum(c.values()) for c in one) == 64 and set().union(*one) == set(range(64))


def test_ranks_get_disjoint_samples_and_drop_last_keeps_them_equal():
    seen = [set(_loader(r, 4, 2).indices().tolist()) for r in range(4)]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    lens = [len(_loader(r, 4, 2, drop_last=True, partitions=8)) for r in range(4)]
    assert len(set(lens)) == 1


def test_epochs_and_seeds_differ_but_repeat():
    a = _loader()
    e0 = a.indices(0).tolist()
    assert e0 != a.indices(1).tolist() and sorted(e0) == sorted(a.indices(1).tolist())
    assert _loader().indices(0).tolist() == e0
    assert _loader(block=64).indices(0).tolist() != e0


def test_blocks_bound_the_shards_a_partition_needs():
    order = PartitionedOrder(SHARDS, seed=1, shuffle=True, partitions=2, block=4,
                             drop_last=False)  # fmt: skip
    for part in order.partitions_of(3):
        for start in range(0, len(part), 4):  # a block of 4 records spans at most 3 shards
            assert len(set(order.shard_of(part[start : start + 4]).tolist())) <= 3


def test_local_datasets_keep_the_global_order_by_default():
    ds = FakeDataset(30)
    loader = Loader(ds, 4, FakePipeline(), workers=0, output="numpy")
    assert loader.order == "global" and "partitions" not in loader.state_dict()
    with pytest.raises(ConfigError, match="partitions: only used with order='partitioned'"):
        Loader(ds, 4, FakePipeline(), workers=0, output="numpy", partitions=2)


def test_layout_errors_name_the_fix():
    with pytest.raises(ConfigError, match="partitions: expected a multiple of world_size=3"):
        _loader(0, 3, 3, partitions=4)
    with pytest.raises(ConfigError, match="batch_size must be a multiple of 2"):
        _loader(0, 2, 3, partitions=4)


@pytest.mark.parametrize("world_before,world_after", [(4, 2), (1, 4), (2, 1)])
def test_resume_at_another_world_size_finishes_the_epoch_exactly(world_before, world_after):
    full = Counter(_loader().indices(0).tolist())
    consumed, state = [], None
    loaders = [_loader(r, world_before, 8 // world_before) for r in range(world_before)]
    its = [iter(ld) for ld in loaders]
    for _ in range(3):  # three global steps, then the job is lost
        for it in its:
            consumed += index_of(next(it)[0]).tolist()
    state = loaders[0].state_dict()
    assert state["samples_consumed"] == 24
    per_rank = []
    for r in range(world_after):
        ld = _loader(r, world_after, 8 // world_after)
        ld.load_state_dict(state)
        per_rank.append([index_of(x).tolist() for x, _ in ld])
    resumed = [Counter(sum((b[t] for b in per_rank), [])) for t in range(len(per_rank[0]))]
    assert Counter(consumed) + sum(resumed, Counter()) == full
    assert resumed == _global_batches(1)[3:]  # the uninterrupted run's global batches


def test_resume_refuses_another_dataset_seed_or_partitions():
    state = _loader().state_dict()
    for kw in ({"partitions": 8}, {"block": 7}):
        with pytest.raises(ConfigError, match="saved by a loader with other settings"):
            _loader(**kw).load_state_dict(state)
    other = dict(state, manifest_sha256="0" * 64)
    with pytest.raises(ConfigError, match="manifest_sha256"):
        _loader().load_state_dict(other)


def test_peak_bytes_of_the_live_window():
    class Plan:  # two steps of 2 records each: shards {0}, then {1, 2}
        indices, batch_size, n_batches = np.array([0, 0, 1, 2]), 2, 2

    sched = NodeSchedule([Plan()], lambda idx: np.asarray(idx), np.array([10, 20, 40]))
    assert sched.peak_bytes(1) == 60 and sched.peak_bytes(2) == 70
    assert sched.next_use(1, 0) == 1 and sched.next_use(0, 1) == float("inf")
    assert sched.upcoming(0) == [0, 1, 2] and sched.upcoming(1) == [1, 2]
    assert sched.last_step.tolist() == [0, 1, 1]
