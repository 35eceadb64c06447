"""ShardDataset: the interface in docs/INTERNALS.md, zero-copy reads, processes, errors."""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import shutil

import numpy as np
import pytest

from augpipe.errors import DatasetError
from augpipe.format.dataset import ShardDataset


def test_interface(tiny_packed):
    ds = ShardDataset(tiny_packed)
    assert len(ds) == 24
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (24,)
    assert ds.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert ds.classes == ["class00", "class01", "class02"]
    assert ds.encoding == "jpeg"
    assert ds.sizes.dtype == np.int32 and ds.sizes.shape == (24, 2)
    assert ds.manifest["count"] == 24
    for k, shape in (("mean", (3,)), ("std", (3,)), ("eigval", (3,)), ("eigvec", (3, 3))):
        assert ds.stats[k].shape == shape and ds.stats[k].dtype == np.float64
    assert (np.diff(ds.stats["eigval"]) <= 0).all()
    for i in range(len(ds)):
        img = ds.image(i)
        assert img.dtype == np.uint8 and img.shape == (*ds.sizes[i], 3)
        assert img.flags.writeable
    img, label = ds[5]
    assert label == 0 and np.array_equal(img, ds.image(5))
    ds.close()


def test_raw_is_a_read_only_view_into_the_map(tiny_packed, tiny_packed_raw):
    ds = ShardDataset(tiny_packed)
    a = ds.raw(3)
    assert a.dtype == np.uint8 and a.ndim == 1
    assert not a.flags.writeable and not a.flags.owndata
    assert isinstance(a.base, memoryview) or not isinstance(a.base, bytes)
    assert bytes(a[:3]) == b"\xff\xd8\xff"
    raw = ShardDataset(tiny_packed_raw)
    h, w = raw.sizes[7]
    assert raw.raw(7).size == h * w * 3
    assert np.array_equal(raw.raw(7).reshape(h, w, 3), raw.image(7))
    assert raw.raw(-1).size == raw.raw(23).size
    with pytest.raises(IndexError):
        raw.raw(24)


def test_raw_and_jpeg_hold_the_same_images(tiny_packed, tiny_packed_raw):
    a, b = ShardDataset(tiny_packed), ShardDataset(tiny_packed_raw)
    assert np.array_equal(a.sizes, b.sizes) and np.array_equal(a.labels, b.labels)
    diff = a.image(0).astype(float) - b.image(0)
    assert 10 * np.log10(255**2 / np.mean(diff**2)) > 30


def test_pickle_keeps_only_the_path(tiny_packed):
    ds = ShardDataset(tiny_packed)
    ds.raw(0)  # opens environments: they must not travel
    blob = pickle.dumps(ds)
    assert len(blob) < 400 and b"lmdb" not in blob.lower().replace(b"tiny", b"")
    clone = pickle.loads(blob)
    assert np.array_equal(clone.image(4), ds.image(4))


def _child_reads(ds, queue):
    queue.put([bytes(ds.raw(i)) for i in (0, 11, 23)])


def test_reads_after_fork(tiny_packed):
    ds = ShardDataset(tiny_packed)
    expected = [bytes(ds.raw(i)) for i in (0, 11, 23)]  # parent opened before forking
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child_reads, args=(ds, queue))
    p.start()
    got = queue.get(timeout=60)
    p.join(timeout=60)
    assert p.exitcode == 0 and got == expected
    assert [bytes(ds.raw(i)) for i in (0, 11, 23)] == expected  # parent unaffected


def test_close_then_reuse_reopens(tiny_packed):
    ds = ShardDataset(tiny_packed)
    first = bytes(ds.raw(1))
    ds.close()
    assert bytes(ds.raw(1)) == first
    with ShardDataset(tiny_packed) as ds2:
        assert len(ds2) == 24


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_missing_and_non_datasets(tmp_path):
    with pytest.raises(DatasetError, match="no such packed dataset"):
        ShardDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no manifest.json"):
        ShardDataset(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="not a packed dataset"):
        ShardDataset(tmp_path / "file")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda d: _edit(d, format_version=99), "format version 99"),
        (lambda d: _edit(d, format="something-else"), "not an augpipe-shards manifest"),
        (lambda d: _edit(d, count=3), "manifest says 3"),
        (lambda d: _edit(d, shards=["x"]), "shard list is inconsistent"),
        (lambda d: _edit(d, encoding="png"), "unknown encoding"),
        (lambda d: _npz(d / "index.npy"), "not a single NumPy array"),
        (lambda d: (d / "shard-00000.lmdb").unlink(), "shard-00000.lmdb.*missing"),
        (lambda d: (d / "index.npy").unlink(), "index.npy is missing"),
        (lambda d: np.save(d / "index.npy", np.zeros((24, 3), np.int64)), "index.npy has shape"),
        (
            lambda d: np.save(
                d / "index.npy", np.array([{"evil": 1}] * 24, dtype=object), allow_pickle=True
            ),
            "index.npy is unreadable",
        ),  # fmt: skip
    ],
)
def test_damaged_dataset_raises_dataset_error(tiny_packed, tmp_path, damage, message):
    d = _copy(tiny_packed, tmp_path)
    damage(d)
    with pytest.raises(DatasetError, match=message) as info:
        ShardDataset(d)
    assert str(d) in str(info.value)


def _npz(path):
    with open(path, "wb") as f:  # an archive under the .npy name
        np.savez(f, a=np.zeros(3))


def _edit(d, **fields):
    m = json.loads((d / "manifest.json").read_text())
    m.update(fields)
    (d / "manifest.json").write_text(json.dumps(m))


def test_truncated_shard_raises_dataset_error(tiny_packed, tmp_path):
    d = _copy(tiny_packed, tmp_path)
    (d / "shard-00000.lmdb").write_bytes(b"\0" * 100)
    ds = ShardDataset(d)  # cheap construction; the shard is opened on first access
    with pytest.raises(DatasetError, match="shard-00000.lmdb"):
        ds.raw(0)


def test_damaged_header_raises_on_read(tiny_packed_raw, tmp_path):
    d = _copy(tiny_packed_raw, tmp_path)
    shard = d / "shard-00000.lmdb"
    data = bytearray(shard.read_bytes())
    assert data.count(b"APR1") == 24
    pos = data.find(b"APR1")
    data[pos : pos + 4] = b"XPR1"
    shard.write_bytes(bytes(data))
    ds = ShardDataset(d)
    with pytest.raises(DatasetError, match="record 0 is damaged"):
        ds.raw(0)
    assert ds.raw(1).size == ds.sizes[1].prod() * 3
