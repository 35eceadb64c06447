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

from augpipe.ops.axis import _clamp, box_reduce, resize_axis  # noqa: F401 (re-exported)
from augpipe.ops.simd import gather4x2

_FAST = dict(nogil=True, cache=True, fastmath=True, error_model="numpy", boundscheck=False)
# fast-math without "arcp" (nor reassociation): with it LLVM turns the vector loop's divisions
# into reciprocal estimates (vrcp14ps + a Newton step) but keeps exact ones in the scalar
# remainder, so a pixel's source point would depend on where its row's loop starts (the
# spans of ``warp`` start anywhere)
_EXACT_DIV = dict(_FAST, fastmath={"nnan", "ninf", "nsz", "contract"})


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
def _round_row(frow, orow):
    # bilinear weights keep values in [0, 255]: rounding half up needs no clamp
    half = np.float32(0.5)
    for j in range(orow.shape[0]):
        orow[j] = np.uint8(frow[j] + half)


@njit(**_FAST)
def _mask_index(mk, sx, sy):
    """The padded mask buffer's offset for the image kernel's unclamped padded-buffer centre
    coordinate (sx, sy): the mask's own padded edge coordinate is ``a sx + g`` per axis, ``mk``
    = (ax, gx, ay, gy, xmax, ymax, stride) (scalars only: no array references per pixel),
    clamped into the buffer's border of fill, then floored."""
    px = min(max(mk[0] * sx + mk[1], np.float32(0.0)), mk[4])
    py = min(max(mk[2] * sy + mk[3], np.float32(0.0)), mk[5])
    return np.uint32(py) * mk[6] + np.uint32(px)


@njit(**_FAST)
def _mask_row(planes, mout, midx, oy, W):
    """Output row ``oy`` of every mask plane: the nearest samples at ``midx``."""
    for c in range(planes.shape[0]):
        p = planes[c]
        dst = mout[c, oy]
        for ox in range(W):
            dst[ox] = p[midx[ox]]


@njit(**_FAST)
def warp(src, bgr, y0, y1, x0, x1, A1, k, A2, fill, cmat, coff, color, out, mask=None,
         spans=None):  # fmt: skip
    """General map: output pixel -> A1 -> radial lens (1 + k r^2) -> A2 -> source edge coordinate.

    Coordinates start centred on the output in pixel units; r is normalised by the output's
    half-diagonal. Only the region [y0, y1) x [x0, x1) of ``src`` is read (the caller bounds the
    map with it). It is first copied to float32 inside a border of ``fill`` (1 pixel before, 2
    after), so the per-pixel loop is branch-free: coordinates are clamped into the border, where
    bilinear blending with ``fill`` is exactly cv2.BORDER_CONSTANT. Each output row computes its
    coordinates and weights in one vectorisable loop, then gathers in a second.

    A1 and A2 are full 3x3 maps: when either has a perspective row (not [0, 0, 1]) the rows
    divide by the homogeneous w (``_warp_row_h``; ``_warp_row_hc`` without a lens, both stages
    composed into one 3x3, one division); the choice is made once per call, so affine maps
    run a loop without division (``_warp_row_a`` without a lens: the composed map). A point
    with w <= 0 (behind the horizon) samples the fill.

    ``mask`` (the mask-carrying variant; None compiles the plain kernel, unchanged): a tuple
    (planes (C, L) uint8, stride, ax, gx, ay, gy, xmax, ymax, mout (C, H, W) uint8). The planes
    are masks in a padded buffer (a border of their fill, one pixel wide, rows of ``stride``);
    each output pixel's source point, computed once for the image, addresses the mask at padded
    edge coordinate (ax sx + gx, ay sy + gy) (sx, sy: the image's padded-buffer centre
    coordinate, before clamping), and the mask takes the pixel that contains it (nearest).

    ``spans`` (lo, hi, oy0, ox0, sw; None compiles the plain kernel, unchanged): the map's
    output is the sub-frame (len(lo), sw) whose top-left lies at (oy0, ox0) in ``out`` (the
    whole image), and only its pixels x in [lo[y], hi[y]) of each row y are computed and
    written, the same values the whole sub-frame would get there (``augpipe.ops.fused``'s
    ``render_item_spans``: Mosaic's tiles). Their rows always go through the float row buffer,
    so that the gathers' 4-pixel steps never write past a span.
    """
    H, W = out.shape[0], out.shape[1]
    if spans is not None:
        H, W = spans[0].shape[0], spans[4]
    if mask is not None:
        midx = np.zeros(W, np.uint32)  # unsigned: no negative-index code in the gathers
        mk = (mask[2], mask[3], mask[4], mask[5], mask[6], mask[7], mask[1])
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
    # unsigned offsets: no negative-index wraparound code in the gathers; the row loops keep
    # every value in 32 bits (float32 X from the column index, uint32 offsets from the clamped
    # coordinates): int64 and float64 steps there cost three times as much (~0.2 ms a 640 px
    # frame instead of ~0.07)
    ustride = np.uint32(stride)
    three = np.uint32(3)
    cx = W * 0.5
    cy = H * 0.5
    xc = np.float32(0.5 - cx)  # X = column + 0.5 - cx, exact in float32 either way
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
    out2 = out.reshape(out.shape[0], out.shape[1] * 3)
    flat = out.reshape(out.shape[0] * out.shape[1] * 3)
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
    # without a lens the two stages are one map hc = hq hp (composed in float64): one
    # division per pixel instead of two (``_warp_row_hc``), or two multiply-adds per
    # coordinate for an affine map (``_warp_row_a``)
    lens = k != 0.0
    hc = np.empty((3, 3), np.float32)
    for c in range(3):
        for r in range(3):
            t = (0.5 - x0) if r == 0 else (0.5 - y0) if r == 1 else 0.0
            q0 = A2[r, 0] + t * A2[2, 0]
            q1 = A2[r, 1] + t * A2[2, 1]
            q2 = A2[r, 2] + t * A2[2, 2]
            hc[r, c] = q0 * A1[0, c] + q1 * A1[1, c] + q2 * A1[2, c]
    for oy in range(H):
        Y = np.float32(oy + 0.5 - cy)
        if spans is not None:
            xs, n = spans[0][oy], spans[1][oy] - spans[0][oy]
            if n <= 0:
                continue
        else:
            xs, n = 0, W
        if not proj and not lens:
            if mask is not None:
                _warp_row_a(hc, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy, mk, midx)
            else:
                _warp_row_a(hc, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy)
        elif proj and not lens:
            if mask is not None:
                _warp_row_hc(hp, hc, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy, mk, midx)
            else:
                _warp_row_hc(hp, hc, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy)
        elif proj:
            if mask is not None:
                _warp_row_h(hp, kk, inv_r2, hq, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy,
                            mk, midx)  # fmt: skip
            else:
                _warp_row_h(hp, kk, inv_r2, hq, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy)
        else:
            bu = p01 * Y + p02
            bv = p11 * Y + p12
            for i in range(n):
                X = np.float32(xs + i) + xc
                u = p00 * X + bu
                v = p10 * X + bv
                s = one + kk * (u * u + v * v) * inv_r2
                u *= s
                v *= s
                sx = q00 * u + q01 * v + q02
                sy = q10 * u + q11 * v + q12
                if mask is not None:
                    midx[i] = _mask_index(mk, sx, sy)
                sx = min(max(sx, zero), xmax)
                sy = min(max(sy, zero), ymax)
                ix = np.uint32(sx)
                iy = np.uint32(sy)
                wx[i] = sx - np.float32(ix)
                wy[i] = sy - np.float32(iy)
                idx[i] = np.uint32(iy * ustride) + np.uint32(ix * three)
        if mask is not None:
            _mask_row(mask[0], mask[8], midx, oy, W)
        if spans is not None:
            # a span's last step leaves stale entries past n in idx/wx/wy: offsets computed as
            # above, so the reads stay inside the buffer; the row buffer is cut at the span
            for o in range(0, n, 4):
                gather4x2(reg, idx, ustride, wx, wy, o, frow, 3 * o, bgr)
            oy1, k0 = spans[2] + oy, 3 * (spans[3] + xs)
            if color:
                _color_row(frow, cmat, coff, out2[oy1, k0 : k0 + 3 * n])
            else:
                _round_row(frow, out2[oy1, k0 : k0 + 3 * n])
            continue
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


@njit(**_EXACT_DIV)
def _warp_row_h(p, kk, inv_r2, q, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy, mk=None,
                midx=None):  # fmt: skip
    """The gather offsets and weights of output pixels xs .. xs + n - 1 of one row (into
    idx[:n], ...) through projective maps and a lens (``warp``): each stage divides by its w;
    a point with w <= 0 in either stage is behind the horizon and takes the fill (the
    border's corner, weights 0; the masks' too, with ``mk``). ``xc``: 0.5 - the output's
    half width (X = column + xc)."""
    one = np.float32(1.0)
    eps = np.float32(1e-6)
    p00, p10, p20 = p[0, 0], p[1, 0], p[2, 0]
    q00, q01, q02 = q[0, 0], q[0, 1], q[0, 2]
    q10, q11, q12 = q[1, 0], q[1, 1], q[1, 2]
    q20, q21, q22 = q[2, 0], q[2, 1], q[2, 2]
    bu = p[0, 1] * Y + p[0, 2]
    bv = p[1, 1] * Y + p[1, 2]
    bw = p[2, 1] * Y + p[2, 2]
    for ox in range(n):
        X = np.float32(xs + ox) + xc
        w1 = p20 * X + bw
        ok = w1 > eps
        r1 = one / (w1 if ok else one)
        u = (p00 * X + bu) * r1
        v = (p10 * X + bv) * r1
        s = one + kk * (u * u + v * v) * inv_r2
        u *= s
        v *= s
        w2 = q20 * u + q21 * v + q22
        ok = ok & (w2 > eps)
        r2 = one / (w2 if ok else one)
        sx = (q00 * u + q01 * v + q02) * r2
        sy = (q10 * u + q11 * v + q12) * r2
        if mk is not None:
            midx[ox] = _mask_index(mk, sx, sy) if ok else 0
        _store_point(sx, sy, ok, ox, xmax, ymax, stride, idx, wx, wy)


@njit(**_EXACT_DIV)
def _warp_row_hc(p, h, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy, mk=None, midx=None):
    """``_warp_row_h`` without a lens: the composed homography ``h`` (A2 A1, shifted to the
    padded buffer), one division per pixel. Behind the horizon as there: A1's w1 <= 1e-6, or
    the composed w <= 1e-6 w1 (A2's own w = w / w1 <= 1e-6). The source point differs from
    the two-stage rows by float32 rounding only (a few 1e-5 pixels at 640 px)."""
    one = np.float32(1.0)
    eps = np.float32(1e-6)
    p20, h00, h10, h20 = p[2, 0], h[0, 0], h[1, 0], h[2, 0]
    b1 = p[2, 1] * Y + p[2, 2]
    bx = h[0, 1] * Y + h[0, 2]
    by = h[1, 1] * Y + h[1, 2]
    bw = h[2, 1] * Y + h[2, 2]
    for ox in range(n):
        X = np.float32(xs + ox) + xc
        w1 = p20 * X + b1
        w = h20 * X + bw
        ok = (w1 > eps) & (w > eps * w1)
        r = one / (w if ok else one)
        sx = (h00 * X + bx) * r
        sy = (h10 * X + by) * r
        if mk is not None:
            midx[ox] = _mask_index(mk, sx, sy) if ok else 0
        _store_point(sx, sy, ok, ox, xmax, ymax, stride, idx, wx, wy)


@njit(**_FAST)
def _warp_row_a(h, Y, xc, xs, n, xmax, ymax, stride, idx, wx, wy, mk=None, midx=None):
    """The rows of an affine map without a lens: ``h`` (rows 0 and 1) composed as in
    ``_warp_row_hc``, two multiply-adds per coordinate (the two stages took eight and the
    lens's identity scale)."""
    h00, h10 = h[0, 0], h[1, 0]
    bx = h[0, 1] * Y + h[0, 2]
    by = h[1, 1] * Y + h[1, 2]
    for ox in range(n):
        X = np.float32(xs + ox) + xc
        sx = h00 * X + bx
        sy = h10 * X + by
        if mk is not None:
            midx[ox] = _mask_index(mk, sx, sy)
        _store_point(sx, sy, True, ox, xmax, ymax, stride, idx, wx, wy)


@njit(**_FAST, inline="always")
def _store_point(sx, sy, ok, o, xmax, ymax, stride, idx, wx, wy):
    """Pixel o's gather offset and weights for the padded-buffer centre point (sx, sy),
    clamped into the border; the border's corner (weights 0: the fill) when not ``ok``. In
    32 bits (see ``warp``)."""
    zero = np.float32(0.0)
    sx = min(max(sx, zero), xmax)
    sy = min(max(sy, zero), ymax)
    if not ok:
        sx = zero
        sy = zero
    ix = np.uint32(sx)
    iy = np.uint32(sy)
    wx[o] = sx - np.float32(ix)
    wy[o] = sy - np.float32(iy)
    idx[o] = np.uint32(iy * np.uint32(stride)) + np.uint32(ix * np.uint32(3))


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
