"""The node cache on its own (file:// URLs, no server): eviction order, pins, stale files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from augpipe import ShardDataset
from augpipe.remote.cache import ShardCache


@pytest.fixture(scope="module")
def packed(remote_packed):
    return remote_packed


def _cache(packed, tmp_path, limit=None) -> tuple[ShardCache, list[str]]:
    ds = ShardDataset(f"file://{packed}", cache_dir=tmp_path)
    shards = ds.manifest["shards"]
    cache = ShardCache(ds.cache.fs, ds.cache.root, ds.url, ds.cache.dir, shards, limit)
    return cache, [s["name"] for s in shards]


def test_eviction_takes_the_furthest_next_use_and_never_a_pinned_shard(packed, tmp_path):
    cache, names = _cache(packed, tmp_path)
    a, b, c, d = names[:4]
    for n in (a, b, c):
        cache.ensure(n)
    cache.limit = cache.used_bytes() + cache.size[d] - 1  # room for d needs one eviction
    cache.next_use = {a: 1.0, b: 9.0, c: float("inf"), d: 2.0}.get
    cache.ensure(d)
    assert [cache.present(n) for n in (a, b, c, d)] == [True, True, False, True]
    cache.pin(b)  # in some process's live window: never evicted, though needed last
    cache.next_use = {a: 1.0, b: 9.0, c: 0.0, d: 2.0}.get
    cache.limit = cache.used_bytes()  # room for c: evict as much as it needs
    cache.ensure(c)
    assert cache.present(b) and cache.present(c) and not cache.present(d)
    assert cache.present(a) == (cache.size[d] >= cache.size[c])
    assert cache.used_bytes() <= cache.limit
    cache.unpin(b)


def test_prefetch_never_pushes_out_a_shard_needed_sooner(packed, tmp_path):
    cache, names = _cache(packed, tmp_path)
    a, b = names[:2]
    cache.ensure(a)
    cache.limit = cache.used_bytes() + cache.size[b] - 1
    cache.next_use = {a: 1.0, b: 5.0}.get
    assert cache.ensure(b, required=False) is False and cache.present(a)
    cache.next_use = {a: 7.0, b: 5.0}.get
    assert cache.ensure(b, required=False) is True and not cache.present(a)


def test_a_killed_download_leaves_nothing_that_blocks(packed, tmp_path):
    cache, names = _cache(packed, tmp_path)
    name = names[0]
    script = (  # takes the download lock, leaves a .part, and is killed
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "open(sys.argv[2], 'wb').write(b'x' * 100)\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    lock = os.path.join(cache.dir, ".locks", f"{name}.dl")
    part = cache.path(name) + ".part"
    p = subprocess.Popen([sys.executable, "-c", script, lock, part], stdout=subprocess.PIPE,
                         text=True)  # fmt: skip
    assert p.stdout.readline().strip() == "held"
    assert cache.used_bytes() == cache.size[name]  # a running download counts in full
    p.kill()
    p.wait()
    assert cache.used_bytes() == 0 and not os.path.exists(part)  # stale: removed
    assert cache.ensure(name) and cache.present(name)


def test_a_shard_replaced_at_the_source_is_fetched_again(packed, tmp_path):
    cache, names = _cache(packed, tmp_path)
    cache.ensure(names[0])
    with open(cache.path(names[0]) + ".sha256", "w") as f:
        f.write("0" * 64 + "\n")  # checked against another manifest version
    assert not cache.present(names[0])
    cache.ensure(names[0])
    assert cache.present(names[0]) and cache.downloads == 2


def test_a_subset_of_a_remote_dataset_gets_the_feeder_and_the_limit_check(packed, tmp_path):
    import numpy as np
    from remote_helpers import BytesPipeline, epoch

    from augpipe import Loader
    from augpipe.errors import ConfigError
    from augpipe.train.split import SubsetDataset

    keep = np.arange(0, len(ShardDataset(packed)), 2)  # like the trainer's held-out split
    remote = SubsetDataset(ShardDataset(f"file://{packed}", cache_dir=tmp_path), keep)
    kw = dict(output="numpy", workers=0, seed=2, partitions=2, block=4)
    small = ShardDataset(f"file://{packed}", cache_dir=tmp_path / "x", cache_limit="1kB")
    with pytest.raises(ConfigError, match="cache_limit: 1kB is smaller"):
        Loader(SubsetDataset(small, keep), 4, BytesPipeline(), **kw)
    loader = Loader(remote, 4, BytesPipeline(), **kw)
    assert loader.order == "partitioned" and loader._feeder is not None
    local = Loader(SubsetDataset(ShardDataset(packed), keep), 4, BytesPipeline(),
                   order="partitioned", **kw)  # fmt: skip
    got = epoch(loader)
    assert got == epoch(local)
    assert sorted(i for b in got for i, _ in b) == list(range(len(keep)))  # subset positions
