"""Where a map reads: its bounding box and local steps over a grid of output points, and the
source box a region decode must hold for a record (``source_boxes``).

``augpipe.ops.fused`` renders with these (its ``_render_warp`` takes the same grid as
``_source_boxes``, so a decode always holds what the kernel reads) and re-exports them. A map
is centred output -> A1 -> radial lens (1 + k r^2) -> A2 -> source edge coordinate, each 3x3
with the homogeneous division (``kernels.warp``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GRID = 17  # under a lens, the map's bounding box is taken over a 17 x 17 grid of output points


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _affine(M):
    return M[2, 0] == 0.0 and M[2, 1] == 0.0 and M[2, 2] == 1.0


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _map_point(A1, k, A2, X, Y, inv_r2):
    """Centred output point -> source edge coordinate (x, y, ok): A1, lens, A2, each 3x3 with
    the homogeneous division; ok is False behind the horizon (w <= 0 in a stage), where the
    kernel samples the fill and no source point exists."""
    u = A1[0, 0] * X + A1[0, 1] * Y + A1[0, 2]
    v = A1[1, 0] * X + A1[1, 1] * Y + A1[1, 2]
    w = A1[2, 0] * X + A1[2, 1] * Y + A1[2, 2]
    ok = w > 0.0
    if w != 1.0 and ok:
        u /= w
        v /= w
    if k != 0.0:
        s = 1.0 + k * (u * u + v * v) * inv_r2
        u *= s
        v *= s
    x = A2[0, 0] * u + A2[0, 1] * v + A2[0, 2]
    y = A2[1, 0] * u + A2[1, 1] * v + A2[1, 2]
    w = A2[2, 0] * u + A2[2, 1] * v + A2[2, 2]
    ok = ok and w > 0.0
    if w != 1.0 and ok:
        x /= w
        y /= w
    return x, y, ok


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _grid_map(A1, k, A2, W, H, g, steps):
    """Over a g x g grid of output points (border included): the bounding box of the map
    (lo_x, hi_x, lo_y, hi_y; infinite when a point lies behind the horizon, so the whole source
    is taken), and, with ``steps``, the local source pixels per output pixel from one-pixel
    differences: the smallest column norm and the largest row sum or column norm (for maps
    whose Jacobian varies: perspective)."""
    inv_r2 = 1.0 / ((W / 2) ** 2 + (H / 2) ** 2)
    lo_x = lo_y = np.inf
    hi_x = hi_y = -np.inf
    smin, smax = np.inf, 0.0
    bad = False
    for i in range(g):
        for j in range(g):
            X, Y = W * (j / (g - 1) - 0.5), H * (i / (g - 1) - 0.5)
            px, py, ok = _map_point(A1, k, A2, X, Y, inv_r2)
            bad = bad or not ok
            lo_x, hi_x = min(lo_x, px), max(hi_x, px)
            lo_y, hi_y = min(lo_y, py), max(hi_y, py)
            if steps and ok:
                ax, ay, ok_x = _map_point(A1, k, A2, X + 1.0, Y, inv_r2)
                bx, by, ok_y = _map_point(A1, k, A2, X, Y + 1.0, inv_r2)
                if ok_x and ok_y:
                    cx0, cx1, cy0, cy1 = ax - px, ay - py, bx - px, by - py
                    smin = min(smin, math.hypot(cx0, cx1), math.hypot(cy0, cy1))
                    smax = max(smax, abs(cx0) + abs(cy0), abs(cx1) + abs(cy1),
                               math.hypot(cx0, cx1), math.hypot(cy0, cy1))  # fmt: skip
    if bad:
        lo_x = lo_y = -np.inf
        hi_x = hi_y = np.inf
    return lo_x, hi_x, lo_y, hi_y, min(smin, 1e9), min(smax, 1e9)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _matmul3(a, b):  # numba's @ needs scipy's BLAS; a 3x3 product does not
    c = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            c[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]
    return c


@njit(nogil=True, cache=True, error_model="numpy")
def _source_boxes(A2s, A1s, ks, sizes, H, W, boxes):
    for n in range(A2s.shape[0]):
        A1, k = A1s[n], ks[n]
        h, w = sizes[n, 0], sizes[n, 1]
        lo_x = lo_y = np.inf
        hi_x = hi_y = -np.inf
        step = 0.0
        smin = np.inf
        axis = k == 0.0  # every crop takes _render_axis (decided as _render does)
        proj = False
        for j in range(A2s.shape[1]):
            A2 = A2s[n, j]
            p = not (_affine(A1) and _affine(A2))
            proj = proj or p
            # without a lens the corners bound the map (a homography maps the frame to the
            # quadrilateral of its corners' images, w being linear): 2 x 2 for an affine map,
            # 5 x 5 for a perspective one (its Jacobian's extremes for the step); the same
            # grid _render_warp bounds its map with
            g = _GRID if k != 0.0 else 5 if p else 2
            bx0, bx1, by0, by1, s0, s1 = _grid_map(A1, k, A2, W, H, g, p)
            lo_x, hi_x = min(lo_x, bx0), max(hi_x, bx1)
            lo_y, hi_y = min(lo_y, by0), max(hi_y, by1)
            if p:  # the Jacobian varies: its extremes over the grid
                step, smin = max(step, s1), min(smin, s0)
                axis = False
                continue
            A = _matmul3(A2, A1)
            # bounds the box filter's factor and the block overhang (row sums) and
            # _render_warp's f (column norms)
            step = max(step, abs(A[0, 0]) + abs(A[0, 1]), abs(A[1, 0]) + abs(A[1, 1]),
                       math.hypot(A[0, 0], A[1, 0]), math.hypot(A[0, 1], A[1, 1]))  # fmt: skip
            smin = min(smin, math.hypot(A[0, 0], A[1, 0]), math.hypot(A[0, 1], A[1, 1]))
            ex, ey = abs(A[0, 0]) * W / 2, abs(A[1, 1]) * H / 2
            axis = (axis and A[0, 1] == 0.0 and A[1, 0] == 0.0
                    and A[0, 2] - ex >= 0.0 and A[0, 2] + ex <= w
                    and A[1, 2] - ey >= 0.0 and A[1, 2] + ey <= h)  # fmt: skip
        pad = 0.0
        if proj:  # min_scales may pick any DCT factor for these: pad for the largest
            pad = 2.0 * max(step, 8.0)
        elif not axis:
            # _render_warp pads its bounding box by 2 f + 1 decoded pixels and its box-filter
            # blocks overhang by f - 1 more (f <= max(step / d, 1)); load_region adds f + 1
            # around the box, so 2 f decoded = 2 max(step, d) full-size pixels complete it
            if k < 0:
                smin *= 1.0 + 3.0 * k
            d = 8.0 if smin >= 8.0 else 4.0 if smin >= 4.0 else 2.0 if smin >= 2.0 else 1.0
            pad = 2.0 * max(step, d)  # d as augpipe.decode.dct_factor picks it
        boxes[n, 0] = max(min(lo_y - pad, 1e9), -1e9)
        boxes[n, 1] = max(min(hi_y + pad, 1e9), -1e9)
        boxes[n, 2] = max(min(lo_x - pad, 1e9), -1e9)
        boxes[n, 3] = max(min(hi_x + pad, 1e9), -1e9)
        boxes[n, 4] = step


def source_boxes(f: tuple, out_hw: tuple[int, int]) -> np.ndarray:
    """Per item of ``fields(records)``: (y0, y1, x0, x1, step), in full-size source edge
    coordinates, the box a region decode must hold: the bounding box of the item's maps (over
    the grid ``_render_warp`` uses), widened by ``_render_warp``'s own padding for items that
    take the warp kernel, and ``step``, the most source pixels per output pixel along an axis.
    ``augpipe.decode.load_region`` adds the margin that bilinear sampling, the box filter and
    the decoder's edge columns need around it (sized by ``step``)."""
    boxes = np.empty((f[0].shape[0], 5))
    _source_boxes(f[0], f[1], f[2].astype(np.float64), f[7], int(out_hw[0]), int(out_hw[1]),
                  boxes)  # fmt: skip
    return boxes
