"""The targets block: how one record's annotations are stored after its image payload.

Little-endian, no pickle, every array at a 4-byte aligned offset (docs/targets.md)::

    offset size  field
         0    4  magic b"APT1"
         4    4  crc32 of bytes [8, end)
         8    4  M  instances
        12    4  K  keypoints per instance (0: none)
        16    4  R  polygon rings
        20    4  P  polygon vertices
        24    4  C  RLE counts, all instances together
        28    4  S  semantic-mask bytes (0: none)
        32       boxes      float32 (M, 4)  x0 y0 x1 y1, edge coordinates of the stored image
                 labels     int32   (M,)    contiguous class index
                 flags      uint8   (M,)    bit 0: iscrowd; padded with zeros to 4 bytes
                 keypoints  float32 (M, K, 3) x, y, v
                 ring_inst  int32   (R,)    instance of each ring
                 ring_start int32   (R + 1,) first vertex of each ring
                 vertices   float32 (P, 2)  x, y
                 rle_start  int32   (M + 1,) first count of each instance (equal: no mask)
                 rle_counts uint32  (C,)    COCO uncompressed RLE, column-major, stored size
                 semantic   uint8   (S,)    stored size, 255 = ignore: row runs (``ARR1``,
                                            ``augpipe.targets.maskcode``); a grey PNG in
                                            datasets of format version 2 (still read)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from augpipe.format.checksum import crc32
from augpipe.targets import maskcode
from augpipe.targets.core import Targets

MAGIC = b"APT1"
HEAD = struct.Struct("<4sIIIIIII")


_DTYPES = tuple(np.dtype(d) for d in ("<f4", "<i4", "u1", "<f4", "<i4", "<i4", "<f4", "<i4",
                                       "<u4", "u1"))  # fmt: skip
_EMPTY = {d.str: np.frombuffer(b"", d) for d in _DTYPES}  # read-only, as the block's views


class TargetsBlockError(ValueError):
    """A targets block that does not parse (damaged record)."""


def _pad4(n: int) -> int:
    return -(-n // 4) * 4


def encode(t: Targets) -> bytes:
    """The block for ``t`` (coordinates already in the stored image's pixels)."""
    m, k = len(t), t.n_keypoints
    starts = [0]
    counts = []
    for c in t.rle:
        if c is not None:
            counts.append(np.asarray(c, np.uint32))
        starts.append(starts[-1] + (0 if c is None else len(c)))
    counts = np.concatenate(counts) if counts else np.zeros(0, np.uint32)
    sem = b"" if t.semantic is None else maskcode.encode(t.semantic)
    flags = np.zeros(_pad4(m), np.uint8)
    flags[:m] = t.iscrowd.astype(np.uint8)
    parts = [
        t.boxes.astype("<f4").tobytes(),
        t.labels.astype("<i4").tobytes(),
        flags.tobytes(),
        t.keypoints.astype("<f4").tobytes() if k else b"",
        t.ring_inst.astype("<i4").tobytes(),
        t.ring_start.astype("<i4").tobytes(),
        t.vertices.astype("<f4").tobytes(),
        np.asarray(starts, "<i4").tobytes(),
        counts.astype("<u4").tobytes(),
        sem,
    ]
    body = b"".join(parts)
    rest = struct.pack("<6I", m, k, len(t.ring_inst), len(t.vertices), len(counts), len(sem))
    crc = zlib.crc32(body, zlib.crc32(rest))
    return MAGIC + struct.pack("<I", crc) + rest + body


def decode(block, size: tuple[int, int], check_crc: bool = False,
           mask_runs: bool = False) -> Targets:  # fmt: skip
    """Parse a block (bytes or a buffer) for an image of ``size`` (H, W). ``mask_runs``: leave
    a row-run semantic mask as ``RowRuns`` (views into ``block``; the mask warp expands only
    the part it reads) instead of an array."""
    view = memoryview(block).cast("B")
    if len(view) < HEAD.size:
        raise TargetsBlockError(f"targets block is {len(view)} bytes, shorter than its header")
    magic, crc, m, k, r, p, c, s = HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise TargetsBlockError(f"bad targets magic {bytes(magic)!r} (expected {MAGIC!r})")
    sizes = [16 * m, 4 * m, _pad4(m), 12 * m * k, 4 * r, 4 * (r + 1), 8 * p, 4 * (m + 1), 4 * c, s]
    if HEAD.size + sum(sizes) != len(view):
        raise TargetsBlockError(
            f"targets block is {len(view)} bytes, its header says {HEAD.size + sum(sizes)}"
        )
    if check_crc and crc32(view[8:]) != crc:
        raise TargetsBlockError("targets block CRC32 mismatch (bytes changed since packing)")
    off = HEAD.size
    if k == r == p == c == s == 0:  # plain boxes: three arrays, the RLE index all zeros
        end = off + 20 * m + _pad4(m) + 4  # (ring_start holds one entry even without rings)
        if view[end:] != bytes(4 * (m + 1)):
            raise TargetsBlockError("targets block RLE index is inconsistent")
        boxes = np.frombuffer(view, "<f4", 4 * m, off).reshape(m, 4)
        labels = np.frombuffer(view, "<i4", m, off + 16 * m).astype(np.int64)
        crowd = (np.frombuffer(view, "u1", m, off + 20 * m) & 1).astype(bool)
        return Targets.plain(boxes, labels, (int(size[0]), int(size[1])), crowd)
    arrays = []
    for n, dt in zip(sizes, _DTYPES):  # (absent fields: one shared empty array each)
        arrays.append(np.frombuffer(view, dt, n // dt.itemsize, off) if n else _EMPTY[dt.str])
        off += n
    boxes, labels, flags, kp, rinst, rstart, verts, rlestart, counts, sem = arrays
    if r and (rstart[0] != 0 or rstart[-1] != p or np.any(np.diff(rstart) < 0)
              or rinst.min() < 0 or rinst.max() >= m):  # fmt: skip
        raise TargetsBlockError("targets block polygon index is inconsistent")
    if c == 0:  # no instance has a mask: every start is 0
        if rlestart.any():
            raise TargetsBlockError("targets block RLE index is inconsistent")
        rle = [None] * m
    else:
        if rlestart[0] != 0 or rlestart[-1] != c or np.any(np.diff(rlestart) < 0):
            raise TargetsBlockError("targets block RLE index is inconsistent")
        st = rlestart.tolist()
        rle = [None if st[j] == st[j + 1] else counts[st[j] : st[j + 1]] for j in range(m)]
    semantic = None
    if s:
        try:
            semantic = maskcode.decode_stored(sem, size)
        except maskcode.MaskCodeError as exc:
            raise TargetsBlockError(f"targets block semantic mask: {exc}") from None
        if isinstance(semantic, maskcode.RowRuns) and not mask_runs:
            semantic = semantic.array()
    return Targets(
        boxes=boxes.reshape(m, 4),
        labels=labels,
        size=size,
        iscrowd=(flags[:m] & 1).astype(bool),
        keypoints=kp.reshape(m, k, 3) if k else None,
        ring_inst=rinst,
        ring_start=rstart if r else np.zeros(1, np.int32),
        vertices=verts.reshape(p, 2),
        rle=rle,
        semantic=semantic,
    )
