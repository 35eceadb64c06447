"""Pack worker processes: per-record results identical to the in-process computation, input
order whatever order the workers answer in, a dead worker reported, single-transaction shards."""

from __future__ import annotations

import zlib
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from augpipe.errors import WorkerError
from augpipe.format import record, stats, writer
from augpipe.format.imageio import load_for_pack
from augpipe.format.workers import run_ordered

OPTS = {"format": "jpeg", "quality": 90, "max_side": 0, "short_side": 0,
        "max_pixels": 10**8, "keep_jpeg": False}  # fmt: skip


def _items(tmp_path: Path) -> list[tuple[int, str]]:
    rng = np.random.default_rng(0)
    # Sizes vary a lot, so the workers finish their chunks out of input order.
    sizes = [(300, 260), (8, 8), (90, 70), (5, 9), (120, 40), (16, 16), (70, 90), (33, 20)] * 3
    paths = []
    for i, (h, w) in enumerate(sizes):
        p = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(5, str(tmp_path / "bad.png"))
    return list(enumerate(paths))


def _collect(items, workers: int, chunk: int) -> list[tuple]:
    out = []
    for pos, ok, h, w, payload, part, crc in run_ordered(items, OPTS, workers, chunk=chunk):
        payload = bytes(payload) if ok else payload
        out.append((pos, ok, h, w, payload, None if part is None else part.tobytes(), crc))
    return out


def test_worker_results_equal_the_in_process_computation(tmp_path):
    items = _items(tmp_path)
    here = _collect(items, workers=1, chunk=8)
    assert [r[0] for r in here] == [pos for pos, _ in items]
    for chunk in (1, 3):  # 1: many chunks in flight per worker, answered out of order
        assert _collect(items, workers=2, chunk=chunk) == here
    for pos, ok, h, w, payload, part, crc in here:
        if not ok:
            assert part is None and crc is None and "cannot decode" in payload
            continue
        pixels, _ = load_for_pack(items[pos][1])
        # The stats sums and CRC a worker sends are exactly what this process computes.
        assert part == stats.partial(pixels, pos).tobytes()
        assert crc == zlib.crc32(payload) and (h, w) == pixels.shape[:2]


def test_record_encode_with_a_given_crc_equals_computing_it():
    payload = bytes(range(200))
    assert record.encode(3, 1, 2, 5, "jpeg", payload, zlib.crc32(payload)) == record.encode(
        3, 1, 2, 5, "jpeg", memoryview(bytearray(payload))
    )


def test_a_dead_worker_is_reported(tmp_path):
    items = _items(tmp_path)
    with pytest.raises(WorkerError, match="pack worker .* died"):
        list(run_ordered(items, {}, workers=2))  # no options: the workers fail on a KeyError


def test_single_transaction_shard_is_compact_and_deterministic(tmp_path):
    values = [bytes([i]) * (3000 + 500 * i) for i in range(20)]  # overflow pages, one commit
    for run in ("a", "b"):
        w = writer.ShardWriter(str(tmp_path / f"{run}.lmdb"), budget_bytes=1 << 20, first=0)
        for i, v in enumerate(values):
            w.add(i, v)
        w.close()
        assert not (tmp_path / f"{run}.lmdb.build").exists()
    data = (tmp_path / "a.lmdb").read_bytes()
    assert data == (tmp_path / "b.lmdb").read_bytes()
    env = lmdb.open(str(tmp_path / "a.lmdb"), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        assert [v for _, v in txn.cursor()] == values
    env.copy(str(tmp_path / "c.lmdb"), compact=True)
    env.close()
    assert len(data) == (tmp_path / "c.lmdb").stat().st_size  # nothing left to compact
