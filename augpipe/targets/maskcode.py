"""The stored semantic mask: row runs, deflated (``ARR1``), and reading the older PNG masks.

A mask (H, W) uint8 is stored as the runs of equal values along each row: per row the index
of its first run, then every run's length and value. The arrays are deflated (zlib) as one
stream. Reading inflates them (a few kilobytes for typical masks) and checks that every row's
runs sum to W; the mask warp (``augpipe.targets.masks``) then expands only the rows and columns
its map reads. PNG masks (what datasets packed before format version 3 hold) still read.

Layout, little-endian (docs/targets.md)::

    offset size  field
         0    4  magic b"ARR1"
         4    4  H
         8    4  W
        12    4  N  runs
        16    4  compression: 0 stored, 1 zlib
        20       the body (zlib-deflated when compression is 1):
                 row_start uint32 (H + 1,)  first run of each row; row_start[H] = N
                 length    uint16 (N,)      run lengths (a longer run is split), > 0
                 value     uint8  (N,)

>>> runs = decode(encode(mask), mask.shape)
>>> np.array_equal(runs.array(), mask)
True
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numba import njit

MAGIC = b"ARR1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEAD = struct.Struct("<4sIIII")
_MAX_RUN = 0xFFFF


class MaskCodeError(ValueError):
    """Stored mask bytes that do not parse (a damaged record)."""


@dataclass(frozen=True)
class RowRuns:
    """A semantic mask as row runs: row y's runs are ``row_start[y] : row_start[y + 1]``.

    >>> RowRuns.from_array(np.array([[1, 1, 2]], np.uint8)).lengths.tolist()
    [2, 1]
    """

    size: tuple[int, int]
    row_start: np.ndarray  # (H + 1,) uint32
    lengths: np.ndarray  # (N,) uint16
    values: np.ndarray  # (N,) uint8

    @property
    def shape(self) -> tuple[int, int]:
        return self.size

    @classmethod
    def from_array(cls, mask: np.ndarray) -> RowRuns:
        m = np.ascontiguousarray(mask, np.uint8)
        if m.ndim != 2:
            raise ValueError(f"a mask is (H, W), got shape {m.shape}")
        h, w = m.shape
        if m.size == 0:
            return cls((h, w), np.zeros(h + 1, np.uint32), np.zeros(0, np.uint16),
                       np.zeros(0, np.uint8))  # fmt: skip
        start = np.ones((h, w), bool)
        start[:, 1:] = m[:, 1:] != m[:, :-1]
        start[:, _MAX_RUN::_MAX_RUN] = True  # a run longer than uint16 holds is split
        pos = np.flatnonzero(start.reshape(-1))
        rows = pos // w
        end = np.minimum(np.append(pos[1:], h * w), (rows + 1) * w)
        row_start = np.searchsorted(rows, np.arange(h + 1)).astype(np.uint32)
        return cls((h, w), row_start, (end - pos).astype(np.uint16), m.reshape(-1)[pos])

    def array(self) -> np.ndarray:
        """The mask as a new (H, W) uint8 array."""
        out = np.empty(self.size, np.uint8)
        expand_rows(self.row_start, self.lengths, self.values, 0, self.size[0], 0,
                    self.size[1], out, 0)  # fmt: skip
        return out


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def expand_rows(row_start, lengths, values, y0, y1, x0, x1, out, col):
    """Rows [y0, y1) and columns [x0, x1) of the mask into ``out[y - y0, col + x - x0]``."""
    for y in range(y0, y1):
        dst = out[y - y0]
        x = 0
        for r in range(row_start[y], row_start[y + 1]):
            e = x + np.int64(lengths[r])
            a, b = max(x, x0), min(e, x1)
            if a < b:
                v = values[r]
                for c in range(col + a - x0, col + b - x0):
                    dst[c] = v
            if e >= x1:
                break
            x = e


@njit(nogil=True, cache=True, error_model="numpy")
def _rows_ok(row_start, lengths, w):
    n = lengths.shape[0]
    if row_start[0] != 0 or row_start[row_start.shape[0] - 1] != n:
        return False
    for y in range(row_start.shape[0] - 1):
        a, b = row_start[y], row_start[y + 1]
        if b < a or b > n:
            return False
        s = 0
        for r in range(a, b):
            if lengths[r] == 0:
                return False
            s += np.int64(lengths[r])
        if s != w:
            return False
    return True


def encode(mask: np.ndarray) -> bytes:
    """The stored bytes of ``mask`` (H, W) uint8."""
    runs = RowRuns.from_array(mask)
    h, w = runs.size
    body = (runs.row_start.astype("<u4").tobytes() + runs.lengths.astype("<u2").tobytes()
            + runs.values.tobytes())  # fmt: skip
    return HEAD.pack(MAGIC, h, w, len(runs.lengths), 1) + zlib.compress(body, 6)


def decode(buf, size: tuple[int, int]) -> RowRuns:
    """Parse ``ARR1`` bytes for a mask of ``size`` (H, W); MaskCodeError when they do not."""
    view = memoryview(buf).cast("B")
    if len(view) < HEAD.size:
        raise MaskCodeError(f"mask is {len(view)} bytes, shorter than its header")
    magic, h, w, n, comp = HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise MaskCodeError(f"bad mask magic {bytes(magic)!r} (expected {MAGIC!r})")
    if (h, w) != tuple(size):
        raise MaskCodeError(f"mask is {h}x{w}, the image {size[0]}x{size[1]}")
    if comp not in (0, 1):
        raise MaskCodeError(f"unknown mask compression {comp}")
    want = 4 * (h + 1) + 3 * n
    body = view[HEAD.size :]
    if comp == 1:
        try:
            d = zlib.decompressobj()
            body = d.decompress(body, want)  # never inflates past the size the header gives
            if not d.eof and d.decompress(d.unconsumed_tail, 1):  # (only the checksum left)
                raise MaskCodeError("mask data inflates past the size its header gives")
            if not d.eof or d.unused_data:
                raise MaskCodeError("mask data is truncated or has trailing bytes")
        except zlib.error as exc:
            raise MaskCodeError(f"mask data does not inflate ({exc})") from None
    if len(body) != want:
        raise MaskCodeError(f"mask holds {len(body)} bytes, its header says {want}")
    row_start = np.frombuffer(body, "<u4", h + 1, 0)
    lengths = np.frombuffer(body, "<u2", n, 4 * (h + 1))
    values = np.frombuffer(body, "u1", n, 4 * (h + 1) + 2 * n)
    if not _rows_ok(row_start, lengths, w):
        raise MaskCodeError("mask rows do not add up to the image width")
    return RowRuns((h, w), row_start, lengths, values)


def decode_stored(buf, size: tuple[int, int]) -> RowRuns | np.ndarray:
    """A stored semantic mask of either kind: ``RowRuns`` for ``ARR1``, an (H, W) array for the
    PNG that datasets of format version 2 hold."""
    head = bytes(memoryview(buf)[:8])
    if head[:4] == MAGIC:
        return decode(buf, size)
    if head != PNG_MAGIC:
        raise MaskCodeError(f"semantic mask starts with {head[:4]!r}: neither ARR1 nor PNG")
    import cv2

    m = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if m is None or m.shape != tuple(size) or m.dtype != np.uint8:
        raise MaskCodeError(f"semantic mask PNG does not decode to {size[0]}x{size[1]} uint8")
    return m
