"""augpipe inspect: summary, --json, --verify catches a flipped byte."""

from __future__ import annotations

import json
import shutil

import numpy as np

from augpipe.cli.main import main
from augpipe.format import inspect
from augpipe.format.dataset import ShardDataset


def test_summary(tiny_packed):
    s = inspect.summary(tiny_packed)
    assert s["count"] == 24 and s["encoding"] == "jpeg" and s["shards"] == 1
    assert s["classes"] == {"class00": 8, "class01": 8, "class02": 8}
    assert s["bytes_on_disk"] >= s["shard_bytes"] > 0
    assert 24 <= s["mean_height"] <= 48 and 24 <= s["min_side"] <= s["max_side"] <= 48
    assert len(s["stats"]["eigvec"]) == 3


def test_cli_text_json_and_verify_ok(tiny_packed, capsys):
    assert main(["inspect", str(tiny_packed)]) == 0
    out = capsys.readouterr().out
    assert "24 records, 3 classes, jpeg" in out and "class01: 8" in out
    assert main(["inspect", str(tiny_packed), "--verify", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["count"] == 24 and data["verify"] == {"ok": True, "problems": []}
    assert main(["inspect", str(tiny_packed), "--verify"]) == 0
    assert "all 24 records OK" in capsys.readouterr().out


def _flip_payload_byte(d, record: int):
    """Flip one byte in the middle of a record's payload, found by its bytes in the file."""
    ds = ShardDataset(d)
    payload = bytes(ds.raw(record))
    ds.close()
    shard = d / "shard-00000.lmdb"
    data = bytearray(shard.read_bytes())
    pos = data.find(payload[: len(payload) // 2])
    assert pos > 0 and data.find(payload[: len(payload) // 2], pos + 1) == -1
    data[pos + len(payload) // 3] ^= 0x40
    shard.write_bytes(bytes(data))


def test_verify_names_a_flipped_byte(tiny_packed, tiny_packed_raw, tmp_path, capsys):
    for src, rec in ((tiny_packed, 5), (tiny_packed_raw, 17)):
        d = tmp_path / src.name
        shutil.copytree(src, d)
        _flip_payload_byte(d, rec)
        assert main(["inspect", str(d), "--verify"]) == 1
        err = capsys.readouterr().err
        assert f"shard-00000.lmdb record {rec}: CRC32 mismatch" in err
        assert "SHA-256" in err and "verify FAILED" in err
        problems = inspect.verify(d)
        assert sum("CRC32" in p for p in problems) == 1


def test_verify_reports_index_disagreement(tiny_packed_raw, tmp_path, capsys):
    d = tmp_path / "d"
    shutil.copytree(tiny_packed_raw, d)
    index = np.load(d / "index.npy")
    index[3, 0] = 2
    np.save(d / "index.npy", index)
    assert main(["inspect", str(d), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "record 3: header" in err and "index.npy" in err


def test_inspect_missing_dataset_exits_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none")]) == 2
    assert "no such packed dataset" in capsys.readouterr().err


def test_verify_names_an_unreadable_shard(tiny_packed, tmp_path, capsys):
    d = tmp_path / "d"
    shutil.copytree(tiny_packed, d)
    (d / "shard-00000.lmdb").write_bytes(b"\0" * 8192)
    assert main(["inspect", str(d), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "shard-00000.lmdb: LMDB" in err or "shard-00000.lmdb: SHA-256" in err
    assert "verify FAILED" in err
