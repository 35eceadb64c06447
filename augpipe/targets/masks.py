"""Mask kernels: nearest sampling through a record's map, polygon rasterisation, instance maps.

A mask pixel takes the value of the source pixel that contains the point its centre maps to
(the image kernel samples bilinearly around the same point), so a mask never holds a value its
source did not, except ``fill`` where the map leaves the source (semantic: 255 = ignore,
instance: 0). Colour ops have no part in this.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import njit

_FAST = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)


@njit(**_FAST)
def _sample_row(pad, idx, row):
    for ox in range(row.shape[0]):
        row[ox] = pad[idx[ox]]


@njit(**_FAST)
def _warp_affine(pad, stride, wmax, hmax, M, out):
    """out = pad at the map's point, M: centred output -> padded-buffer edge coordinate
    (``pad`` has a border of fill one pixel wide: a clamped coordinate lands on it)."""
    H, W = out.shape[0], out.shape[1]
    idx = np.empty(W, np.int32)
    m00, m01, m02, m10, m11, m12 = M[0, 0], M[0, 1], M[0, 2], M[1, 0], M[1, 1], M[1, 2]
    for oy in range(H):
        Y = oy + 0.5 - H * 0.5
        bx = m01 * Y + m02
        by = m11 * Y + m12
        for ox in range(W):  # vectorised: coordinates and offsets for the whole row
            X = ox + 0.5 - W * 0.5
            sx = m00 * X + bx
            sy = m10 * X + by
            sx = min(max(sx, 0.0), wmax)
            sy = min(max(sy, 0.0), hmax)
            idx[ox] = np.int32(sy) * stride + np.int32(sx)
        _sample_row(pad, idx, out[oy])


@njit(**_FAST)
def _warp_general(pad, stride, wmax, hmax, x0, y0, A1, k, A2, out):
    """Any map: A1 (homogeneous), the radial lens, A2 (homogeneous) to a source edge
    coordinate, shifted into the padded buffer by (1 - x0, 1 - y0). A point the map cannot
    place (behind a perspective horizon, w <= 0 in either stage, or NaN) takes the fill."""
    H, W = out.shape[0], out.shape[1]
    cx, cy = W * 0.5, H * 0.5
    inv_r2 = 1.0 / (cx * cx + cy * cy)
    idx = np.empty(W, np.int32)
    for oy in range(H):
        Y = oy + 0.5 - cy
        for ox in range(W):
            X = ox + 0.5 - cx
            u = A1[0, 0] * X + A1[0, 1] * Y + A1[0, 2]
            v = A1[1, 0] * X + A1[1, 1] * Y + A1[1, 2]
            q = A1[2, 0] * X + A1[2, 1] * Y + A1[2, 2]
            ok = q > 0.0  # as the image kernel (ops.fused._map_point): w <= 0 takes the fill
            if q != 1.0 and ok:
                u /= q
                v /= q
            if k != 0.0:
                s = 1.0 + k * (u * u + v * v) * inv_r2
                u *= s
                v *= s
            x = A2[0, 0] * u + A2[0, 1] * v + A2[0, 2]
            y = A2[1, 0] * u + A2[1, 1] * v + A2[1, 2]
            q = A2[2, 0] * u + A2[2, 1] * v + A2[2, 2]
            ok = ok and q > 0.0
            if q != 1.0 and ok:
                x /= q
                y /= q
            x += 1.0 - x0
            y += 1.0 - y0
            ok = ok and x == x and y == y  # NaN: fill
            x = min(max(x, 0.0), wmax) if ok else 0.0
            y = min(max(y, 0.0), hmax) if ok else 0.0
            idx[ox] = np.int32(y) * stride + np.int32(x)
        _sample_row(pad, idx, out[oy])


@njit(**_FAST)
def _pad_dense(src, y0, y1, x0, x1, fill, pad):
    pad[0] = fill
    pad[pad.shape[0] - 1] = fill
    for y in range(y0, y1):
        row = pad[y - y0 + 1]
        row[0] = fill
        row[row.shape[0] - 1] = fill
        s = src[y]
        for x in range(x0, x1):
            row[x - x0 + 1] = s[x]


@njit(**_FAST)
def _pad_border(pad, fill):
    pad[0] = fill
    pad[pad.shape[0] - 1] = fill
    for y in range(1, pad.shape[0] - 1):
        pad[y, 0] = fill
        pad[y, pad.shape[1] - 1] = fill


_local = threading.local()


def _scratch(shape) -> np.ndarray:
    """A per-thread grow-only buffer viewed as ``shape`` uint8 (a fresh large array costs its
    page faults on every call)."""
    n = shape[0] * shape[1]
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _local.buf = np.empty(max(n, 1 << 18), np.uint8)
    return buf[:n].reshape(shape)


def _source_box(M: np.ndarray, out_hw, hw) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the source pixels an affine map's output can sample (its corners
    bound it), one pixel wider each side for rounding, inside the source."""
    H, W = out_hw
    X = np.array([-W / 2, W / 2, W / 2, -W / 2])
    Y = np.array([-H / 2, -H / 2, H / 2, H / 2])
    xs = M[0, 0] * X + M[0, 1] * Y + M[0, 2]
    ys = M[1, 0] * X + M[1, 1] * Y + M[1, 2]
    h, w = hw
    box = (np.clip(np.floor(ys.min()) - 1, 0, h), np.clip(np.ceil(ys.max()) + 1, 0, h),
           np.clip(np.floor(xs.min()) - 1, 0, w), np.clip(np.ceil(xs.max()) + 1, 0, w))  # fmt: skip
    y0, y1, x0, x1 = (int(v) for v in box)
    if y1 <= y0 or x1 <= x0:  # the map misses the source: the border alone (all fill)
        return 0, 0, 0, 0
    return y0, y1, x0, x1


def _window(rec, out_hw, hw, crop: int = 0):
    """(A1, A2, k, affine, (y0, y1, x0, x1)): the record's map and the source window its
    output can read (an affine map's corners bound it; any other map: the whole source)."""
    from augpipe.targets.forward import source_map

    A1, A2, k = np.asarray(rec["A1"], np.float64), source_map(rec, crop), float(rec["k"])
    affine = k == 0.0 and not A1[2, :2].any() and not A2[2, :2].any()
    affine = affine and A1[2, 2] == A2[2, 2] == 1.0
    box = _source_box(A2 @ A1, out_hw, hw) if affine else (0, hw[0], 0, hw[1])
    return A1, A2, k, affine, box


def _fill_pad(src, box, fill, pad) -> None:
    """``pad`` (y1 - y0 + 2, x1 - x0 + 2) = ``src``'s window ``box`` inside a border of
    ``fill``; ``src`` an (h, w) uint8 array or row runs (expanded only inside the window)."""
    from augpipe.targets.maskcode import RowRuns, expand_rows

    y0, y1, x0, x1 = box
    fill = np.uint8(fill)
    if isinstance(src, RowRuns):
        _pad_border(pad, fill)
        if y1 > y0:
            expand_rows(src.row_start, src.lengths, src.values, y0, y1, x0, x1, pad[1:], 1)
    else:
        _pad_dense(np.ascontiguousarray(src, np.uint8), y0, y1, x0, x1, fill, pad)


def warp_nearest(src, rec, out_hw, fill: int, crop: int = 0, out=None) -> np.ndarray:
    """``src`` through the record's map into ``out`` (a new (H, W) uint8 array by default), in
    a pass of its own (the loader samples masks in the image's pass: ``mask_window``).

    ``src``: an (h, w) uint8 array, or the stored row runs (``augpipe.targets.maskcode``),
    expanded only where the map reads. Output pixel centres sample the source pixel that
    contains their point; points outside it take ``fill``."""
    H, W = (int(v) for v in out_hw)
    if out is None:
        out = np.empty((H, W), np.uint8)
    A1, A2, k, affine, box = _window(rec, (H, W), src.shape, crop)
    y0, y1, x0, x1 = box
    pad = _scratch((y1 - y0 + 2, x1 - x0 + 2))
    _fill_pad(src, box, fill, pad)
    stride, wmax, hmax = pad.shape[1], pad.shape[1] - 1.0, pad.shape[0] - 1.0
    flat = pad.reshape(-1)
    if affine:
        M = A2 @ A1
        M[0, 2] += 1.0 - x0
        M[1, 2] += 1.0 - y0
        _warp_affine(flat, stride, wmax, hmax, M, out)
    else:
        _warp_general(flat, stride, wmax, hmax, float(x0), float(y0), A1, k, A2, out)
    return out


def mask_window(planes, rec, out_hw, crop: int = 0):
    """(pad, y0, x0): the masks ``planes`` (a list of (src, fill), each src an (h, w) uint8
    array or row runs, all one size) in the window of the source that the record's map reads,
    as ``pad`` (C, y1 - y0 + 2, x1 - x0 + 2) uint8 with a border of each plane's fill one pixel
    wide: what ``augpipe.ops.fused.render_item(..., mask=(pad, y0, x0, mout))`` samples into
    ``mout`` in the image's pass (a per-thread buffer, valid until the next call)."""
    hw = planes[0][0].shape
    y0, y1, x0, x1 = box = _window(rec, out_hw, hw, crop)[4]
    ph, pw = y1 - y0 + 2, x1 - x0 + 2
    pad = _scratch((len(planes) * ph, pw)).reshape(len(planes), ph, pw)
    for c, (src, fill) in enumerate(planes):
        _fill_pad(src, box, fill, pad[c])
    return pad, y0, x0


def instance_planes(t, masks: bool) -> list[int]:
    """The instances whose RLE masks are warped: all that have one with ``masks``, otherwise
    those without a polygon (their box comes from the warped mask)."""
    has_poly = t.has_polygon()
    return [j for j in range(len(t)) if t.rle[j] is not None and (masks or not has_poly[j])]


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
