"""The small-filter steps of a sample's program: the 3x3 sharpness filter and the Gaussian blur,
on one sample's HWC uint8 output tile, row by row over contiguous (3 W,) rows so that LLVM
vectorises the inner loops (neighbouring pixels are 3 elements apart in a row).

Both keep their references' arithmetic exactly (``tests/test_ops_pixel.py`` compares them with
the per-pixel loops they replaced and with PIL): sharpness rounds the smoothed value as
floor(s / 13 + 0.5) and blends in float32 with PIL's truncation; the blur runs in float32
between its passes and rounds once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# fastmath off explicitly, not inherited from ``_render`` (see ``tile.py``)
_K = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False, fastmath=False)


@njit(**_K)
def blend_u8(d, x, f):  # PIL's Image.blend(degenerate, image, f): float, clamped, truncated
    v = np.float32(d) + f * (np.float32(x) - np.float32(d))
    return np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


@njit(**_K)
def copy_into(dst, src):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(**_K)
def _sharp_row(prev, cur, nxt, col, res, f):
    """res[j] = blend(smoothed, cur, f) for the interior elements 3 .. n - 4 of a row (stored
    from res[0]); every loop indexes from 0 over offset views, so LLVM can vectorise it (a loop
    from 3 gets Numba's negative-index wraparound, which it cannot)."""
    n = cur.shape[0]
    for j in range(n):  # column sums of the three rows (exact in float32: <= 765)
        col[j] = np.float32(prev[j]) + np.float32(cur[j]) + np.float32(nxt[j])
    m = n - 6
    cl, cc, cr, x = col[0:m], col[3 : 3 + m], col[6 : 6 + m], cur[3 : 3 + m]
    four, half13, d13 = np.float32(4.0), np.float32(6.5), np.float32(13.0)
    for j in range(m):
        s = cl[j] + cc[j] + cr[j] + four * np.float32(x[j])  # the 3x3 sum, centre weight 5
        # floor(s / 13 + 0.5) == floor((s + 6.5) / 13): (2 s + 13) / 26 is never an integer,
        # and float32's error is far below its 1/26 distance from one
        d = np.floor((s + half13) / d13)
        res[j] = blend_u8(d, x[j], f)


@njit(**_K)
def sharpness(tile, f):
    """Blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13; the one-pixel
    border ring keeps the image's own pixels (PIL and torchvision both leave it unfiltered).
    Row y's result is written back after row y + 1 is computed (which reads row y unfiltered)."""
    H, W = tile.shape[0], tile.shape[1]
    if H < 3 or W < 3:
        return
    f = np.float32(f)
    n = 3 * W
    rows = tile.reshape(H, n)
    col = np.empty(n, np.float32)
    res = np.empty((2, n - 6), np.uint8)
    for y in range(1, H - 1):
        _sharp_row(rows[y - 1], rows[y], rows[y + 1], col, res[y & 1], f)
        if y > 1:
            copy_into(rows[y - 1, 3 : n - 3], res[(y - 1) & 1])
    copy_into(rows[H - 2, 3 : n - 3], res[(H - 2) & 1])


@njit(**_K)
def _reflect(i, n):
    if n == 1:
        return 0
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


@njit(**_K)
def blur(tile, sigma, r):
    """Separable Gaussian, torchvision's kernel (exp(-x^2 / 2 sigma^2) over -r..r, normalised),
    reflected border, float between the passes, rounded once."""
    H, W = tile.shape[0], tile.shape[1]
    r = int(r)
    if r < 1 or sigma <= 0:
        return
    n = 2 * r + 1
    k = np.empty(n, np.float32)
    tot = 0.0
    for i in range(n):
        x = (i - r) / sigma
        k[i] = math.exp(-0.5 * x * x)
        tot += k[i]
    for i in range(n):
        k[i] = k[i] / tot
    rows = tile.reshape(H, W * 3)
    tmp = np.empty((H, W * 3), np.float32)
    pad = np.empty((W + 2 * r) * 3, np.float32)
    for y in range(H):  # horizontal: a reflected, padded float row, then contiguous taps
        row = rows[y]
        for x in range(W + 2 * r):
            src = _reflect(x - r, W)
            for c in range(3):
                pad[3 * x + c] = row[3 * src + c]
        acc = tmp[y]
        acc[:] = 0.0
        for i in range(n):
            ki = k[i]
            for j in range(W * 3):
                acc[j] += ki * pad[j + 3 * i]
    acc = np.empty(W * 3, np.float32)
    half = np.float32(0.5)
    for y in range(H):  # vertical: contiguous rows
        acc[:] = 0.0
        for i in range(n):
            ki = k[i]
            src = tmp[_reflect(y + i - r, H)]
            for j in range(W * 3):
                acc[j] += ki * src[j]
        out = rows[y]
        for j in range(W * 3):
            out[j] = np.uint8(min(max(acc[j] + half, np.float32(0.0)), np.float32(255.0)))
