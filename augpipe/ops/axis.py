"""The separable kernel (``resize_axis``: crop, scale, flip) and the box prefilter (``box_reduce``).

Both compute in integers (``augpipe.ops.fixed``, ``augpipe.ops.fixed_gather``): Q7 values and
Q15 weights for the bilinear passes, exact int16 sums for the box means. ``augpipe.ops.kernels``
(where the warp kernel lives) re-exports both; its docstring states the coordinate and channel
conventions.

Nothing here compiles at import: ``cache=True`` keeps the machine code on disk for the next
process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe.ops import fixed, fixed_gather

_FAST = dict(nogil=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
# What one gathered output pixel costs in contiguous, vectorised element operations (a u8->f32
# conversion or a row blend). ``resize_axis``'s choice of pass order does not depend on it
# (both orders gather once per row they produce: horizontal first wins iff the crop has fewer
# rows than the output); it stays in the cost expression so that the expression reads as costs.
_GATHER_COST = 16


@njit(nogil=True, cache=True, fastmath=True)
def _clamp(v):
    return np.uint8(min(max(v + np.float32(0.5), np.float32(0.0)), np.float32(255.0)))


@njit(**_FAST)
def _color_row_q7(qrow, cmat, coff, oflat, k0, m):
    """``_color_row`` of a Q7 row (``augpipe.ops.fixed``) into oflat[k0 : k0 + m]; the 1/128
    folds into the matrix."""
    s = np.float32(1.0 / 128.0)
    m00, m01, m02 = cmat[0, 0] * s, cmat[0, 1] * s, cmat[0, 2] * s
    m10, m11, m12 = cmat[1, 0] * s, cmat[1, 1] * s, cmat[1, 2] * s
    m20, m21, m22 = cmat[2, 0] * s, cmat[2, 1] * s, cmat[2, 2] * s
    t0, t1, t2 = coff[0], coff[1], coff[2]
    for o in range(m // 3):
        r = np.float32(qrow[3 * o])
        g = np.float32(qrow[3 * o + 1])
        b = np.float32(qrow[3 * o + 2])
        oflat[k0 + 3 * o] = _clamp(m00 * r + m01 * g + m02 * b + t0)
        oflat[k0 + 3 * o + 1] = _clamp(m10 * r + m11 * g + m12 * b + t1)
        oflat[k0 + 3 * o + 2] = _clamp(m20 * r + m21 * g + m22 * b + t2)


@njit(**_FAST)
def _q15_table(n_out, a, b, n_src, idx, wq):
    # centre coordinate a*o + b, clamped into the source (replicated border, like cv2.resize);
    # pixel idx[o] is blended with idx[o] + 1 by the Q15 weight wq[o] (0 when the source is 1
    # pixel wide); a weight that rounds to 1.0 takes the next pixel at weight 0 instead
    for o in range(n_out):
        s = min(max(a * o + b, 0.0), n_src - 1.0)
        i = min(int(s), max(n_src - 2, 0))
        q = int(np.float32(min(s - i, 1.0)) * np.float32(32768.0) + np.float32(0.5))
        if q >= 32768:
            i += 1
            q = 0
        idx[o] = i
        wq[o] = q


@njit(**_FAST)
def resize_axis(src, bgr, ax, bx, ay, by, cmat, coff, color, out):
    """Axis-aligned map (crop, scale, flip): out[y, x] = src(ay*y + by, ax*x + bx), bilinear.

    Separable, in fixed point (``augpipe.ops.fixed``: Q7 values, Q15 weights, 32 int16 lanes
    per step), in whichever order costs less: vertical first (each output row blends two
    source rows over the crop's columns, then gathers its pixels) or horizontal first (each
    source row the output needs is resampled once, then output rows blend two of them), which
    wins when the crop has fewer rows than the output. The horizontal pass goes eight pixels
    per step through per-column tables (offsets, weights; with AVX-512 two lane permutes per
    step) and, without colour ops, rounds into the output row itself. A negative ``ax`` flips
    (decreasing offsets); the BGR swap is a lane order in the same tables. The per-row loops
    call no function that takes an array (each such call costs reference counting).
    """
    H, W = out.shape[0], out.shape[1]
    h, w = src.shape[0], src.shape[1]
    W8 = (W + 7) // 8 * 8  # the gather's steps cover whole groups of 8 pixels
    xu = np.empty(W8, np.uint32)  # unsigned: no negative-index wraparound code in the gather
    wq = np.zeros(W8, np.int16)  # the last group's missing pixels: any valid offset, weight 0
    yi = np.empty(H, np.int64)
    wy = np.empty(H, np.int16)
    _q15_table(W, ax, bx, w, xu, wq)
    _q15_table(H, ay, by, h, yi, wy)
    cmin = w
    cmax = 0
    for o in range(W):
        cmin = min(cmin, xu[o])
        cmax = max(cmax, xu[o])
    cmax = min(cmax + 1, w - 1)
    n = (cmax - cmin + 1) * 3
    rows = 0  # distinct source rows the output reads (yi is monotonic)
    last = -1
    for oy in range(H):
        y0 = yi[oy]
        y1 = min(y0 + 1, h - 1)
        rows += (y0 > last) + (y1 > y0 and y1 > last)
        last = max(last, y1)
    m = W * 3
    hfirst = rows * (W * _GATHER_COST + n) + H * m < H * (n + W * _GATHER_COST + m)
    base = cmin * 3
    for o in range(W):
        xu[o] = xu[o] * 3 - base
    for o in range(W, W8):
        xu[o] = xu[W - 1]
    base8 = np.zeros(W8 // 8, np.uint32)
    perm = np.zeros(4 * W8, np.int16)
    use_perm = fixed_gather.permute_ok() and fixed_gather.permute_tables(xu, bgr, base8, perm)
    # source rows: 32-lane steps over nv >= 32 lanes, the last one moved back to end at nv (a
    # few lanes computed twice) so that no read passes a row; a crop narrower than 32 lanes is
    # first copied into rows of 32
    flat = src.reshape(h * w * 3)
    rs = w * 3
    if n < 32:
        flat = np.zeros(h * 32, np.uint8)
        for y in range(h):
            for j in range(n):
                flat[32 * y + j] = src[y, cmin + j // 3, j % 3]
        rs = 32
        base = 0
    nv = max(n, 32)
    oflat = out.reshape(H * m)
    qrow = np.zeros(W8 * 3 + 32 if color else 1, np.int16)  # a Q7 row for the colour ops
    orow = np.zeros(W8 * 3 + 32, np.uint8)  # an output row the gather would spill from
    # rounding straight into the output row spills up to 8 spare bytes into the next row
    # (written after it); the last row goes through orow
    spill = 3 * W8 + 8 - m
    tmp = np.zeros(nv + 96, np.int16)  # + 96 zeros: the gathers' reads past the crop
    if hfirst:
        slot = W8 * 3 + 64
        ring = np.zeros(2 * slot, np.int16)
        held0 = held1 = -1  # source row held in each ring slot (slot = parity)
        for oy in range(H):
            y0 = yi[oy]
            y1 = min(y0 + 1, h - 1)
            for t in range(2):
                y = y1 if t else y0
                if (held1 if y & 1 else held0) != y:
                    fixed.row_q7(flat, y * rs + base, nv, tmp)
                    if use_perm:
                        fixed_gather.permute_row(tmp, base8, perm, wq, ring, (y & 1) * slot)
                    else:
                        fixed_gather.gather_row(tmp, xu, wq, bgr, ring, (y & 1) * slot)
                    if y & 1:
                        held1 = y
                    else:
                        held0 = y
            a = (y0 & 1) * slot
            b = (y1 & 1) * slot
            f = wy[oy]
            if color:
                fixed.rows_q7(ring, a, ring, b, max(m, 32), f, qrow, 0)
                _color_row_q7(qrow, cmat, coff, oflat, oy * m, m)
            elif m >= 32:
                fixed.rows_q7(ring, a, ring, b, m, f, oflat, oy * m)
            else:
                fixed.rows_q7(ring, a, ring, b, 32, f, orow, 0)
                for j in range(m):
                    oflat[oy * m + j] = orow[j]
    else:
        for oy in range(H):
            i = yi[oy] * rs + base
            j = min(yi[oy] + 1, h - 1) * rs + base
            fixed.rows_u8(flat, i, flat, j, nv, wy[oy], tmp)
            if color:
                if use_perm:
                    fixed_gather.permute_row(tmp, base8, perm, wq, qrow, 0)
                else:
                    fixed_gather.gather_row(tmp, xu, wq, bgr, qrow, 0)
                _color_row_q7(qrow, cmat, coff, oflat, oy * m, m)
            elif (H - 1 - oy) * m >= spill:
                if use_perm:
                    fixed_gather.permute_row(tmp, base8, perm, wq, oflat, oy * m)
                else:
                    fixed_gather.gather_row(tmp, xu, wq, bgr, oflat, oy * m)
            else:
                if use_perm:
                    fixed_gather.permute_row(tmp, base8, perm, wq, orow, 0)
                else:
                    fixed_gather.gather_row(tmp, xu, wq, bgr, orow, 0)
                for j in range(m):
                    oflat[oy * m + j] = orow[j]


@njit(**_FAST)
def _add_row(row, acc):
    for j in range(acc.shape[0]):  # contiguous u8 -> f32 accumulate: vectorised
        acc[j] += row[j]


@njit(**_FAST)
def _block_sums(acc, fx, hs):
    # hs[3 o + c] = sum over k < fx of acc[3 (o fx + k) + c]: fx strided passes
    hs[:] = 0.0
    n = hs.shape[0] // 3
    for k in range(fx):
        for o in range(n):
            j = 3 * (o * fx + k)
            hs[3 * o] += acc[j]
            hs[3 * o + 1] += acc[j + 1]
            hs[3 * o + 2] += acc[j + 2]


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def box_reduce(src, y_start, x_start, fy, fx, out):
    """Average fy x fx blocks of src starting at (y_start, x_start) into out (anti-aliasing).

    Blocks cut by the image border average the pixels they have (like cv2.INTER_AREA).
    Keeps the channel order. Exact integer sums in int16 lanes (blocks of up to 128 pixels;
    larger ones take float32 sums, the same result): each block row's source rows are added
    in 32-lane steps, then the fx columns of each block by fx - 1 shifted row adds, and the
    block sums are picked out by the horizontal pass's gather at weight 0. The mean rounds
    half up, floor((2 s + c) / (2 c)) computed as (2 s + c) * (1 / (2 c)) + 10^-3 in float32:
    exact, since a non-integer quotient lies at least 1 / (2 c) >= 1/256 below the next
    integer and the float32 error is < 10^-4.
    """
    if fx * fy > 128:
        _box_reduce_float(src, y_start, x_start, fy, fx, out)
        return
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    x_end = max(min(x_start + W * fx, w), x_start)
    n = (x_end - x_start) * 3
    m = W * 3
    W8 = (W + 7) // 8 * 8
    flat = src.reshape(h * w * 3)
    oflat = out.reshape(H * m)
    n32 = (n + 31) // 32 * 32
    # the blocks' columns, then zeros (columns past the border) and the steps' spare lanes
    span = W * fx * 3 + 3 * fx + 96
    acc = np.zeros(span, np.int16)
    v = np.zeros(span, np.int16)
    pad = np.zeros(n32 + 32, np.uint8)  # a last source row the 32-lane steps would read past
    hs = np.zeros(3 * W8 + 32, np.int16)
    cols = np.empty(m, np.int64)  # pixels per block in a row, per output channel
    for ox in range(W):
        xa = x_start + ox * fx
        k = max(min(xa + fx, w) - xa, 0)
        for ch in range(3):
            cols[3 * ox + ch] = k
    cnt = np.empty(m, np.float32)  # pixels per block for the rows at hand, and 1 / (2 cnt)
    inv = np.empty(m, np.float32)
    held = -1
    idx = np.empty(W8, np.uint32)  # block o's first column; the last group's spares: any
    for o in range(W8):
        idx[o] = 3 * fx * min(o, W - 1)
    wq = np.zeros(W8, np.int16)  # weight 0: the gather picks the block sums out exactly
    base8 = np.zeros(W8 // 8, np.uint32)
    perm = np.zeros(4 * W8, np.int16)
    use_perm = fixed_gather.permute_ok() and fixed_gather.permute_tables(idx, False, base8, perm)
    end = h * w * 3
    eps = np.float32(1e-3)
    for oy in range(H):
        ya = y_start + oy * fy
        yb = min(ya + fy, h)
        for j in range(n32):
            acc[j] = 0
        for y in range(ya, yb):
            o = (y * w + x_start) * 3
            if o + n32 <= end:
                fixed.add_u8(flat, o, n, acc)
            else:
                for j in range(n):
                    pad[j] = flat[o + j]
                fixed.add_u8(pad, 0, n, acc)
        for j in range(n, n32 + 3 * fx + 64):  # the steps' lanes past the crop: zeros again
            acc[j] = 0
        for j in range(n32):
            v[j] = acc[j]
        for k in range(1, fx):
            fixed.add_q(acc, 3 * k, n, v)
        if use_perm:
            fixed_gather.permute_row(v, base8, perm, wq, hs, 0)
        else:
            fixed_gather.gather_row(v, idx, wq, False, hs, 0)
        rows = max(yb - ya, 0)
        if rows != held:
            for j in range(m):
                c = max(rows * cols[j], 1)
                cnt[j] = c
                inv[j] = np.float32(0.5 / c)
            held = rows
        for j in range(m):
            oflat[oy * m + j] = np.uint8((np.float32(2 * hs[j]) + cnt[j]) * inv[j] + eps)


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def _box_reduce_float(src, y_start, x_start, fy, fx, out):
    # box_reduce for blocks of more than 128 pixels (sums past int16): float32 sums, integer means
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    x_end = max(min(x_start + W * fx, w), x_start)
    n = (x_end - x_start) * 3
    src2 = src.reshape(h, w * 3)
    acc = np.zeros(W * fx * 3, np.float32)  # beyond n: zeros (columns past the border)
    hs = np.empty(W * 3, np.float32)
    cols = np.empty(W * 3, np.float32)  # pixels per block in a row, per output channel
    for ox in range(W):
        xa = x_start + ox * fx
        k = max(min(xa + fx, w) - xa, 0)
        for ch in range(3):
            cols[3 * ox + ch] = k
    out2 = out.reshape(H, W * 3)
    for oy in range(H):
        ya = y_start + oy * fy
        yb = min(ya + fy, h)
        acc[:n] = 0.0
        for y in range(ya, yb):
            _add_row(src2[y, x_start * 3 : x_start * 3 + n], acc[:n])
        _block_sums(acc, fx, hs)
        rows = max(yb - ya, 0)
        orow = out2[oy]
        for j in range(W * 3):
            # the exact mean rounded half up, in integers (the sums are exact in float32): a
            # float32 division + 0.5 rounded some exact halves down in one of our compiles
            c = max(rows * int(cols[j]), 1)
            orow[j] = (2 * int(hs[j]) + c) // (2 * c)
