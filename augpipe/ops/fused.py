"""Rendering one sample: pick the kernel for its map, anti-alias, and write the output once.

- Axis-aligned maps that stay inside the source (crop, scale, flip: the standard training and
  evaluation pipelines) take the separable ``resize_axis`` kernel; anything with rotation,
  shear, lens or a translation past the border takes ``warp``, which fills the outside.
- Shrinking by more than 2x would alias with bilinear sampling, so the source region is first
  box-averaged by the integer factor floor(scale) (cv2.INTER_AREA does the same for integer
  factors), leaving bilinear at most a 2x step. JPEG records usually arrive already reduced by
  the DCT-scaled decode (``augpipe.decode``), so this is mostly for raw records.
- Contrast needs the mean colour: it is estimated on the source crop (``region_mean``).
- The map's bounds (what the kernels read, what a region decode must hold) come from
  ``augpipe.ops.bounds``; ``render_item_spans`` renders a sub-frame's row runs straight into
  a larger image (Mosaic's tiles).

The per-sample decisions run in Numba too (``_render``), so a sample costs one Python call.

Numba's on-disk cache is keyed on each file's own text (a hash of it, not its time), and the
kernels compiled into ``_render`` are part of its cached machine code: ``_KERNELS_DIGEST`` below
is a digest of the kernels' sources, so that this file's text, and with it the cache key, changes
whenever they do (``tests/test_ops_kernels.py`` checks it and prints the new value). A module
whose kernels ``_render`` calls belongs in ``_KERNEL_SOURCES``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from augpipe.ops import kernels
from augpipe.ops.bounds import (  # noqa: F401 (re-exported: the map's bounds)
    _GRID,
    _affine,
    _grid_map,
    _map_point,
    _matmul3,
    _source_boxes,
    source_boxes,
)
from augpipe.ops.pixel import tile as tile_ops

# the record's program fields (``augpipe.ops.params``), in the order ``_render`` unpacks them
PROGRAM_FIELDS = ("prog", "parg", "geo", "clip", "pfill", "ebox", "emode", "ecol", "estd", "ekey",
                  "nchain", "chain", "carg", "cgeo", "cmix", "cm")  # fmt: skip
# Numba's cache key of _render: the sources of the kernels it calls (see the module docstring)
_KERNEL_SOURCES = ("kernels.py", "axis.py", "simd.py", "fixed.py", "fixed_gather.py", "bounds.py",
                   "pixel/tile.py", "pixel/program.py", "pixel/tables.py",
                   "pixel/filters.py")  # fmt: skip
_KERNELS_DIGEST = "cf024a1a48c7e742"


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _reduce(src, y0, y1, x0, x1, fy, fx):
    out = np.empty(((y1 - y0 + fy - 1) // fy, (x1 - x0 + fx - 1) // fx, 3), np.uint8)
    kernels.box_reduce(src, y0, x0, fy, fx, out)
    return out


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _offset(src, bgr, y0, y1, x0, x1, coff, cmean, color):
    """The colour offset: coff + cmean @ (mean RGB of the region), when contrast asks for it."""
    off = coff.copy()
    if color and np.any(cmean != 0):
        mu = kernels.region_mean(src, bgr, y0, y1, x0, x1)
        for i in range(3):
            off[i] += cmean[i, 0] * mu[0] + cmean[i, 1] * mu[1] + cmean[i, 2] * mu[2]
    return off


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _render_axis(src, bgr, A, cmat, coff, cmean, color, out, mask=None, M=None):
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    sx, sy = abs(A[0, 0]), abs(A[1, 1])
    x0 = min(max(math.floor(A[0, 2] - sx * W / 2), 0), w - 1)
    x1 = max(min(math.ceil(A[0, 2] + sx * W / 2), w), x0 + 1)
    y0 = min(max(math.floor(A[1, 2] - sy * H / 2), 0), h - 1)
    y1 = max(min(math.ceil(A[1, 2] + sy * H / 2), h), y0 + 1)
    # a factor past the region's extent averages the same single block (and would size the
    # box filter's buffers by it: a degenerate scale such as 1e-15 asked for petabytes)
    fx = min(int(min(sx, 1e9)), x1 - x0) if sx > 2.0 else 1
    fy = min(int(min(sy, 1e9)), y1 - y0) if sy > 2.0 else 1
    ax, bx0, ay, by0 = A[0, 0], A[0, 2], A[1, 1], A[1, 2]
    if fx > 1 or fy > 1:
        src = _reduce(src, y0, y1, x0, x1, fy, fx)
        ax, bx0 = ax / fx, (bx0 - x0) / fx
        ay, by0 = ay / fy, (by0 - y0) / fy
        y0, y1, x0, x1 = 0, src.shape[0], 0, src.shape[1]
    off = _offset(src, bgr, y0, y1, x0, x1, coff, cmean, color)
    # centre coordinate of output pixel o: a (o + 0.5 - n/2) + b - 0.5
    bx = ax * (0.5 - W / 2) + bx0 - 0.5
    by = ay * (0.5 - H / 2) + by0 - 0.5
    kernels.resize_axis(src, bgr, ax, bx, ay, by, cmat, off, color, out)
    if mask is not None:
        _axis_mask(M, mask[0], mask[1], mask[2], mask[3])


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def _axis_mask(M, pad, my0, mx0, mout):
    """The masks through an axis-aligned map ``M`` (centred output -> full-size source edge
    coordinate, float64): each output column's and row's source pixel computed once (the map is
    separable), the one that contains the point (nearest); ``pad`` (C, h + 2, w + 2) holds the
    masks' window from (my0, mx0) inside a border of their fill."""
    H, W = mout.shape[1], mout.shape[2]
    hmax, wmax = pad.shape[1] - 1.0, pad.shape[2] - 1.0
    m02 = M[0, 2] + (1.0 - mx0)
    m12 = M[1, 2] + (1.0 - my0)
    cols = np.empty(W, np.int64)
    for ox in range(W):
        cols[ox] = np.int64(min(max(M[0, 0] * (ox + 0.5 - W * 0.5) + m02, 0.0), wmax))
    for oy in range(H):
        iy = np.int64(min(max(M[1, 1] * (oy + 0.5 - H * 0.5) + m12, 0.0), hmax))
        for c in range(pad.shape[0]):
            row = pad[c, iy]
            dst = mout[c, oy]
            for ox in range(W):
                dst[ox] = row[cols[ox]]


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _render_warp(src, bgr, A1, k, A2, fill, cmat, coff, cmean, color, out, mask=None,
                 dec=None, spans=None):  # fmt: skip
    h, w = src.shape[0], src.shape[1]
    H, W = out.shape[0], out.shape[1]
    if spans is not None:  # (lo, hi, oy0, ox0, sw): a sub-frame of ``out`` (``kernels.warp``)
        H, W = spans[0].shape[0], spans[4]
    proj = not (_affine(A1) and _affine(A2))
    # bounding box of the map over a grid of output points, border included; without a lens
    # the corners bound it (a homography maps the frame to the quadrilateral of its corners'
    # images, w being linear), so a coarse grid gives the same box (5 x 5: the Jacobian's
    # extremes for a perspective map's step; 2 x 2 for an affine one)
    g = _GRID if k != 0.0 else 5 if proj else 2
    lo_x, hi_x, lo_y, hi_y, s, _ = _grid_map(A1, k, A2, W, H, g, proj)
    if not proj:
        s = min(math.hypot(A2[0, 0] * A1[0, 0] + A2[0, 1] * A1[1, 0],
                           A2[1, 0] * A1[0, 0] + A2[1, 1] * A1[1, 0]),
                math.hypot(A2[0, 0] * A1[0, 1] + A2[0, 1] * A1[1, 1],
                           A2[1, 0] * A1[0, 1] + A2[1, 1] * A1[1, 1]))  # fmt: skip
        if k < 0:
            s *= 1.0 + 3.0 * k  # the radial step r (1 + k r^2) shrinks to 1 + 3k at the corners
    f = min(int(min(s, 1e9)), max(h, w)) if s > 2.0 else 1  # (capped as in _render_axis)
    pad = 2 * f + 1
    lo_x, hi_x = max(min(lo_x, 1e9), -1e9), max(min(hi_x, 1e9), -1e9)
    lo_y, hi_y = max(min(lo_y, 1e9), -1e9), max(min(hi_y, 1e9), -1e9)
    x0 = min(max(math.floor(lo_x) - pad, 0), w - 1)
    x1 = max(min(math.ceil(hi_x) + pad, w), x0 + 1)
    y0 = min(max(math.floor(lo_y) - pad, 0), h - 1)
    y1 = max(min(math.ceil(hi_y) + pad, h), y0 + 1)
    B = A2.copy()
    rx, ry = float(x0), float(y0)  # (the reduced source's origin in ``src``, when f > 1)
    if f > 1:
        src = _reduce(src, y0, y1, x0, x1, f, f)
        for c in range(3):  # x' = x / f - x0 / f, as rows: row / f - (x0 / f) row 2
            B[0, c] = B[0, c] / f - x0 / f * B[2, c]
            B[1, c] = B[1, c] / f - y0 / f * B[2, c]
        y0, y1, x0, x1 = 0, src.shape[0], 0, src.shape[1]
    off = _offset(src, bgr, y0, y1, x0, x1, coff, cmean, color)
    if spans is not None:
        kernels.warp(src, bgr, y0, y1, x0, x1, A1, k, B, fill, cmat, off, color, out, None,
                     spans)  # fmt: skip
        return
    if mask is None:
        kernels.warp(src, bgr, y0, y1, x0, x1, A1, k, B, fill, cmat, off, color, out)
        return
    # the kernel's padded-buffer centre coordinate s is a source edge coordinate s - 0.5 + x0
    # (of the reduced source when f > 1: times f, plus its origin rx), decoded at ``dec`` =
    # (sy, sx, oy, ox): full size = (decoded + o) * s; the masks' padded buffer starts one
    # pixel before their window's origin (my0, mx0)
    mpad, my0, mx0, mout = mask
    sy, sx, oy, ox = dec
    F = float(f)
    bx = (x0 - 0.5) * F + (rx if f > 1 else 0.0)
    by = (y0 - 0.5) * F + (ry if f > 1 else 0.0)
    ph, pw = mpad.shape[1], mpad.shape[2]
    km = (mpad.reshape(mpad.shape[0], ph * pw), np.uint32(pw), np.float32(F * sx),
          np.float32((bx + ox) * sx + 1.0 - mx0), np.float32(F * sy),
          np.float32((by + oy) * sy + 1.0 - my0), np.float32(pw - 1.0), np.float32(ph - 1.0),
          mout)  # fmt: skip
    kernels.warp(src, bgr, y0, y1, x0, x1, A1, k, B, fill, cmat, off, color, out, km)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _crop_map(h, w, H, W, A2s_j, A1, k, sy, sx, oy, ox, G):
    """One crop's map A2 G A1 (G: a policy's geometry, identity otherwise): (A2 to decoded
    source coordinates, A = A2 A1, M = the same to full-size coordinates (the masks'), axis:
    whether the separable kernel renders it)."""
    A2 = _matmul3(A2s_j, G)
    M = _matmul3(A2, A1)  # full-size source edge coordinates, as the masks are stored
    for c in range(3):  # full-size -> decoded edge coordinates; a region decode starts at
        # (oy, ox) (whole pixels: exact); as rows, so a perspective row divides them too
        A2[0, c] = A2[0, c] / sx - ox * A2[2, c]
        A2[1, c] = A2[1, c] / sy - oy * A2[2, c]
    A = _matmul3(A2, A1)
    inside = False
    if k == 0.0 and A[0, 1] == 0.0 and A[1, 0] == 0.0 and _affine(A1) and _affine(A2):
        # a policy translation (G a pure shift) keeps the axis kernel when the crop canvas
        # itself lies inside the source: what the shift moves past the canvas is clipped to
        # the fill afterwards (clip_canvas), so the kernel's clamped border never shows
        shift = G[0, 0] == 1.0 and G[1, 1] == 1.0 and G[0, 1] == 0.0 and G[1, 0] == 0.0
        B = A
        if shift and (G[0, 2] != 0.0 or G[1, 2] != 0.0):
            B = A.copy()
            B[0, 2] -= A2[0, 0] * G[0, 2] + A2[0, 1] * G[1, 2]
            B[1, 2] -= A2[1, 0] * G[0, 2] + A2[1, 1] * G[1, 2]
        ex, ey = abs(B[0, 0]) * W / 2, abs(B[1, 1]) * H / 2
        inside = (B[0, 2] - ex >= -1e-6 and B[0, 2] + ex <= w + 1e-6
                  and B[1, 2] - ey >= -1e-6 and B[1, 2] + ey <= h + 1e-6)  # fmt: skip
    return A2, A, M, inside


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _resample(src, bgr, A2s_j, A1, k, cmat, coff, cmean, color, fill, sy, sx, oy, ox, G, out,
              mask=None):  # fmt: skip
    """One crop: the map A2 G A1 (``_crop_map``) into ``out``; with ``mask`` (pad, my0, mx0,
    mout), the masks in ``pad`` into ``mout`` in the same pass (nearest: see ``kernels.warp``
    and ``_axis_mask``)."""
    A2, A, M, axis = _crop_map(src.shape[0], src.shape[1], out.shape[0], out.shape[1], A2s_j,
                               A1, k, sy, sx, oy, ox, G)  # fmt: skip
    if axis:
        if mask is not None:
            _render_axis(src, bgr, A, cmat, coff, cmean, color, out, mask, M)
        else:
            _render_axis(src, bgr, A, cmat, coff, cmean, color, out)
        return
    if mask is not None:
        _render_warp(src, bgr, A1, k, A2, fill, cmat, coff, cmean, color, out, mask,
                     (sy, sx, oy, ox))  # fmt: skip
    else:
        _render_warp(src, bgr, A1, k, A2, fill, cmat, coff, cmean, color, out)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _render(src, bgr, A2s, A1, k, cmat, coff, cmean, color, fill, sy, sx, oy, ox, pg, out,
            mask=None):  # fmt: skip
    """Each crop: resample, then the record's program on the tile while it is in cache
    (``augpipe.ops.pixel``): AugMix chains, canvas clip, steps, erase box. ``pg`` holds the
    program fields of the record (``PROGRAM_FIELDS``). ``mask``: masks resampled with the
    image (one crop; the program's pixel steps never touch them)."""
    (prog, parg, geo, clip, pfill, ebox, emode, ecol, estd, ekey,
     nchain, chain, carg, cgeo, cmix, cm) = pg  # fmt: skip
    for j in range(out.shape[0]):
        _resample(src, bgr, A2s[j], A1, k, cmat, coff, cmean, color, fill, sy, sx, oy, ox,
                  geo, out[j], mask)  # fmt: skip
        if nchain > 0:
            acc = np.zeros(out[j].shape, np.float32)
            tile = np.empty_like(out[j])
            for c in range(nchain):
                _resample(src, bgr, A2s[j], A1, k, cmat, coff, cmean, color, fill, sy, sx, oy,
                          ox, cgeo[c], tile)  # fmt: skip
                tile_ops.clip_canvas(tile, cgeo[c], pfill)
                tile_ops.run_program(tile, chain[c], carg[c])
                tile_ops.mix_into(acc, tile, cmix[c])
            tile_ops.mix_finish(out[j], acc, cm)
        if clip:
            tile_ops.clip_canvas(out[j], geo, pfill)
        tile_ops.run_program(out[j], prog, parg)
        tile_ops.erase(out[j], ebox, emode, ecol, estd, ekey)


def fields(recs: np.ndarray) -> tuple[np.ndarray, ...]:
    """A batch of records as contiguous per-field arrays (fast per-sample views for ``render``),
    then the program fields (``PROGRAM_FIELDS``), then the records themselves, contiguous: what
    ``render_item`` passes to Numba (one array to unbox per call where the fields are 22)."""
    recs = np.ascontiguousarray(np.asarray(recs).reshape(-1))
    names = ("A2", "A1", "k", "cmat", "coff", "cmean", "color", "src_hw")
    f = tuple(np.ascontiguousarray(recs[n]) for n in names)
    return f + (tuple(np.ascontiguousarray(recs[n]) for n in PROGRAM_FIELDS), recs)


def render(
    src: np.ndarray,
    bgr: bool,
    rec,
    out: np.ndarray,
    fill: float = 0.0,
    src_scale: tuple[float, float] = (1.0, 1.0),
    src_offset: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Write the record's K crops of ``src`` (HWC uint8, C-contiguous) into ``out`` (K, H, W, 3).

    ``src_scale`` = (sy, sx): full-size edge coordinate / ``src`` edge coordinate, for a source
    decoded at a reduced DCT scale (the record's maps address the full-size image);
    ``src_offset`` = (oy, ox): where ``src`` starts, in those decoded edge coordinates, for a
    region decode (``augpipe.decode.load_region``).
    """
    render_item(src, bgr, fields(rec), 0, out, fill, src_scale, src_offset)


def render_item(src, bgr, f: tuple, j: int, out, fill=0.0, src_scale=(1.0, 1.0),
                src_offset=(0.0, 0.0), mask=None) -> None:  # fmt: skip
    """``render`` for item ``j`` of ``fields(records)``. ``mask``: (pad, my0, mx0, mout), masks
    sampled in the image's pass (``augpipe.targets.masks.MaskWindow``): ``pad`` (C, h, w)
    uint8 holds the full-size masks' window starting at source pixel (my0, mx0) inside a
    border of their fill one pixel wide, ``mout`` (C, H, W) uint8 takes them (one crop)."""
    sy, sx = float(src_scale[0]), float(src_scale[1])
    if mask is not None:
        mask = (mask[0], float(mask[1]), float(mask[2]), mask[3])
    _render_record(src, bool(bgr), f[9], int(j), float(fill), sy, sx, float(src_offset[0]),
                   float(src_offset[1]), out, mask)  # fmt: skip


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _render_record(src, bgr, recs, j, fill, sy, sx, oy, ox, out, mask=None):
    # _render with record j's fields read here: one record array crosses into Numba per call
    # (~1.7 us a call where 22 arrays and a Python-side tuple of them took ~5)
    r = recs[j]
    pg = (r["prog"], r["parg"], r["geo"], r["clip"], r["pfill"], r["ebox"], r["emode"],
          r["ecol"], r["estd"], r["ekey"], r["nchain"], r["chain"], r["carg"], r["cgeo"],
          r["cmix"], r["cm"])  # fmt: skip
    _render(src, bgr, r["A2"], r["A1"], np.float64(r["k"]), r["cmat"], r["coff"], r["cmean"],
            r["color"], fill, sy, sx, oy, ox, pg, out, mask)  # fmt: skip


def render_item_spans(src, bgr, f: tuple, j: int, out, oy0: int, ox0: int, lo, hi, sw: int,
                      fill=0.0, src_scale=(1.0, 1.0), src_offset=(0.0, 0.0)) -> None:  # fmt: skip
    """``render_item`` of item ``j`` (one crop) for the sub-frame (len(lo), sw) whose top-left
    lies at (oy0, ox0) in ``out`` (H, W, 3) uint8, writing only out[oy0 + y, ox0 + x] for x in
    [lo[y], hi[y]) (int64 arrays; Mosaic's tile runs): the pixels a (len(lo), sw) tile from
    ``render_item`` holds there, without the tile and its copy. A record the warp kernel
    alone cannot render (pixel steps, AugMix chains, a canvas clip, an erase box, or a map
    for the separable kernel) is rendered into a tile and copied, the same pixels."""
    sy, sx = float(src_scale[0]), float(src_scale[1])
    oy, ox = float(src_offset[0]), float(src_offset[1])
    lo, hi = np.ascontiguousarray(lo, np.int64), np.ascontiguousarray(hi, np.int64)
    if not (out.flags.c_contiguous and out.dtype == np.uint8 and out.ndim == 3):
        c = out.flags.c_contiguous
        raise ValueError(f"render_item_spans: out must be a C-contiguous (H, W, 3) uint8 image, "
                         f"got {out.dtype} {out.shape} (contiguous: {c})")  # fmt: skip
    args = (src, bool(bgr), f[9], int(j), float(fill), sy, sx, oy, ox)
    done = _render_spans(*args, out, int(oy0), int(ox0), lo, hi, int(sw))
    if done < 0:
        raise ValueError(f"render_item_spans: the sub-frame ({len(lo)}, {sw}) at ({oy0}, {ox0}) "
                         f"and its spans [lo, hi) must lie inside out {out.shape[:2]}, with hi "
                         f"the same length as lo ({len(hi)} given)")  # fmt: skip
    if done == 0:
        tile = np.empty((1, len(lo), int(sw), 3), np.uint8)
        _render_record(*args, tile)
        H, W = out.shape[0], out.shape[1]
        copy_runs(tile[0].reshape(len(lo), int(sw) * 3), out.reshape(H, W * 3), int(oy0),
                  int(ox0), 3, lo, hi)  # fmt: skip


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _render_spans(src, bgr, recs, j, fill, sy, sx, oy, ox, out, oy0, ox0, lo, hi, sw):
    """``render_item_spans``' fast path: record j straight into the spans of ``out``, when
    only the warp kernel acts on it (1); 0, nothing written, otherwise; -1 when the sub-frame
    or a span does not lie inside ``out``."""
    H, W = out.shape[0], out.shape[1]
    if hi.shape[0] != lo.shape[0] or oy0 < 0 or ox0 < 0 or oy0 + lo.shape[0] > H or ox0 + sw > W:
        return -1
    for y in range(lo.shape[0]):
        if hi[y] > lo[y] and (lo[y] < 0 or hi[y] > sw):
            return -1
    r = recs[j]
    if r["A2"].shape[0] != 1 or r["nchain"] > 0 or r["clip"] or np.any(r["prog"] != 0):
        return 0  # (program code 0 is the no-op: ``augpipe.ops.pixel.program.NOP``)
    e = r["ebox"]
    if r["emode"] != 0 and e[2] > 0 and e[3] > 0:
        return 0
    k = np.float64(r["k"])
    A1 = r["A1"]
    A2, _, _, axis = _crop_map(src.shape[0], src.shape[1], lo.shape[0], sw, r["A2"][0], A1, k,
                               sy, sx, oy, ox, r["geo"])  # fmt: skip
    if axis:
        return 0
    _render_warp(src, bgr, A1, k, A2, fill, r["cmat"], r["coff"], r["cmean"], r["color"], out,
                 None, None, (lo, hi, oy0, ox0, sw))  # fmt: skip
    return 1


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def copy_runs(tile, out, oy0, ox0, C, lo, hi):
    """``out[oy0 + y, ox0 + x] = tile[y, x]`` for x in [lo[y], hi[y]), rows flattened with C
    channels: ``tile`` (h, w C), ``out`` (H, W C). Unsigned offsets: the loop vectorises (no
    negative-index wraparound code)."""
    o = np.uint64(ox0 * C)
    one = np.uint64(1)
    for y in range(lo.shape[0]):
        i, end = np.uint64(lo[y] * C), np.uint64(hi[y] * C)
        dst = out[oy0 + y]
        src = tile[y]
        while i < end:
            dst[o + i] = src[i]
            i += one
