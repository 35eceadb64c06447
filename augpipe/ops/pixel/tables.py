"""The lookup-table steps of a sample's program on its HWC uint8 output tile (flat, RGB
interleaved): solarize, solarize-add, posterize and invert as vectorised arithmetic (the same
values as their 256-entry tables), autocontrast from the tile's per-channel min/max, equalize
from its histogram through a per-channel table (both computed only for the samples that draw
them).

Per-channel constants are laid out over a 48-element block (16 pixels): element k of a block
is channel k % 3, so each block is one contiguous, vectorisable loop.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from augpipe.ops.pixel import program as P

# fastmath off explicitly, not inherited from ``_render`` (see ``tile.py``)
_K = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False, fastmath=False)
_BLOCK = 48  # elements per block: 16 RGB pixels


@njit(**_K)
def apply_lut(flat, lut):
    n = flat.shape[0] // 3
    for i in range(n):
        flat[3 * i] = lut[0, flat[3 * i]]
        flat[3 * i + 1] = lut[1, flat[3 * i + 1]]
        flat[3 * i + 2] = lut[2, flat[3 * i + 2]]


@njit(**_K)
def histogram(flat):
    """(3, 256) counts; two histograms per channel (even and odd pixels) so that runs of equal
    values do not chain each increment on the previous one's store."""
    h = np.zeros((6, 256), np.int32)
    n = flat.shape[0] // 6
    for i in range(n):
        k = 6 * i
        h[0, flat[k]] += 1
        h[1, flat[k + 1]] += 1
        h[2, flat[k + 2]] += 1
        h[3, flat[k + 3]] += 1
        h[4, flat[k + 4]] += 1
        h[5, flat[k + 5]] += 1
    out = np.zeros((3, 256), np.int64)
    for k in range(6 * n, flat.shape[0]):
        out[k % 3, flat[k]] += 1
    for c in range(3):
        for i in range(256):
            out[c, i] += h[c, i] + h[c + 3, i]
    return out


@njit(**_K)
def equalize_lut(h, lut):
    """PIL's ImageOps.equalize: step = (pixels - count of the top value) // 255, identity when
    the channel has one value or step is 0; lut[i] = (step // 2 + cumsum(h)[i - 1]) // step."""
    for c in range(3):
        last = -1
        nz = 0
        total = 0
        for i in range(256):
            if h[c, i]:
                last = i
                nz += 1
                total += h[c, i]
        step = (total - h[c, last]) // 255 if nz > 1 else 0
        if step == 0:
            for i in range(256):
                lut[c, i] = i
            continue
        acc = step // 2
        for i in range(256):
            lut[c, i] = min(acc // step, 255)
            acc += h[c, i]


@njit(**_K)
def autocontrast_lut(h, lut):
    """PIL's ImageOps.autocontrast (cutoff 0): per channel lo, hi = min, max; identity when
    hi <= lo, else lut[i] = clamp(int(i * 255 / (hi - lo) - lo * 255 / (hi - lo)))."""
    for c in range(3):
        lo = 0
        while lo < 255 and h[c, lo] == 0:
            lo += 1
        hi = 255
        while hi > 0 and h[c, hi] == 0:
            hi -= 1
        if hi <= lo:
            for i in range(256):
                lut[c, i] = i
            continue
        scale = 255.0 / (hi - lo)
        offset = -lo * scale
        for i in range(256):
            v = int(i * scale + offset)
            lut[c, i] = min(max(v, 0), 255)


@njit(**_K)
def minmax(flat):
    """Per-channel (min, max) of the interleaved tile: lane-wise over 48-element blocks."""
    lo = np.full(_BLOCK, 255, np.uint8)
    hi = np.zeros(_BLOCK, np.uint8)
    nb = flat.shape[0] // _BLOCK
    for b in range(nb):
        blk = flat[b * _BLOCK : (b + 1) * _BLOCK]
        for k in range(_BLOCK):
            v = blk[k]
            lo[k] = min(lo[k], v)
            hi[k] = max(hi[k], v)
    mn = np.full(3, 255, np.int64)
    mx = np.zeros(3, np.int64)
    for k in range(_BLOCK):
        mn[k % 3] = min(mn[k % 3], lo[k])
        mx[k % 3] = max(mx[k % 3], hi[k])
    for k in range(nb * _BLOCK, flat.shape[0]):
        mn[k % 3] = min(mn[k % 3], flat[k])
        mx[k % 3] = max(mx[k % 3], flat[k])
    return mn, mx


@njit(**_K)
def autocontrast(flat):
    """``autocontrast_lut``'s values from the per-channel min/max, as arithmetic: the same
    float64 int(x * scale + offset), clamped (a channel with hi <= lo keeps scale 1, offset 0)."""
    lo, hi = minmax(flat)
    sc = np.ones(_BLOCK)
    of = np.zeros(_BLOCK)
    if hi[0] <= lo[0] and hi[1] <= lo[1] and hi[2] <= lo[2]:
        return
    for c in range(3):
        if hi[c] > lo[c]:
            s = 255.0 / (hi[c] - lo[c])
            for k in range(c, _BLOCK, 3):
                sc[k] = s
                of[k] = -lo[c] * s
    nb = flat.shape[0] // _BLOCK
    for b in range(nb):
        blk = flat[b * _BLOCK : (b + 1) * _BLOCK]
        for k in range(_BLOCK):
            blk[k] = min(max(int(blk[k] * sc[k] + of[k]), 0), 255)
    for k in range(nb * _BLOCK, flat.shape[0]):
        flat[k] = min(max(int(flat[k] * sc[k % 3] + of[k % 3]), 0), 255)


@njit(**_K)
def _threshold(a):  # the integer t with (i >= a) == (i >= t) for i in 0..255, clamped to 0..256
    return np.int32(min(max(math.ceil(a), 0), 256))


@njit(**_K)
def _solarize(flat, t):
    for i in range(flat.shape[0]):
        x = flat[i]
        flat[i] = np.uint8(255) - x if x >= t else x


@njit(**_K)
def _solarize_add(flat, add, t):
    for i in range(flat.shape[0]):
        x = flat[i]
        flat[i] = np.uint8(min(np.int32(x) + add, 255)) if x < t else x


@njit(**_K)
def _mask(flat, m):
    m = np.uint8(m)
    for i in range(flat.shape[0]):
        flat[i] = flat[i] & m


@njit(**_K)
def _invert(flat):
    for i in range(flat.shape[0]):
        flat[i] = np.uint8(255) - flat[i]


@njit(**_K)
def static_lut(code, a0, a1, lut):
    """The 256-entry table of a static step (the definition ``static_step`` computes)."""
    for i in range(256):
        v = i
        if code == P.SOLARIZE:
            v = 255 - i if i >= a0 else i
        elif code == P.SOLARIZE_ADD:
            v = min(255, i + int(a0)) if i < a1 else i
        elif code == P.POSTERIZE:
            bits = int(a0)
            v = i & (~((1 << (8 - bits)) - 1) & 255) if bits < 8 else i
        elif code == P.INVERT:
            v = 255 - i
        lut[0, i] = v
        lut[1, i] = v
        lut[2, i] = v


@njit(**_K)
def static_step(flat, code, a0, a1):
    """Solarize (x >= a0 -> 255 - x), solarize-add (x < a1 -> min(255, x + int(a0))), posterize
    (a0 bits kept) or invert, in place: ``static_lut``'s values without a table."""
    if code == P.SOLARIZE:
        _solarize(flat, _threshold(a0))
    elif code == P.SOLARIZE_ADD:
        _solarize_add(flat, np.int32(int(a0)), _threshold(a1))
    elif code == P.POSTERIZE:
        bits = int(a0)
        _mask(flat, (~((1 << (8 - bits)) - 1) & 255) if bits < 8 else 255)
    elif code == P.INVERT:
        _invert(flat)
