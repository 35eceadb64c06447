"""One record in a shard: a fixed 32-byte little-endian header followed by the payload.

Header layout (``struct`` format ``<4siIIBBHIII``)::

    offset size field
         0    4 magic      b"APR1" ("augpipe record", layout version 1)
         4    4 label      int32
         8    4 height     uint32
        12    4 width      uint32
        16    1 channels   uint8 (always 3: RGB)
        17    1 encoding   uint8 (0 raw HWC uint8, 1 JPEG)
        18    2 flags      uint16: bit 0 = a targets block follows the payload (format 2)
        20    4 crc32      uint32, zlib.crc32 of the payload
        24    4 length     uint32, payload bytes
        28    4 index      uint32, the record's position in the dataset (its key)

A record with flag bit 0 set continues after its payload with a targets block (boxes, labels,
polygons, RLE masks, keypoints, semantic mask: ``augpipe.targets.layout``); ``length`` and the
CRC32 cover the payload only, the block carries its own CRC32.

Keys are the record index as 8 big-endian bytes, so LMDB's byte order is numeric order and
records written with ``append=True`` lie in key order on disk. Nothing here is pickled.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

MAGIC = b"APR1"
HEADER = struct.Struct("<4siIIBBHIII")
HEADER_SIZE = HEADER.size  # 32
ENCODINGS = {"raw": 0, "jpeg": 1}
ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}
FLAG_TARGETS = 1
_KEY = struct.Struct(">Q")


class RecordHeader(NamedTuple):
    label: int
    height: int
    width: int
    channels: int
    encoding: int
    crc32: int
    length: int
    index: int
    flags: int = 0


def key(index: int) -> bytes:
    """The LMDB key of record ``index``: 8 bytes big-endian, sorts numerically."""
    return _KEY.pack(index)


def encode(
    index: int,
    label: int,
    height: int,
    width: int,
    encoding: str,
    payload,
    crc: int | None = None,
    targets: bytes | None = None,
) -> bytes:
    """Header + payload (+ targets block) as one bytes object, ready for ``txn.put``. ``crc``:
    the payload's CRC32 when the caller already has it (pack workers compute it)."""
    payload = memoryview(payload).cast("B")
    head = HEADER.pack(
        MAGIC,
        label,
        height,
        width,
        3,
        ENCODINGS[encoding],
        FLAG_TARGETS if targets else 0,
        zlib.crc32(payload) if crc is None else crc,
        len(payload),
        index,
    )
    return b"".join((head, payload, targets or b""))  # one copy of the payload


def decode_header(value) -> RecordHeader:
    """Parse the header of a stored value; ValueError with the reason when it is not one."""
    if len(value) < HEADER_SIZE:
        raise ValueError(
            f"record is {len(value)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, *fields = HEADER.unpack_from(value, 0)
    if magic != MAGIC:
        raise ValueError(f"bad record magic {bytes(magic)!r} (expected {MAGIC!r})")
    label, height, width, channels, encoding, flags, crc, length, index = fields
    head = RecordHeader(label, height, width, channels, encoding, crc, length, index, flags)
    if flags & FLAG_TARGETS:
        if len(value) - HEADER_SIZE <= length:
            raise ValueError(
                f"record is {len(value)} bytes: no room for the targets block its header announces"
            )
    elif len(value) - HEADER_SIZE != length:
        raise ValueError(
            f"payload is {len(value) - HEADER_SIZE} bytes but the header says {length}"
        )
    return head


def check_crc(value, head: RecordHeader) -> bool:
    """True when the payload's CRC32 matches the header's."""
    return zlib.crc32(memoryview(value)[HEADER_SIZE : HEADER_SIZE + head.length]) == head.crc32


def targets_block(value, head: RecordHeader):
    """The targets block after the payload (a memoryview), or None when the record has none."""
    if not head.flags & FLAG_TARGETS:
        return None
    return memoryview(value)[HEADER_SIZE + head.length :]
