"""The records' CRC32 (augpipe.format.checksum): zlib's values, whichever implementation."""

from __future__ import annotations

import zlib

import numpy as np

from augpipe.format.checksum import crc32


def test_crc32_equals_zlib_on_bytes_views_and_chained_values():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 1000, 20011):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32(data) == zlib.crc32(data)
        view = memoryview(data)[n // 3 :]
        assert crc32(view) == zlib.crc32(view)
        assert crc32(data, 12345) == zlib.crc32(data, 12345)
    assert crc32(b"\x00" * 5) != crc32(b"\x00" * 6)  # a length change shows
