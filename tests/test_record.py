"""Record header: layout, round trip, damage detection, key order."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from augpipe.format import record


def test_header_is_32_bytes_little_endian():
    value = record.encode(7, 3, 2, 5, "raw", bytes(range(30)))
    assert record.HEADER_SIZE == 32
    assert value[:4] == b"APR1"
    label, h, w, c, enc = struct.unpack_from("<iIIBB", value, 4)
    assert (label, h, w, c, enc) == (3, 2, 5, 3, 0)
    crc, length, index = struct.unpack_from("<III", value, 20)
    assert crc == zlib.crc32(bytes(range(30))) and length == 30 and index == 7
    assert value[32:] == bytes(range(30))


@given(
    index=st.integers(0, 2**32 - 1),
    label=st.integers(0, 2**31 - 1),
    h=st.integers(1, 10_000),
    w=st.integers(1, 10_000),
    enc=st.sampled_from(["raw", "jpeg"]),
    payload=st.binary(max_size=200),
)
def test_round_trip(index, label, h, w, enc, payload):
    value = record.encode(index, label, h, w, enc, payload)
    head = record.decode_header(value)
    assert (head.index, head.label, head.height, head.width) == (index, label, h, w)
    assert head.encoding == record.ENCODINGS[enc] and head.length == len(payload)
    assert record.check_crc(value, head)


def test_flipped_payload_byte_fails_crc():
    value = bytearray(record.encode(0, 1, 1, 1, "raw", b"abc"))
    value[-1] ^= 0x01
    head = record.decode_header(value)
    assert not record.check_crc(value, head)


@pytest.mark.parametrize(
    "value, message",
    [
        (b"APR1", "shorter"),
        (b"XXXX" + bytes(28), "magic"),
        (record.encode(0, 0, 1, 1, "raw", b"abc")[:-1], "header says 3"),
    ],
)
def test_damaged_header_is_reported(value, message):
    with pytest.raises(ValueError, match=message):
        record.decode_header(value)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_keys_sort_like_integers(a, b):
    assert (record.key(a) < record.key(b)) == (a < b)
