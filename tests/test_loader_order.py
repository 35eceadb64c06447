"""Epoch order, rank partition and batch counts (loader/order.py and Loader(workers=0))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_fakes import FakeDataset, FakePipeline, index_of

from augpipe.errors import ConfigError
from augpipe.loader.loader import Loader
from augpipe.loader.order import epoch_order, rank_indices


def _loader(n=23, bs=4, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("output", "numpy")
    return Loader(FakeDataset(n, shard_sizes=kw.pop("shard_sizes", None)), bs, FakePipeline(),
                  **kw)  # fmt: skip


def _epoch_indices(loader) -> list[int]:
    return [int(i) for images, _ in loader for i in index_of(images)]


def test_epoch_covers_every_index_once():
    loader = _loader(23, 4)
    seen = _epoch_indices(loader)
    assert len(loader) == 6
    assert sorted(seen) == list(range(23))
    assert seen != list(range(23))  # shuffled


def test_labels_follow_the_images():
    ds = FakeDataset(17)
    for images, labels in Loader(ds, 5, FakePipeline(), workers=0, output="numpy"):
        np.testing.assert_array_equal(labels, ds.labels[index_of(images)])
        assert labels.dtype == np.int64


def test_drop_last_drops_only_the_partial_batch():
    loader = _loader(23, 4, drop_last=True)
    seen = _epoch_indices(loader)
    assert len(loader) == 5 and len(seen) == 20 and len(set(seen)) == 20


def test_no_shuffle_is_dataset_order():
    assert _epoch_indices(_loader(10, 3, shuffle=False)) == list(range(10))


def test_epochs_differ_and_repeat_with_the_seed():
    a = _loader(50, 8, seed=3)
    e0 = _epoch_indices(a)  # the loader moves on to epoch 1 by itself
    e1 = _epoch_indices(a)
    assert e0 != e1 and sorted(e0) == sorted(e1)
    b = _loader(50, 8, seed=3)
    b.set_epoch(1)
    assert _epoch_indices(b) == e1
    assert _epoch_indices(_loader(50, 8, seed=4)) != e0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), world=st.integers(1, 7), drop=st.booleans(), seed=st.integers(0, 9))
def test_ranks_equal_disjoint_and_covering(n, world, drop, seed):
    order = epoch_order(n, seed, 0)
    parts = [rank_indices(order, r, world, drop) for r in range(world)]
    assert len({len(p) for p in parts}) == 1
    allidx = np.concatenate(parts)
    if drop:
        assert len(set(allidx.tolist())) == len(allidx) == (n // world) * world
    else:
        assert set(allidx.tolist()) == set(range(n))
        # only the wrap-around padding repeats, fewer than world_size samples
        assert len(allidx) - n == (-n) % world


def test_loader_ranks_same_batch_count_disjoint():
    n, bs, world = 37, 4, 3
    loaders = [_loader(n, bs, rank=r, world_size=world, drop_last=True) for r in range(world)]
    assert len({len(lo) for lo in loaders}) == 1
    seen = [set(_epoch_indices(lo)) for lo in loaders]
    for a in range(world):
        for b in range(a + 1, world):
            assert not seen[a] & seen[b]
    padded = [_loader(n, bs, rank=r, world_size=world) for r in range(world)]
    assert len({len(lo) for lo in padded}) == 1
    assert set().union(*(set(_epoch_indices(lo)) for lo in padded)) == set(range(n))


def test_shard_order_keeps_shards_together():
    sizes = [10, 10, 10, 10]
    loader = _loader(40, 10, order="shard", shard_sizes=sizes)
    batches = [index_of(images) for images, _ in loader]
    shards = [set((b // 10).tolist()) for b in batches]
    assert all(len(s) == 1 for s in shards)  # one batch = one shard here
    assert sorted(int(i) for b in batches for i in b) == list(range(40))
    assert [next(iter(s)) for s in shards] != [0, 1, 2, 3] or batches[0].tolist() != list(range(10))


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="rank"):
        _loader(rank=3, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        _loader(5, 4, world_size=2, drop_last=True)
    with pytest.raises(ConfigError, match="output"):
        _loader(output="jax")
    with pytest.raises(ConfigError, match="pipeline"):
        Loader(FakeDataset(4), 2, None, workers=0)
    with pytest.raises(ConfigError, match="order"):
        _loader(order="random")
