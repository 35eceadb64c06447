"""Mask kernels: nearest sampling through a record's map, polygon rasterisation, instance maps.

A mask pixel takes the value of the source pixel that contains the point its centre maps to
(the image kernel samples bilinearly around the same point), so a mask never holds a value its
source did not, except ``fill`` where the map leaves the source (semantic: 255 = ignore,
instance: 0). Colour ops have no part in this.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _warp_affine(src, M, fill, out):
    """The common case, no lens and no perspective: source = M (centred output), stepped."""
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    fw, fh = float(w), float(h)
    for oy in range(H):
        Y = oy + 0.5 - H * 0.5
        X0 = 0.5 - W * 0.5
        x = M[0, 0] * X0 + M[0, 1] * Y + M[0, 2]
        y = M[1, 0] * X0 + M[1, 1] * Y + M[1, 2]
        row = out[oy]
        for ox in range(W):
            if x >= 0.0 and y >= 0.0 and x < fw and y < fh:
                row[ox] = src[int(y), int(x)]
            else:
                row[ox] = fill
            x += M[0, 0]
            y += M[1, 0]


@njit(nogil=True, cache=True, error_model="numpy")
def _warp_nearest(src, A1, k, A2, fill, out):
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    cx, cy = W * 0.5, H * 0.5
    inv_r2 = 1.0 / (cx * cx + cy * cy)
    for oy in range(H):
        Y = oy + 0.5 - cy
        for ox in range(W):
            X = ox + 0.5 - cx
            u = A1[0, 0] * X + A1[0, 1] * Y + A1[0, 2]
            v = A1[1, 0] * X + A1[1, 1] * Y + A1[1, 2]
            q = A1[2, 0] * X + A1[2, 1] * Y + A1[2, 2]
            if q != 1.0:
                u /= q
                v /= q
            if k != 0.0:
                s = 1.0 + k * (u * u + v * v) * inv_r2
                u *= s
                v *= s
            x = A2[0, 0] * u + A2[0, 1] * v + A2[0, 2]
            y = A2[1, 0] * u + A2[1, 1] * v + A2[1, 2]
            q = A2[2, 0] * u + A2[2, 1] * v + A2[2, 2]
            if q != 1.0:
                x /= q
                y /= q
            if x >= 0.0 and y >= 0.0 and x < w and y < h:
                out[oy, ox] = src[int(y), int(x)]
            else:
                out[oy, ox] = fill


def warp_nearest(src: np.ndarray, rec, out_hw, fill: int, crop: int = 0) -> np.ndarray:
    """``src`` (h, w) uint8 through the record's map into a new (H, W) uint8 array."""
    from augpipe.targets.forward import source_map

    out = np.empty(tuple(out_hw), np.uint8)
    src = np.ascontiguousarray(src, np.uint8)
    A1, A2, k = np.asarray(rec["A1"], np.float64), source_map(rec, crop), float(rec["k"])
    if k == 0.0 and not A1[2, :2].any() and not A2[2, :2].any() and A1[2, 2] == A2[2, 2] == 1:
        _warp_affine(src, A2 @ A1, np.uint8(fill), out)
    else:
        _warp_nearest(src, A1, k, A2, np.uint8(fill), out)
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _fill_polygon(verts, starts, value, out):
    """Even-odd fill over all rings: pixel (y, x) is inside when its centre is."""
    H, W = out.shape[0], out.shape[1]
    n_rings = len(starts) - 1
    lo, hi = np.inf, -np.inf
    for i in range(verts.shape[0]):
        lo = min(lo, verts[i, 1])
        hi = max(hi, verts[i, 1])
    y0 = max(int(math.ceil(lo - 0.5)), 0)
    y1 = min(int(math.floor(hi - 0.5)) + 1, H)
    xs = np.empty(verts.shape[0] + 1)
    for oy in range(y0, y1):
        yc = oy + 0.5
        n = 0
        for r in range(n_rings):
            a, b = starts[r], starts[r + 1]
            for i in range(a, b):
                j = i + 1 if i + 1 < b else a
                ya, yb = verts[i, 1], verts[j, 1]
                if (ya <= yc < yb) or (yb <= yc < ya):
                    xa, xb = verts[i, 0], verts[j, 0]
                    xs[n] = xa + (yc - ya) * (xb - xa) / (yb - ya)
                    n += 1
        xs[:n].sort()
        for p in range(0, n - 1, 2):
            c0 = max(int(math.ceil(xs[p] - 0.5)), 0)
            c1 = min(int(math.ceil(xs[p + 1] - 0.5)), W)
            for ox in range(c0, c1):
                out[oy, ox] = value


def fill_polygon(rings: list[np.ndarray], out: np.ndarray, value) -> None:
    """Rasterise the union of ``rings`` (each (P, 2) x, y edge coordinates) into ``out``."""
    if not rings:
        return
    verts = np.ascontiguousarray(np.concatenate(rings), np.float64)
    starts = np.cumsum([0] + [len(r) for r in rings]).astype(np.int64)
    _fill_polygon(verts, starts, out.dtype.type(value), out)


def mask_box(mask: np.ndarray) -> np.ndarray:
    """The edge-coordinate box (x0, y0, x1, y1) of a mask's nonzero pixels; zeros when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return np.zeros(4)
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float64)
