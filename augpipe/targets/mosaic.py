"""Running ``Mosaic``: four images, four maps, one output and one set of targets per sample.

The pipeline's record is drawn for the 2S x 2S canvas (``Mosaic.frames``); tile q's record is
the same with ``A2`` preceded by canvas -> image q (``C_q A2``). Each tile is rendered, through
the ordinary fused kernel, into the bounding box of its part of the output only (a sub-frame:
``A1`` shifted by the sub-frame's offset), and its pixels whose canvas point lies on the tile
are copied into the output, which starts as the fill. Targets go to canvas coordinates, are
cut at their tile, and then take the canvas record's map once, filters at the end as always.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe.decode import load_region
from augpipe.ops.detection.mosaic import placements
from augpipe.ops.fused import fields, render, source_boxes
from augpipe.ops.params import min_scales
from augpipe.targets.core import Targets
from augpipe.targets.forward import forward, source_map
from augpipe.targets.masks import warp_nearest
from augpipe.targets.transform import clip_ring, transform


@njit(nogil=True, cache=True, error_model="numpy")
def _inside(M, X, Y, rx0, ry0, rx1, ry1):
    px = M[0, 0] * X + M[0, 1] * Y + M[0, 2]
    py = M[1, 0] * X + M[1, 1] * Y + M[1, 2]
    return rx0 <= px < rx1 and ry0 <= py < ry1


@njit(nogil=True, cache=True, error_model="numpy")
def _span(a, b, lo, hi, n):
    """Integer x in [0, n) with lo <= a + b x < hi, as a float interval (widened by 1)."""
    if b == 0.0:
        return (0.0, float(n)) if lo <= a < hi else (0.0, 0.0)
    t0, t1 = (lo - a) / b, (hi - a) / b
    if b < 0:
        t0, t1 = t1, t0
    return t0 - 1.0, t1 + 1.0


@njit(nogil=True, cache=True, error_model="numpy")
def _composite(tile, out, oy0, ox0, M, S, rx0, ry0, rx1, ry1):
    """Copy the pixels of ``tile`` (at (oy0, ox0) in ``out``) whose canvas point lies on the
    tile rectangle; ``tile``/``out`` (h, w, C) uint8, M: output frame -> canvas (affine). Along
    a row the canvas point moves linearly, so the pixels to copy are one run: found from the
    bounds, its ends checked pixel by pixel with the exact rule."""
    h, w, C = tile.shape[0], tile.shape[1], tile.shape[2]
    for y in range(h):
        Y = oy0 + y + 0.5 - S / 2
        X0 = ox0 + 0.5 - S / 2
        ax = M[0, 0] * X0 + M[0, 1] * Y + M[0, 2]
        ay = M[1, 0] * X0 + M[1, 1] * Y + M[1, 2]
        a0, a1 = _span(ax, M[0, 0], rx0, rx1, w)
        b0, b1 = _span(ay, M[1, 0], ry0, ry1, w)
        lo = int(max(max(a0, b0), 0.0))
        hi = int(min(min(a1, b1), float(w))) + 1
        hi = min(hi, w)
        while lo < hi and not _inside(M, X0 + lo, Y, rx0, ry0, rx1, ry1):
            lo += 1
        while hi > lo and not _inside(M, X0 + hi - 1, Y, rx0, ry0, rx1, ry1):
            hi -= 1
        src = tile[y]
        dst = out[oy0 + y]
        for x in range(lo, hi):
            for c in range(C):
                dst[ox0 + x, c] = src[x, c]


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])


def _to_canvas(t: Targets, sx: float, sy: float, x0: float, y0: float, rect) -> Targets:
    """Image targets -> canvas coordinates, cut at the tile ``rect`` (x0, y0, x1, y1)."""
    b = t.boxes.astype(np.float64) / (sx, sy, sx, sy) + (x0, y0, x0, y0)
    b[:, 0::2] = np.clip(b[:, 0::2], rect[0], rect[2])
    b[:, 1::2] = np.clip(b[:, 1::2], rect[1], rect[3])
    kp = None
    if t.keypoints is not None:
        kp = t.keypoints.astype(np.float64).copy()
        kp[..., 0] = kp[..., 0] / sx + x0
        kp[..., 1] = kp[..., 1] / sy + y0
        out = ((kp[..., 0] < rect[0]) | (kp[..., 0] >= rect[2]) | (kp[..., 1] < rect[1])
               | (kp[..., 1] >= rect[3]))  # fmt: skip
        kp[..., 2] = np.where(out, 0.0, kp[..., 2])
    polys = []
    for j in range(len(t) if len(t.ring_inst) else 0):  # (boxes-only data: no rings at all)
        rings = []
        for r in t.rings(j):
            c = clip_ring(r / (sx, sy) + (x0, y0) - rect[:2], rect[2] - rect[0], rect[3] - rect[1])
            if len(c) >= 3:
                rings.append(c + rect[:2])
        polys.append(rings)
    # RLE masks are not carried through a mosaic: the instance keeps its box
    out = Targets(b, t.labels, (0, 0), iscrowd=t.iscrowd, keypoints=kp)
    return out.with_polygons(polys) if polys else out


def _concat(parts: list[Targets], size, K: int) -> Targets:
    boxes = np.concatenate([p.boxes for p in parts]) if parts else np.zeros((0, 4))
    labels = np.concatenate([p.labels for p in parts]) if parts else np.zeros(0)
    crowd = np.concatenate([p.iscrowd for p in parts]) if parts else np.zeros(0, bool)
    kp = None
    if K:
        kp = np.concatenate([p.keypoints for p in parts]) if parts else np.zeros((0, K, 3))
    out = Targets(boxes, labels, size, iscrowd=crowd, keypoints=kp)
    if any(len(p.ring_inst) for p in parts):
        out.with_polygons([p.rings(j) for p in parts for j in range(len(p))])
    return out


def run_mosaic(tp, dataset, indices, seed: int, epoch: int, out) -> list[Targets]:
    """Render ``dataset[indices]`` as mosaics into ``out`` (N, S, S, 3); their targets."""
    pipe = tp.pipeline
    mos = pipe._size_op
    S = mos.size
    pos = pipe.ops.index(mos)
    indices = np.asarray(indices, np.int64).reshape(-1)
    n = len(indices)
    recs = pipe.sample_params(np.tile(mos.canvas_hw, (n, 1)), indices, seed, epoch)
    partners, centres = mos.layout(indices, len(dataset), seed, epoch, pos)
    sizes = np.asarray(dataset.sizes)
    result = []
    for j in range(n):
        rec = recs[j]
        M = source_map(rec) @ np.asarray(rec["A1"], np.float64)  # output frame -> canvas
        out[j][...] = mos.fill
        sem = np.full((S, S), 255, np.uint8) if tp.semantic else None
        place = placements(sizes[partners[j]], centres[j], S)
        parts = []
        for q in range(4):
            iq = int(partners[j, q])
            h, w = (int(v) for v in sizes[iq])
            x0, y0, x1, y1 = place[q]
            sx, sy = w / (x1 - x0), h / (y1 - y0)  # image pixels per canvas pixel
            rect = np.array([max(x0, 0), max(y0, 0), min(x1, 2 * S), min(y1, 2 * S)])
            if rect[2] <= rect[0] or rect[3] <= rect[1]:
                continue
            tq = dataset.targets(iq)
            parts.append(_to_canvas(tq, sx, sy, x0, y0, rect))
            corners = np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[2], rect[3]],
                                [rect[0], rect[3]]])  # fmt: skip
            o = forward(rec, corners, (S, S))
            ox0, oy0 = (max(int(np.floor(v)), 0) for v in o.min(axis=0))
            ox1, oy1 = (min(int(np.ceil(v)), S) for v in o.max(axis=0))
            if ox1 <= ox0 or oy1 <= oy0:
                continue
            C = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1.0]])
            sub = rec.copy()
            sub["A2"][0] = C @ np.asarray(rec["A2"][0], np.float64)
            sub["src_hw"] = (h, w)
            sw, sh = ox1 - ox0, oy1 - oy0
            shift = _shift(ox0 + sw / 2 - S / 2, oy0 + sh / 2 - S / 2)  # sub-frame centre
            sub["A1"] = np.asarray(rec["A1"], np.float64) @ shift
            f = fields(sub)
            box = source_boxes(f, (sh, sw))[0]
            img, bgr, sc, off = load_region(dataset, iq, float(min_scales(sub)[0]), box[:4],
                                            box[4], pipe.fast_decode)  # fmt: skip
            tile = np.empty((1, sh, sw, 3), np.uint8)
            render(np.ascontiguousarray(img), bgr, sub, tile, float(mos.fill), sc, off)
            _composite(tile[0], out[j], oy0, ox0, M, float(S), *rect)
            if sem is not None and tq.semantic is not None:
                m = warp_nearest(tq.semantic, sub, (sh, sw), 255)
                _composite(m[..., None], sem[..., None], oy0, ox0, M, float(S), *rect)
        canvas_t = _concat(parts, mos.canvas_hw, tp.K)
        t = transform(canvas_t, rec, (S, S), tp.options, tp.flip_idx if tp.K else None,
                      masks=tp.instances)  # fmt: skip
        t.semantic = sem
        result.append(t)
    return result
