"""Remote datasets over HTTP (a local server with injected faults): checked downloads, retries,
the bounded cache, one download per shard per node, and the same batches as the local copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from remote_helpers import BytesPipeline, decode, epoch, stop_fsspec_io

from augpipe import Loader, ShardDataset
from augpipe.errors import ConfigError, DatasetError, RemoteError
from augpipe.remote.cache import parse_size
from augpipe.remote.fetch import Retry
from augpipe.remote.localserver import LocalServer

pytest.importorskip("aiohttp", reason="fsspec's http filesystem needs aiohttp")

FAST = Retry(tries=3, base_s=0.01)


@pytest.fixture(scope="module")
def packed(remote_packed):
    yield remote_packed
    stop_fsspec_io()  # the tests after these run without fsspec's IO thread


@pytest.fixture
def server(packed):
    with LocalServer(packed, slow_s=0.2) as srv:
        yield srv


def _loader(data, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("seed", 5)
    return Loader(data, 6, BytesPipeline(), output="numpy", partitions=2, block=6, **kw)


def _shards(packed) -> list[str]:
    return [s["name"] for s in json.loads((packed / "manifest.json").read_text())["shards"]]


def test_same_batches_as_the_local_copy(packed, server, tmp_path):
    remote = _loader(server.url, cache_dir=tmp_path)
    assert remote.order == "partitioned"
    local = _loader(packed, order="partitioned")
    assert epoch(remote) == epoch(local)
    ds_local = ShardDataset(packed)
    ds = ShardDataset(server.url, cache_dir=tmp_path)
    assert len(ds) == len(ds_local) and ds.classes == ds_local.classes
    assert all(bytes(ds.raw(i)) == bytes(ds_local.raw(i)) for i in range(len(ds)))


def test_transient_faults_are_retried(packed, server, tmp_path):
    first, second = _shards(packed)[:2]
    server.fail("manifest.json", "500", "drop")
    server.fail(first, "500", "drop", "short")
    server.fail(second, "short", "slow")
    ds = ShardDataset(server.url, cache_dir=tmp_path, retry=Retry(tries=4, base_s=0.01))
    local = ShardDataset(packed)
    assert all(bytes(ds.raw(i)) == bytes(local.raw(i)) for i in range(len(ds)))
    assert server.gets(first) == 1 and server.gets(second) == 1
    tries = [e for e in server.log if e[0] == "GET" and e[1] in (first, second)]
    assert len(tries) == 6  # 3 failures + 1 for the first, 1 short body + 1 for the second


def test_giving_up_names_the_file_and_the_tries(packed, server, tmp_path):
    first = _shards(packed)[0]
    server.fail(first, "500", "500", "500")
    ds = ShardDataset(server.url, cache_dir=tmp_path, retry=FAST)
    with pytest.raises(RemoteError, match=rf"{first}.*gave up after 3 tries.*500"):
        ds.raw(0)
    assert not any(n.startswith(first) and not n.endswith(".lock")
                   for n in os.listdir(ds.cache.dir))  # fmt: skip
    assert bytes(ds.raw(0)) == bytes(ShardDataset(packed).raw(0))  # the server recovered


def test_corrupted_download_is_detected_and_fetched_again(packed, server, tmp_path):
    first = _shards(packed)[0]
    server.fail(first, "corrupt")
    ds = ShardDataset(server.url, cache_dir=tmp_path, retry=FAST)
    assert bytes(ds.raw(0)) == bytes(ShardDataset(packed).raw(0))
    assert server.gets(first) == 2
    from augpipe.format.manifest import sha256_file

    want = json.loads((packed / "manifest.json").read_text())["shards"][0]["sha256"]
    assert sha256_file(ds.cache.path(first)) == want


def test_a_missing_file_is_not_retried(packed, tmp_path):
    with LocalServer(tmp_path / "nothing-here") as srv:
        with pytest.raises(RemoteError, match="manifest.json.*not found"):
            ShardDataset(srv.url, cache_dir=tmp_path / "c", retry=FAST)
        assert len(srv.log) == 1


def test_shard_names_are_checked_before_anything_is_written(packed, tmp_path):
    evil = tmp_path / "evil"
    evil.mkdir()
    manifest = json.loads((packed / "manifest.json").read_text())
    manifest["shards"][0]["name"] = "../../escaped"
    (evil / "manifest.json").write_text(json.dumps(manifest))
    (evil / "index.npy").write_bytes((packed / "index.npy").read_bytes())
    cache = tmp_path / "cache"
    with LocalServer(evil) as srv:
        with pytest.raises(DatasetError, match="invalid shard name '../../escaped'"):
            ShardDataset(srv.url, cache_dir=cache)
        assert [e[1] for e in srv.log] == ["manifest.json"]
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_the_manifest_is_always_read_from_the_source(packed, server, tmp_path):
    ShardDataset(server.url, cache_dir=tmp_path)
    ShardDataset(server.url, cache_dir=tmp_path)
    assert sum(1 for e in server.log if e[1] == "manifest.json") == 2


def test_cache_limit_below_the_live_window_is_refused_with_the_smallest_that_works(
    packed, server, tmp_path
):
    with pytest.raises(ConfigError, match=r"cache_limit: 1kB .* use cache_limit='([0-9.]+kB)'"):
        _loader(server.url, cache_dir=tmp_path, cache_limit="1kB")
    try:
        _loader(server.url, cache_dir=tmp_path, cache_limit="1kB")
    except ConfigError as exc:
        smallest = str(exc).split("use cache_limit='")[1].split("'")[0]
    loader = _loader(server.url, cache_dir=tmp_path / "c2", cache_limit=smallest)
    cache, peak, got = loader.dataset.cache, 0, []
    for images, _ in loader:
        peak = max(peak, cache.used_bytes())
        got.append(images.copy())
    assert 0 < peak <= parse_size(smallest)
    total = sum(s["bytes"] for s in json.loads((packed / "manifest.json").read_text())["shards"])
    assert peak < total  # shards were evicted and the epoch still came out whole
    local = _loader(packed, order="partitioned")
    assert [decode(g) for g in got] == epoch(local)


def test_each_shard_is_downloaded_once_per_node(packed, server, tmp_path):
    script = (
        "import sys; from augpipe import ShardDataset\n"
        "ds = ShardDataset(sys.argv[1], cache_dir=sys.argv[2])\n"
        "for i in range(len(ds)): ds.raw(i)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, server.url, str(tmp_path)])
             for _ in range(3)]  # fmt: skip
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    loader = _loader(server.url, cache_dir=tmp_path, workers=2)
    assert len(epoch(loader)) == len(loader)
    for name in _shards(packed):
        assert server.gets(name) == 1, name


def test_parse_size():
    assert parse_size("50GB") == 50 * 10**9
    assert parse_size("1.5KiB") == 1536
    assert parse_size(1000) == 1000
    assert parse_size(None) is None
    with pytest.raises(ConfigError, match="cache_limit"):
        parse_size("lots")


def test_a_missing_backend_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(RemoteError, match=r"s3fs package; pip install \"augpipe\[s3\]\""):
        ShardDataset("s3://bucket/ds", cache_dir=tmp_path)


def test_s3_through_a_moto_server(packed, tmp_path, monkeypatch):
    pytest.importorskip("s3fs", reason="s3:// needs s3fs (augpipe[s3])")
    moto_server = pytest.importorskip("moto.server", reason="needs moto[server]")
    boto3 = pytest.importorskip("boto3")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    srv.start()
    try:
        host, port = srv.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        for f in packed.iterdir():
            s3.upload_file(str(f), "data", f"sets/ds/{f.name}")
        opts = {"client_kwargs": {"endpoint_url": endpoint}}
        remote = _loader("s3://data/sets/ds", cache_dir=tmp_path, storage_options=opts)
        assert epoch(remote) == epoch(_loader(packed, order="partitioned"))
    finally:
        srv.stop()


def test_inspect_a_url_from_the_command_line(packed, server, tmp_path, monkeypatch, capsys):
    from augpipe.cli.main import main

    monkeypatch.setenv("AUGPIPE_CACHE_DIR", str(tmp_path))
    assert main(["inspect", server.url, "--verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == server.url and out["count"] == len(ShardDataset(packed))
    assert out["verify"]["ok"] and out["bytes_on_disk"] == out["shard_bytes"]
    monkeypatch.setenv("AUGPIPE_CACHE_LIMIT", "a lot")
    assert main(["inspect", server.url]) == 2
    assert "cache_limit: expected a size such as '50GB'" in capsys.readouterr().err
