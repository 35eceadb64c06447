"""The pixel kernels: pure Numba functions that take parameters and write into a given buffer.

Coordinates: a source *centre* coordinate ``s`` addresses pixel ``floor(s)`` blended with the next
one; pixel ``i``'s centre is at ``i`` (edge coordinate ``i + 0.5``), the OpenCV convention, so
``resize_axis`` with ``a = src/dst`` and ``b = a/2 - 0.5`` reproduces ``cv2.resize``'s sampling.

Channel order: every kernel reads BGR sources (OpenCV's decode) as RGB when ``bgr`` is True (a
lane shuffle inside the gather, no extra pass). Colour: ``rgb' = cmat @ rgb + coff`` per pixel
(``color`` False skips it), then rounding half up and clamping to uint8, written once.

Nothing here compiles at import: ``cache=True`` keeps the machine code on disk for the next
process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe.ops.simd import gather4, gather4x2

_FAST = dict(nogil=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
# What one gathered output pixel costs in contiguous, vectorised element operations (a u8->f32
# conversion or a row blend). ``resize_axis``'s choice of pass order does not depend on it
# (both orders gather once per row they produce: horizontal first wins iff the crop has fewer
# rows than the output); it stays in the cost expression so that the expression reads as costs.
_GATHER_COST = 16


@njit(**_FAST)
def _axis_table(n_out, a, b, n_src, i0, wt):
    # centre coordinate a*o + b, clamped into the source (replicated border, like cv2.resize);
    # pixel i0[o] is blended with i0[o] + 1 (weight wt[o], 0 when the source is 1 pixel wide)
    for o in range(n_out):
        s = min(max(a * o + b, 0.0), n_src - 1.0)
        i = min(int(s), max(n_src - 2, 0))
        i0[o] = i
        wt[o] = np.float32(min(s - i, 1.0))


@njit(nogil=True, cache=True, fastmath=True)
def _clamp(v):
    return np.uint8(min(max(v + np.float32(0.5), np.float32(0.0)), np.float32(255.0)))


@njit(**_FAST)
def _color_row(frow, cmat, coff, orow):
    """orow = clamp(cmat @ rgb + coff) per pixel of the float RGB row ``frow``: a separate,
    contiguous pass vectorises, where the same arithmetic inside a gather loop does not."""
    m00, m01, m02 = cmat[0, 0], cmat[0, 1], cmat[0, 2]
    m10, m11, m12 = cmat[1, 0], cmat[1, 1], cmat[1, 2]
    m20, m21, m22 = cmat[2, 0], cmat[2, 1], cmat[2, 2]
    t0, t1, t2 = coff[0], coff[1], coff[2]
    for o in range(orow.shape[0] // 3):
        r, g, b = frow[3 * o], frow[3 * o + 1], frow[3 * o + 2]
        orow[3 * o] = _clamp(m00 * r + m01 * g + m02 * b + t0)
        orow[3 * o + 1] = _clamp(m10 * r + m11 * g + m12 * b + t1)
        orow[3 * o + 2] = _clamp(m20 * r + m21 * g + m22 * b + t2)


@njit(**_FAST)
def _to_float(row, dst):
    for j in range(row.shape[0]):  # contiguous u8 -> f32: vectorised
        dst[j] = np.float32(row[j])


@njit(**_FAST)
def _lerp_rows(a, b, f, dst):
    for j in range(dst.shape[0]):  # contiguous saxpy (u8 or f32 rows in): vectorised
        x = np.float32(a[j])
        dst[j] = x + f * (np.float32(b[j]) - x)


@njit(**_FAST)
def _round_row(frow, orow):
    # bilinear weights keep values in [0, 255]: rounding half up needs no clamp
    half = np.float32(0.5)
    for j in range(orow.shape[0]):
        orow[j] = np.uint8(frow[j] + half)


@njit(**_FAST)
def _lerp_rows_u8(a, b, f, orow):
    half = np.float32(0.5)
    for j in range(orow.shape[0]):
        x = a[j]
        orow[j] = np.uint8(x + f * (b[j] - x) + half)


@njit(**_FAST)
def weight_table(wt, wt4):
    """wt4[16 g + 3 p + c] = wt[4 g + p] (c = 0..2): the per-lane weights ``gather4`` loads for
    pixels 4 g .. 4 g + 3 (lanes 12..15 of a group, and pixels past ``len(wt)``, get 0)."""
    wt4[:] = 0.0
    for o in range(wt.shape[0]):
        base = 16 * (o // 4) + 3 * (o % 4)
        for c in range(3):
            wt4[base + c] = wt[o]


@njit(**_FAST)
def _hgather(frow, xu, wt4, bgr, dst):
    # four pixels per step, left to right: each step's spare lanes are overwritten by the next
    for o in range(0, xu.shape[0], 4):
        gather4(frow, xu, wt4, o, dst, 3 * o, bgr)


@njit(**_FAST)
def resize_axis(src, bgr, ax, bx, ay, by, cmat, coff, color, out):
    """Axis-aligned map (crop, scale, flip): out[y, x] = src(ay*y + by, ax*x + bx), bilinear.

    Separable, in whichever order costs less: vertical first (each output row blends two
    source rows over the crop's columns, then gathers its pixels) or horizontal first (each
    source row the output needs is converted to float over the crop's columns and resampled
    once, then output rows blend two of them), which wins when the crop has fewer rows than the
    output. Every contiguous pass vectorises; the horizontal gather blends four pixels per step
    (``simd.gather4``) through per-column tables of offsets and weights and, without colour
    ops, rounds into the output row itself. A negative ``ax`` flips (decreasing offsets); the
    BGR swap is a lane shuffle inside the gather.
    """
    H, W = out.shape[0], out.shape[1]
    h, w = src.shape[0], src.shape[1]
    W4 = (W + 3) // 4 * 4  # the gather's steps cover whole groups of 4 pixels
    xi = np.empty(W, np.int64)
    wx = np.empty(W, np.float32)
    yi = np.empty(H, np.int64)
    wy = np.empty(H, np.float32)
    _axis_table(W, ax, bx, w, xi, wx)
    _axis_table(H, ay, by, h, yi, wy)
    cmin = xi.min()
    cmax = min(xi.max() + 1, w - 1)
    n = (cmax - cmin + 1) * 3
    rows = 0  # distinct source rows the output reads (yi is monotonic)
    last = -1
    for oy in range(H):
        y0 = yi[oy]
        y1 = min(y0 + 1, h - 1)
        rows += (y0 > last) + (y1 > y0 and y1 > last)
        last = max(last, y1)
    src2 = src.reshape(h, w * 3)
    out2 = out.reshape(H, W * 3)
    hfirst = rows * (W * _GATHER_COST + n) + H * W * 3 < H * (n + W * _GATHER_COST + W * 3)
    base = cmin * 3
    xu = np.empty(W4, np.uint32)  # unsigned: no negative-index wraparound code in the gather
    for o in range(W):
        xu[o] = xi[o] * 3 - base
    for o in range(W, W4):  # the last group's missing pixels: any valid offset, weight 0
        xu[o] = xu[W - 1]
    wt4 = np.empty(4 * W4, np.float32)
    weight_table(wx, wt4)
    frow = np.empty(W4 * 3 + 16, np.float32)  # + 16: the gather's spare lanes
    # rounding straight into the output row spills up to 16 spare bytes into the next row
    # (written after it); the last row goes through frow
    spill = 3 * W4 + 16 - 3 * W
    if hfirst:
        fsrc = np.zeros(n + 8, np.float32)  # + 8 zeros: the spare lanes and a 1-wide source
        ring = np.empty((2, W4 * 3 + 16), np.float32)
        held = np.full(2, -1, np.int64)  # source row held in each ring slot (slot = parity)
        for oy in range(H):
            y0 = yi[oy]
            y1 = min(y0 + 1, h - 1)
            for y in (y0, y1):
                if held[y & 1] != y:
                    _to_float(src2[y, base : base + n], fsrc)
                    _hgather(fsrc, xu, wt4, bgr, ring[y & 1])
                    held[y & 1] = y
            a = ring[y0 & 1, : W * 3]
            b = ring[y1 & 1, : W * 3]
            if color:
                _lerp_rows(a, b, wy[oy], frow[: W * 3])
                _color_row(frow, cmat, coff, out2[oy])
            else:
                _lerp_rows_u8(a, b, wy[oy], out2[oy])
    else:
        tmp = np.zeros(n + 8, np.float32)  # + 8 zeros: the spare lanes and a 1-wide source
        flat = out.reshape(H * W * 3)
        for oy in range(H):
            y0 = yi[oy]
            r0 = src2[y0, base : base + n]
            r1 = src2[min(y0 + 1, h - 1), base : base + n]
            _lerp_rows(r0, r1, wy[oy], tmp[:n])
            if color:
                _hgather(tmp, xu, wt4, bgr, frow)
                _color_row(frow, cmat, coff, out2[oy])
            elif (H - 1 - oy) * W * 3 >= spill:
                _hgather(tmp, xu, wt4, bgr, flat[oy * W * 3 :])
            else:
                _hgather(tmp, xu, wt4, bgr, frow)
                _round_row(frow, out2[oy])


@njit(**_FAST)
def warp(src, bgr, y0, y1, x0, x1, A1, k, A2, fill, cmat, coff, color, out):
    """General map: output pixel -> A1 -> radial lens (1 + k r^2) -> A2 -> source edge coordinate.

    Coordinates start centred on the output in pixel units; r is normalised by the output's
    half-diagonal. Only the region [y0, y1) x [x0, x1) of ``src`` is read (the caller bounds the
    map with it). It is first copied to float32 inside a border of ``fill`` (1 pixel before, 2
    after), so the per-pixel loop is branch-free: coordinates are clamped into the border, where
    bilinear blending with ``fill`` is exactly cv2.BORDER_CONSTANT. Each output row computes its
    coordinates and weights in one vectorisable loop, then gathers in a second.

    A1 and A2 are full 3x3 maps: when either has a perspective row (not [0, 0, 1]) the rows
    take ``_warp_row_h``, which divides by the homogeneous w; the choice is made once per call,
    so affine maps run the same loop as before. A point with w <= 0 (behind the horizon) samples
    the fill.
    """
    H, W = out.shape[0], out.shape[1]
    h = y1 - y0
    w = x1 - x0
    stride = (w + 3) * 3
    fl = np.float32(fill)
    reg = np.empty((h + 3) * stride + 4, np.float32)  # + 4: the gathers' spare lane
    reg[:stride] = fl
    reg[(h + 1) * stride : (h + 3) * stride] = fl
    reg[(h + 3) * stride :] = 0.0
    src2 = src.reshape(src.shape[0], src.shape[1] * 3)
    for y in range(h):  # contiguous, vectorised; the channel swap happens in the gathers
        row = src2[y0 + y, x0 * 3 : x1 * 3]
        base = (y + 1) * stride
        dst = reg[base + 3 : base + 3 + w * 3]
        for c in range(3):
            reg[base + c] = fl
            reg[base + 3 + w * 3 + c] = fl
            reg[base + 6 + w * 3 + c] = fl
        for j in range(w * 3):
            dst[j] = np.float32(row[j])
    # unsigned offsets: no negative-index wraparound code in the gathers
    ustride = np.uint32(stride)
    cx = W * 0.5
    cy = H * 0.5
    inv_r2 = np.float32(1.0 / (cx * cx + cy * cy))
    kk = np.float32(k)
    one = np.float32(1.0)
    p00, p01, p02 = np.float32(A1[0, 0]), np.float32(A1[0, 1]), np.float32(A1[0, 2])
    p10, p11, p12 = np.float32(A1[1, 0]), np.float32(A1[1, 1]), np.float32(A1[1, 2])
    # source edge coordinate -> padded-buffer centre coordinate: - 0.5 - origin + 1
    q00, q01, q02 = np.float32(A2[0, 0]), np.float32(A2[0, 1]), np.float32(A2[0, 2] + 0.5 - x0)
    q10, q11, q12 = np.float32(A2[1, 0]), np.float32(A2[1, 1]), np.float32(A2[1, 2] + 0.5 - y0)
    W4 = (W + 3) // 4 * 4  # the gathers go 4 pixels per step
    frow = np.empty(W4 * 3 + 16, np.float32)  # + 16: the gathers' spare lanes
    xmax = np.float32(w + 1)
    ymax = np.float32(h + 1)
    zero = np.float32(0.0)
    idx = np.zeros(W4, np.uint32)  # the last group's missing pixels: offset 0, weights 0
    wx = np.zeros(W4, np.float32)
    wy = np.zeros(W4, np.float32)
    out2 = out.reshape(H, W * 3)
    flat = out.reshape(H * W * 3)
    spill = 3 * W4 + 16 - 3 * W  # bytes the last step writes past a row (see resize_axis)
    proj = (A1[2, 0] != 0.0 or A1[2, 1] != 0.0 or A1[2, 2] != 1.0 or A2[2, 0] != 0.0
            or A2[2, 1] != 0.0 or A2[2, 2] != 1.0)  # fmt: skip
    # projective rows: the numerator rows take the same shift, as row + t * (row 2)
    hp = np.empty((3, 3), np.float32)
    hq = np.empty((3, 3), np.float32)
    for c in range(3):
        hp[0, c], hp[1, c], hp[2, c] = A1[0, c], A1[1, c], A1[2, c]
        hq[0, c] = A2[0, c] + (0.5 - x0) * A2[2, c]
        hq[1, c] = A2[1, c] + (0.5 - y0) * A2[2, c]
        hq[2, c] = A2[2, c]
    for oy in range(H):
        Y = np.float32(oy + 0.5 - cy)
        if proj:
            _warp_row_h(hp, kk, inv_r2, hq, Y, cx, W, xmax, ymax, stride, idx, wx, wy)
        else:
            bu = p01 * Y + p02
            bv = p11 * Y + p12
            for ox in range(W):
                X = np.float32(ox + 0.5 - cx)
                u = p00 * X + bu
                v = p10 * X + bv
                s = one + kk * (u * u + v * v) * inv_r2
                u *= s
                v *= s
                sx = min(max(q00 * u + q01 * v + q02, zero), xmax)
                sy = min(max(q10 * u + q11 * v + q12, zero), ymax)
                ix = int(sx)
                iy = int(sy)
                wx[ox] = sx - ix
                wy[ox] = sy - iy
                idx[ox] = iy * stride + ix * 3
        # four pixels per step, left to right: each step's spare lanes are overwritten next
        if not color and (H - 1 - oy) * W * 3 >= spill:
            dst = flat[oy * W * 3 :]
            for ox in range(0, W, 4):
                gather4x2(reg, idx, ustride, wx, wy, ox, dst, 3 * ox, bgr)
            continue
        for ox in range(0, W, 4):
            gather4x2(reg, idx, ustride, wx, wy, ox, frow, 3 * ox, bgr)
        if color:
            _color_row(frow, cmat, coff, out2[oy])
        else:
            _round_row(frow, out2[oy])


@njit(**_FAST)
def _warp_row_h(p, kk, inv_r2, q, Y, cx, W, xmax, ymax, stride, idx, wx, wy):
    """One output row's gather offsets and weights through projective maps (``warp``): each
    stage divides by its w; a point with w <= 0 in either stage is behind the horizon and
    takes the fill (the border's corner, weights 0)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    eps = np.float32(1e-6)
    bu = p[0, 1] * Y + p[0, 2]
    bv = p[1, 1] * Y + p[1, 2]
    bw = p[2, 1] * Y + p[2, 2]
    for ox in range(W):
        X = np.float32(ox + 0.5 - cx)
        w1 = p[2, 0] * X + bw
        ok = w1 > eps
        r1 = one / (w1 if ok else one)
        u = (p[0, 0] * X + bu) * r1
        v = (p[1, 0] * X + bv) * r1
        s = one + kk * (u * u + v * v) * inv_r2
        u *= s
        v *= s
        w2 = q[2, 0] * u + q[2, 1] * v + q[2, 2]
        ok = ok & (w2 > eps)
        r2 = one / (w2 if ok else one)
        sx = min(max((q[0, 0] * u + q[0, 1] * v + q[0, 2]) * r2, zero), xmax)
        sy = min(max((q[1, 0] * u + q[1, 1] * v + q[1, 2]) * r2, zero), ymax)
        if not ok:
            sx = zero
            sy = zero
        ix = int(sx)
        iy = int(sy)
        wx[ox] = sx - ix
        wy[ox] = sy - iy
        idx[ox] = iy * stride + ix * 3


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
    Keeps the channel order. Each block row's source rows are summed first (one contiguous,
    vectorised pass per source row), then each block's fx columns (fx strided passes); the sums
    are exact integers in float32, so the order of the additions does not change the result.
    """
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
        rows = np.float32(max(yb - ya, 0))
        orow = out2[oy]
        for j in range(W * 3):
            c = rows * cols[j]
            if c <= 0:
                c = np.float32(1.0)
            orow[j] = _clamp(hs[j] / c)


@njit(nogil=True, cache=True)
def region_mean(src, bgr, y_start, y_end, x_start, x_end):
    """Per-channel (RGB) mean of a source region, estimated on a grid of at most 32 x 32 pixels."""
    out = np.zeros(3, np.float64)
    y_end = min(y_end, src.shape[0])
    x_end = min(x_end, src.shape[1])
    y_start = max(y_start, 0)
    x_start = max(x_start, 0)
    if y_end <= y_start or x_end <= x_start:
        return out
    sy = max(1, (y_end - y_start) // 32)
    sx = max(1, (x_end - x_start) // 32)
    n = 0
    for y in range(y_start, y_end, sy):
        for x in range(x_start, x_end, sx):
            out[0] += src[y, x, 0]
            out[1] += src[y, x, 1]
            out[2] += src[y, x, 2]
            n += 1
    out /= n
    if bgr:
        t = out[0]
        out[0] = out[2]
        out[2] = t
    return out
