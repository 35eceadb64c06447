"""Damage never crashes a reader: seeded fuzzing of shard bytes, pages and truncation, and the
targeted cases behind it (inspect --verify exit 1, Loader errors naming the shard)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from augpipe import CenterCrop, Compose, Loader
from augpipe.cli.main import main
from augpipe.errors import DatasetError, WorkerError
from augpipe.format.lmdb_check import check_shard
from augpipe.format.pack import pack

FUZZ = Path(__file__).with_name("damage_fuzz.py")
PSIZE = 4096


@pytest.fixture(scope="module")
def three_shards(tiny_folder, tmp_path_factory):
    """``tiny_folder`` packed as JPEG into three shards (a two-level B-tree in each)."""
    out = tmp_path_factory.mktemp("shards") / "three.jpeg"
    pack(tiny_folder, out, format="jpeg", quality=90, shard_size_mb=0.01, progress=False)
    return out


def _copy(src, tmp_path) -> Path:
    d = tmp_path / src.name
    shutil.copytree(src, d)
    return d


def _fuzz(path, cases: int, seed: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, str(FUZZ), str(path), str(cases), str(seed)],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    # a segmentation fault or bus error in a reader shows here as a negative return code
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("fixture,cases,seed", [("three_shards", 200, 11),
                                                ("tiny_packed_raw", 100, 12)])  # fmt: skip
def test_fuzzed_damage_is_reported_naming_the_shard(request, tmp_path, fixture, cases, seed):
    d = _copy(request.getfixturevalue(fixture), tmp_path)
    results = _fuzz(d, cases, seed)
    assert len(results) >= cases * 0.9  # a case whose damage changed nothing is skipped
    errors = 0
    for r in results:
        # verify: SHA-256 alone catches any changed byte; every line names its shard
        assert r["verify"], r
        assert any(p.startswith(r["shard"] + ":") for p in r["verify"]), r
        if r["loader"] != "same":  # either exactly the undamaged batches, or an error
            errors += 1
            assert r["loader"].startswith(("DatasetError", "WorkerError")), r
            assert repr(r["shard"]) in r["loader"], r
        if r["kind"].startswith("truncate"):
            assert r["loader"] != "same", r
    assert errors >= len(results) // 3


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def _poke(path: Path, offset: int, value: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(value)


def test_sound_shards_pass_the_structure_check(three_shards):
    m = json.loads((three_shards / "manifest.json").read_text())
    for s in m["shards"]:
        assert check_shard(three_shards / s["name"], s["first"], s["count"]) is None
        assert check_shard(three_shards / s["name"], s["first"] + 1, s["count"]) is not None


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda f: _truncate(f, 3 * PSIZE), "bytes, the manifest says"),
        (lambda f: _poke(f, 16, b"\0\0\0\0"), "meta page 0 has bad magic"),
        # the root of the picked meta (page 1) pointing past the end of the file
        (
            lambda f: _poke(f, PSIZE + 16 + 24 + 48 + 40, (10**6).to_bytes(8, "little")),
            "outside the file",
        ),  # fmt: skip
        (lambda f: _poke(f, 2 * PSIZE + 12, b"\xff\xff"), "bad bounds"),
    ],
)
def test_structure_damage_is_a_dataset_error_naming_the_shard(three_shards, tmp_path, damage,
                                                              message, capsys):  # fmt: skip
    d = _copy(three_shards, tmp_path)
    shard = d / "shard-00001.lmdb"
    damage(shard)
    with pytest.raises(DatasetError, match=message) as info:
        Loader(d, 4, Compose([CenterCrop(16)]), workers=0, output="numpy")
    assert "'shard-00001.lmdb'" in str(info.value)
    assert main(["inspect", str(d), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "shard-00001.lmdb: " in err and "verify FAILED" in err


@pytest.mark.parametrize("workers", [0, 2])
def test_payload_damage_stops_the_loader_naming_shard_and_record(tiny_packed_raw, tmp_path,
                                                                 workers):  # fmt: skip
    d = _copy(tiny_packed_raw, tmp_path)
    shard = d / "shard-00000.lmdb"
    data = bytearray(shard.read_bytes())
    pos = [i for i in range(len(data)) if data.startswith(b"APR1", i)][7]  # record 7
    data[pos + 40] ^= 0x01  # one pixel byte, header intact
    shard.write_bytes(bytes(data))
    pipe = Compose([CenterCrop(16)])
    with Loader(d, 4, pipe, workers=workers, output="numpy", shuffle=False) as lo:
        with pytest.raises(WorkerError, match="'shard-00000.lmdb' record 7 is damaged: payload "
                                              "CRC32 mismatch"):  # fmt: skip
            for _ in lo:
                pass
