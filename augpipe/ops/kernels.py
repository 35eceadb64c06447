"""The pixel kernels: pure Numba functions that take parameters and write into a given buffer.

Coordinates: a source *centre* coordinate ``s`` addresses pixel ``floor(s)`` blended with the next
one; pixel ``i``'s centre is at ``i`` (edge coordinate ``i + 0.5``), the OpenCV convention, so
``resize_axis`` with ``a = src/dst`` and ``b = a/2 - 0.5`` reproduces ``cv2.resize``'s sampling.

Channel order: every kernel reads BGR sources (OpenCV's decode) as RGB when ``bgr`` is True, so
the swap costs nothing. Colour: ``rgb' = cmat @ rgb + coff`` per pixel (``color`` False skips it),
then rounding half up and clamping to uint8, written once.

Nothing here compiles at import: ``cache=True`` keeps the machine code on disk for the next
process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FAST = dict(nogil=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
# A gathered pixel (3 scalar blends through an index table) costs about as much as this many
# contiguous, vectorised element blends (measured on AVX2/AVX-512 machines): ``resize_axis``
# uses it to pick its pass order per sample.
_GATHER_COST = 24


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
def _hblend(row, xu, wx, c0, c2, dst):
    """dst[3o + c] = row's pixels xu[o]/3 and the next blended by wx[o], channels read c0, 1, c2.

    ``xu`` holds unsigned byte offsets: an unsigned index needs no negative-index wraparound
    code, which otherwise costs more than the blend itself in this gather loop.
    """
    one = np.float32(1.0)
    u1, u3, u4 = np.uint32(1), np.uint32(3), np.uint32(4)
    for o in range(xu.shape[0]):
        i = xu[o]
        f = wx[o]
        g = one - f
        dst[3 * o] = np.float32(row[i + c0]) * g + np.float32(row[i + u3 + c0]) * f
        dst[3 * o + 1] = np.float32(row[i + u1]) * g + np.float32(row[i + u4]) * f
        dst[3 * o + 2] = np.float32(row[i + c2]) * g + np.float32(row[i + u3 + c2]) * f


@njit(**_FAST)
def _vfirst(src2, yi, wy, xu, wx, cmin, n, c0, c2, cmat, coff, color, out2):
    # per output row: blend its two source rows over the crop's columns (contiguous,
    # vectorised), then gather the output pixels from that float row
    h = src2.shape[0]
    tmp = np.zeros(n + 3, np.float32)  # +1 pixel of zeros: the weight-0 partner of a 1-wide source
    one = np.float32(1.0)
    half = np.float32(0.5)
    u1, u3, u4 = np.uint32(1), np.uint32(3), np.uint32(4)
    frow = np.empty(out2.shape[1], np.float32)
    b0 = cmin * 3
    for oy in range(out2.shape[0]):
        r0 = src2[yi[oy], b0 : b0 + n]
        r1 = src2[min(yi[oy] + 1, h - 1), b0 : b0 + n]
        f = wy[oy]
        g = one - f
        for j in range(n):
            tmp[j] = g * np.float32(r0[j]) + f * np.float32(r1[j])
        orow = out2[oy]
        if color:
            _hblend(tmp, xu, wx, c0, c2, frow)
            _color_row(frow, cmat, coff, orow)
            continue
        for o in range(xu.shape[0]):
            i = xu[o]
            fx = wx[o]
            gx = one - fx
            # bilinear weights keep values in [0, 255]: no clamp needed
            orow[3 * o] = np.uint8(tmp[i + c0] * gx + tmp[i + u3 + c0] * fx + half)
            orow[3 * o + 1] = np.uint8(tmp[i + u1] * gx + tmp[i + u4] * fx + half)
            orow[3 * o + 2] = np.uint8(tmp[i + c2] * gx + tmp[i + u3 + c2] * fx + half)


@njit(**_FAST)
def _hfirst(src2, yi, wy, xu, wx, c0, c2, cmat, coff, color, out2):
    # each needed source row is blended horizontally once, into a 2-row ring (slot = row
    # parity); each output row then blends its two ring rows (contiguous, vectorised)
    h = src2.shape[0]
    W3 = out2.shape[1]
    ring = np.empty((2, W3), np.float32)
    held = np.full(2, -1, np.int64)
    one = np.float32(1.0)
    half = np.float32(0.5)
    frow = np.empty(W3, np.float32)
    for oy in range(out2.shape[0]):
        y0 = yi[oy]
        y1 = min(y0 + 1, h - 1)
        if held[y0 & 1] != y0:
            _hblend(src2[y0], xu, wx, c0, c2, ring[y0 & 1])
            held[y0 & 1] = y0
        if held[y1 & 1] != y1:
            _hblend(src2[y1], xu, wx, c0, c2, ring[y1 & 1])
            held[y1 & 1] = y1
        a = ring[y0 & 1]
        b = ring[y1 & 1]
        f = wy[oy]
        g = one - f
        orow = out2[oy]
        if color:
            for j in range(W3):
                frow[j] = a[j] * g + b[j] * f
            _color_row(frow, cmat, coff, orow)
        else:
            for j in range(W3):
                orow[j] = np.uint8(a[j] * g + b[j] * f + half)


@njit(**_FAST)
def resize_axis(src, bgr, ax, bx, ay, by, cmat, coff, color, out):
    """Axis-aligned map (crop, scale, flip): out[y, x] = src(ay*y + by, ax*x + bx), bilinear.

    Separable, in whichever order gathers fewer pixels: vertical first (each output row blends
    two source rows over the crop's columns, then gathers) or horizontal first (each source row
    the output needs is resampled once, then output rows blend two of them), which wins when
    the crop has fewer rows than the output. The gathers go through per-column tables of
    unsigned offsets and weights; a negative ``ax`` flips (decreasing offsets), and the BGR
    swap is folded into the channel offsets. Without colour, bilinear weights keep values in
    [0, 255], so the write needs no clamp.
    """
    H, W = out.shape[0], out.shape[1]
    h, w = src.shape[0], src.shape[1]
    xi = np.empty(W, np.int64)
    wx = np.empty(W, np.float32)
    yi = np.empty(H, np.int64)
    wy = np.empty(H, np.float32)
    _axis_table(W, ax, bx, w, xi, wx)
    _axis_table(H, ay, by, h, yi, wy)
    cmin = xi.min()
    cmax = min(xi.max() + 1, w - 1)
    n = (cmax - cmin + 1) * 3
    seen = np.zeros(h, np.bool_)
    for oy in range(H):
        seen[yi[oy]] = True
        seen[min(yi[oy] + 1, h - 1)] = True
    rows = seen.sum()  # source rows the output reads
    src2 = src.reshape(h, w * 3)
    out2 = out.reshape(H, W * 3)
    c0 = np.uint32(2 if bgr else 0)
    c2 = np.uint32(0 if bgr else 2)
    xu = np.empty(W, np.uint32)
    hfirst = w > 1 and (rows * W * _GATHER_COST + H * W * 3 < H * W * _GATHER_COST + H * n)
    for o in range(W):
        xu[o] = xi[o] * 3 if hfirst else (xi[o] - cmin) * 3
    if hfirst:
        _hfirst(src2, yi, wy, xu, wx, c0, c2, cmat, coff, color, out2)
    else:
        _vfirst(src2, yi, wy, xu, wx, cmin, n, c0, c2, cmat, coff, color, out2)


@njit(**_FAST)
def warp(src, bgr, y0, y1, x0, x1, A1, k, A2, fill, cmat, coff, color, out):
    """General map: output pixel -> A1 -> radial lens (1 + k r^2) -> A2 -> source edge coordinate.

    Coordinates start centred on the output in pixel units; r is normalised by the output's
    half-diagonal. Only the region [y0, y1) x [x0, x1) of ``src`` is read (the caller bounds the
    map with it). It is first copied to float32 inside a border of ``fill`` (1 pixel before, 2
    after), so the per-pixel loop is branch-free: coordinates are clamped into the border, where
    bilinear blending with ``fill`` is exactly cv2.BORDER_CONSTANT. Each output row computes its
    coordinates and weights in one vectorisable loop, then gathers in a second.
    """
    H, W = out.shape[0], out.shape[1]
    h = y1 - y0
    w = x1 - x0
    stride = (w + 3) * 3
    fl = np.float32(fill)
    reg = np.empty((h + 3) * stride, np.float32)
    reg[:stride] = fl
    reg[(h + 1) * stride :] = fl
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
    c0 = np.uint32(2 if bgr else 0)
    c2 = np.uint32(0 if bgr else 2)
    u1, u3, u4 = np.uint32(1), np.uint32(3), np.uint32(4)
    ustride = np.uint32(stride)
    cx = W * 0.5
    cy = H * 0.5
    inv_r2 = np.float32(1.0 / (cx * cx + cy * cy))
    kk = np.float32(k)
    one = np.float32(1.0)
    half = np.float32(0.5)
    p00, p01, p02 = np.float32(A1[0, 0]), np.float32(A1[0, 1]), np.float32(A1[0, 2])
    p10, p11, p12 = np.float32(A1[1, 0]), np.float32(A1[1, 1]), np.float32(A1[1, 2])
    # source edge coordinate -> padded-buffer centre coordinate: - 0.5 - origin + 1
    q00, q01, q02 = np.float32(A2[0, 0]), np.float32(A2[0, 1]), np.float32(A2[0, 2] + 0.5 - x0)
    q10, q11, q12 = np.float32(A2[1, 0]), np.float32(A2[1, 1]), np.float32(A2[1, 2] + 0.5 - y0)
    frow = np.empty(W * 3, np.float32)
    xmax = np.float32(w + 1)
    ymax = np.float32(h + 1)
    zero = np.float32(0.0)
    idx = np.empty(W, np.uint32)
    wx = np.empty(W, np.float32)
    wy = np.empty(W, np.float32)
    out2 = out.reshape(H, W * 3)
    for oy in range(H):
        Y = np.float32(oy + 0.5 - cy)
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
        orow = out2[oy]
        for ox in range(W):
            i = idx[ox]
            j = i + ustride
            fx = wx[ox]
            fy = wy[ox]
            gx = one - fx
            gy = one - fy
            r = (gx * reg[i + c0] + fx * reg[i + u3 + c0]) * gy + (
                gx * reg[j + c0] + fx * reg[j + u3 + c0]) * fy  # fmt: skip
            gg = (gx * reg[i + u1] + fx * reg[i + u4]) * gy + (
                gx * reg[j + u1] + fx * reg[j + u4]) * fy  # fmt: skip
            bb = (gx * reg[i + c2] + fx * reg[i + u3 + c2]) * gy + (
                gx * reg[j + c2] + fx * reg[j + u3 + c2]) * fy  # fmt: skip
            if color:
                frow[3 * ox] = r
                frow[3 * ox + 1] = gg
                frow[3 * ox + 2] = bb
            else:
                orow[3 * ox] = np.uint8(r + half)
                orow[3 * ox + 1] = np.uint8(gg + half)
                orow[3 * ox + 2] = np.uint8(bb + half)
        if color:
            _color_row(frow, cmat, coff, orow)


@njit(nogil=True, cache=True, error_model="numpy")
def box_reduce(src, y_start, x_start, fy, fx, out):
    """Average fy x fx blocks of src starting at (y_start, x_start) into out (anti-aliasing).

    Blocks cut by the image border average the pixels they have (like cv2.INTER_AREA).
    Keeps the channel order.
    """
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    acc = np.zeros(W * 3, np.float32)
    cnt = np.zeros(W, np.float32)
    for oy in range(H):
        acc[:] = 0.0
        cnt[:] = 0.0
        ya = y_start + oy * fy
        yb = min(ya + fy, h)
        for y in range(ya, yb):
            row = src[y]
            for ox in range(W):
                xa = x_start + ox * fx
                xb = min(xa + fx, w)
                for x in range(xa, xb):
                    acc[3 * ox] += row[x, 0]
                    acc[3 * ox + 1] += row[x, 1]
                    acc[3 * ox + 2] += row[x, 2]
                cnt[ox] += xb - xa
        for ox in range(W):
            c = cnt[ox]
            if c <= 0:
                c = np.float32(1.0)
            for ch in range(3):
                out[oy, ox, ch] = _clamp(acc[3 * ox + ch] / c)


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
