"""Several nodes and lost jobs: two torchrun "nodes" with their own caches against one node of
four ranks, and a run killed mid-epoch that resumes at another world size."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from remote_helpers import BytesPipeline, decode, epoch, stop_fsspec_io

from augpipe import Loader

pytest.importorskip("aiohttp", reason="fsspec's http filesystem needs aiohttp")
from augpipe.remote.localserver import LocalServer  # noqa: E402

SCRIPT = str(Path(__file__).with_name("remote_node.py"))


@pytest.fixture(scope="module")
def packed(remote_packed):
    yield remote_packed
    stop_fsspec_io()  # the tests after these run without fsspec's IO thread


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local(packed, rank, world, bs):
    kw = dict(order="partitioned", partitions=4, block=6, rank=rank, world_size=world)
    return Loader(packed, bs, BytesPipeline(), output="numpy", workers=0, seed=5, **kw)


def _union(per_rank: list[list]) -> list[Counter]:
    return [Counter(tuple(s) for b in per_rank for s in b[t]) for t in range(len(per_rank[0]))]


def test_two_nodes_get_disjoint_samples_and_the_global_batches_of_one_node(packed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with LocalServer(packed) as srv:
        nodes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes",
                    "2",
                    "--nproc-per-node",
                    "2",
                    "--node-rank",
                    str(k),
                    "--master-addr",
                    "127.0.0.1",
                    "--master-port",
                    str(port),
                    "--max-restarts",
                    "0",
                    SCRIPT,
                    srv.url,
                    str(tmp_path / f"cache{k}"),
                    str(out),
                    "12",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for k in (0, 1)
        ]
        logs = [p.communicate(timeout=240)[0] for p in nodes]
        assert [p.returncode for p in nodes] == [0, 0], logs
        gets = {name: srv.gets(name) for name in {e[1] for e in srv.log}}
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(4)]
    node_samples = [{s[0] for r in ranks[2 * k : 2 * k + 2] for b in r["batches"] for s in b}
                    for k in (0, 1)]  # fmt: skip
    assert node_samples[0] and not node_samples[0] & node_samples[1]
    one_node = [[[list(s) for s in decode(x)] for x, _ in _local(packed, r, 4, 3)]
                for r in range(4)]  # fmt: skip
    assert _union([r["batches"] for r in ranks]) == _union(one_node)
    for k in (0, 1):  # each shard the node needed was downloaded once, by one of its ranks
        files = [p for p in (tmp_path / f"cache{k}").glob("*/shard-*") if p.suffix == ".lmdb"]
        assert sum(r["downloads"] for r in ranks[2 * k : 2 * k + 2]) == len(files) > 0
    shard_gets = [n for n in gets if n.startswith("shard-")]
    total_files = len(list(tmp_path.glob("cache*/*/shard-*.lmdb")))
    assert sum(gets[n] for n in shard_gets) == total_files
    assert all(gets[n] <= 2 for n in shard_gets)


def test_killed_mid_epoch_resumes_at_another_world_size(packed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cache = tmp_path / "cache"
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", TEST_WORKERS="2")
    with LocalServer(packed) as srv:
        run = subprocess.Popen([sys.executable, SCRIPT, srv.url, str(cache), str(out), "8", "2"],
                               env=env, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
        try:
            assert run.stdout.readline().strip() == "STOPPED"
        finally:
            os.killpg(run.pid, signal.SIGKILL)  # the job and its workers, mid-epoch
            run.wait(60)
        saved = json.loads((out / "state-0.json").read_text())
        consumed = Counter(tuple(s) for b in saved["batches"] for s in b)
        assert saved["state"]["samples_consumed"] == 16 == sum(consumed.values())
        resumed = Counter()
        for rank in (0, 1):  # the same cache: the killed run's locks hold nothing
            loader = Loader(srv.url, 2, BytesPipeline(), output="numpy", workers=0, seed=5,
                            partitions=4, block=6, rank=rank, world_size=2,
                            cache_dir=cache)  # fmt: skip
            loader.load_state_dict(saved["state"])
            resumed += Counter(tuple(s) for b in epoch(loader) for s in b)
    full = Counter(tuple(s) for b in epoch(_local(packed, 0, 1, 8)) for s in b)
    assert consumed + resumed == full
