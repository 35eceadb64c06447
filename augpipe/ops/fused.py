"""Rendering one sample: pick the kernel for its map, anti-alias, and write the output once.

- Axis-aligned maps that stay inside the source (crop, scale, flip: the standard training and
  evaluation pipelines) take the separable ``resize_axis`` kernel; anything with rotation,
  shear, lens or a translation past the border takes ``warp``, which fills the outside.
- Shrinking by more than 2x would alias with bilinear sampling, so the source region is first
  box-averaged by the integer factor floor(scale) (cv2.INTER_AREA does the same for integer
  factors), leaving bilinear at most a 2x step. JPEG records usually arrive already reduced by
  the DCT-scaled decode (``augpipe.decode``), so this is mostly for raw records.
- Contrast needs the mean colour: it is estimated on the source crop (``region_mean``).
"""

from __future__ import annotations

import math

import numpy as np

from augpipe.ops import kernels

_GRID = np.linspace(0.0, 1.0, 17)


def _reduce(src, y0: int, y1: int, x0: int, x1: int, fy: int, fx: int) -> np.ndarray:
    out = np.empty((-(-(y1 - y0) // fy), -(-(x1 - x0) // fx), 3), dtype=np.uint8)
    kernels.box_reduce(src, y0, x0, fy, fx, out)
    return out


def _colour(rec, src, bgr, region):
    cmat = rec["cmat"]
    coff = rec["coff"]
    if rec["color"] and np.any(rec["cmean"] != 0):
        mu = kernels.region_mean(src, bgr, *region)
        coff = (coff + rec["cmean"] @ mu.astype(np.float32)).astype(np.float32)
    return cmat, coff


def render(src: np.ndarray, bgr: bool, rec, out: np.ndarray, fill: float = 0.0,
           src_scale: tuple[float, float] = (1.0, 1.0)) -> None:  # fmt: skip
    """Write the record's K crops of ``src`` (HWC uint8, C-contiguous) into ``out`` (K, H, W, 3).

    ``src_scale`` = (sy, sx): full-size edge coordinate / ``src`` edge coordinate, for a source
    decoded at a reduced DCT scale (the record's maps address the full-size image).
    """
    h, w = src.shape[:2]
    H, W = out.shape[1:3]
    A1 = rec["A1"]
    k = float(rec["k"])
    for j in range(out.shape[0]):
        A2 = rec["A2"][j].copy()
        A2[0] /= src_scale[1]
        A2[1] /= src_scale[0]
        A = A2 @ A1
        if k == 0.0 and A[0, 1] == 0.0 and A[1, 0] == 0.0 and _inside(A, h, w, H, W):
            _render_axis(src, bgr, rec, A, h, w, H, W, out[j])
        else:
            _render_warp(src, bgr, rec, A1, k, A2, h, w, H, W, fill, out[j])


def _inside(A, h, w, H, W) -> bool:
    """Whether an axis-aligned map stays within the source (else the warp fills the outside)."""
    sx, sy = abs(A[0, 0]) * W / 2, abs(A[1, 1]) * H / 2
    eps = 1e-6
    return (A[0, 2] - sx >= -eps and A[0, 2] + sx <= w + eps and A[1, 2] - sy >= -eps
            and A[1, 2] + sy <= h + eps)  # fmt: skip


def _render_axis(src, bgr, rec, A, h, w, H, W, out):
    sx, sy = abs(A[0, 0]), abs(A[1, 1])
    lo_x, hi_x = A[0, 2] - sx * W / 2, A[0, 2] + sx * W / 2
    lo_y, hi_y = A[1, 2] - sy * H / 2, A[1, 2] + sy * H / 2
    x0, x1 = min(max(math.floor(lo_x), 0), w - 1), max(min(math.ceil(hi_x), w), 1)
    y0, y1 = min(max(math.floor(lo_y), 0), h - 1), max(min(math.ceil(hi_y), h), 1)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    fx = int(sx) if sx > 2.0 else 1
    fy = int(sy) if sy > 2.0 else 1
    ax, bx0, ay, by0 = A[0, 0], A[0, 2], A[1, 1], A[1, 2]
    if fx > 1 or fy > 1:
        src = _reduce(src, y0, y1, x0, x1, fy, fx)
        ax, bx0 = ax / fx, (bx0 - x0) / fx
        ay, by0 = ay / fy, (by0 - y0) / fy
        region = (0, src.shape[0], 0, src.shape[1])
    else:
        region = (y0, y1, x0, x1)
    cmat, coff = _colour(rec, src, bgr, region)
    # centre coordinate of output pixel o: a (o + 0.5 - n/2) + b - 0.5
    kernels.resize_axis(src, bgr, ax, ax * (0.5 - W / 2) + bx0 - 0.5, ay,
                        ay * (0.5 - H / 2) + by0 - 0.5, cmat, coff, bool(rec["color"]), out)  # fmt: skip


def source_points(A1, k, A2, H: int, W: int) -> np.ndarray:
    """Source edge coordinates (2, n) of a grid of output points, border included."""
    gx, gy = np.meshgrid(_GRID * W - W / 2, _GRID * H - H / 2)
    p = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    q = A1 @ p
    if k != 0.0:
        q[:2] *= 1.0 + k * (q[0] ** 2 + q[1] ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    return (A2 @ q)[:2]


def _render_warp(src, bgr, rec, A1, k, A2, h, w, H, W, fill, out):
    L = A2[:2, :2] @ A1[:2, :2]
    s = min(math.hypot(L[0, 0], L[1, 0]), math.hypot(L[0, 1], L[1, 1]))
    s *= 1.0 + 3.0 * k if k < 0 else 1.0
    f = int(s) if s > 2.0 else 1
    pts = source_points(A1, k, A2, H, W)
    pad = 2 * f + 1
    x0 = min(max(math.floor(pts[0].min()) - pad, 0), w - 1)
    x1 = max(min(math.ceil(pts[0].max()) + pad, w), x0 + 1)
    y0 = min(max(math.floor(pts[1].min()) - pad, 0), h - 1)
    y1 = max(min(math.ceil(pts[1].max()) + pad, h), y0 + 1)
    if f > 1:
        src = _reduce(src, y0, y1, x0, x1, f, f)
        A2 = A2.copy()
        A2[0] = (A2[0] - np.array([0.0, 0.0, x0])) / f
        A2[1] = (A2[1] - np.array([0.0, 0.0, y0])) / f
        region = (0, src.shape[0], 0, src.shape[1])
    else:
        region = (y0, y1, x0, x1)
    cmat, coff = _colour(rec, src, bgr, region)
    kernels.warp(src, bgr, *region, A1, k, A2, fill, cmat, coff, bool(rec["color"]), out)
