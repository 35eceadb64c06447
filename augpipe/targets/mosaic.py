"""Running ``Mosaic``: four images, four maps, one output and one set of targets per sample.

The pipeline's record is drawn for the 2S x 2S canvas (``Mosaic.frames``); tile q's record is
the same with ``A2`` preceded by canvas -> image q (``C_q A2``). Every tile of a batch gets its
record at once (``_plan``). Each tile's source is decoded only where the tile's part of the
output reads it (a region decode, at the DCT scale its map allows) and rendered by the
ordinary fused kernel over the bounding box of that part only (a sub-frame: ``A1`` shifted by
the sub-frame's offset), writing only the pixels whose canvas point lies on the tile (one run
per row) straight into the output (``render_item_spans``); the fill goes where no run lands.
Targets go to canvas coordinates, are cut at their tile, and then take the canvas record's
map once, filters at the end as always.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe.decode import load_region
from augpipe.ops.detection.mosaic import placements
from augpipe.ops.fused import _source_boxes, copy_runs, fields, render_item_spans
from augpipe.ops.params import min_scales
from augpipe.targets.batch import read_targets
from augpipe.targets.core import Targets
from augpipe.targets.forward import source_maps
from augpipe.targets.masks import warp_nearest
from augpipe.targets.transform import clip_ring, transform


@njit(nogil=True, cache=True, error_model="numpy")
def _inside(M, X, Y, rx0, ry0, rx1, ry1):
    """The exact rule: the canvas point of the output point (X, Y) (centred) lies on the tile
    rectangle; M: output frame -> canvas, homogeneous (a point behind a horizon never does)."""
    px = M[0, 0] * X + M[0, 1] * Y + M[0, 2]
    py = M[1, 0] * X + M[1, 1] * Y + M[1, 2]
    q = M[2, 0] * X + M[2, 1] * Y + M[2, 2]
    if q != 1.0:
        if not q > 0.0:
            return False
        px /= q
        py /= q
    return rx0 <= px < rx1 and ry0 <= py < ry1


@njit(nogil=True, cache=True, error_model="numpy")
def _half(a, b, lo, hi):
    """Narrow [lo, hi) to the real x with a + b x >= 0, widened by 1 (a superset)."""
    if b == 0.0:
        return (lo, hi) if a >= 0.0 else (lo, lo)
    t = -a / b
    if b > 0.0:
        return max(lo, t - 1.0), hi
    return lo, min(hi, t + 1.0)


@njit(nogil=True, cache=True, error_model="numpy")
def _runs(M, S, oy0, ox0, h, w, rx0, ry0, rx1, ry1, lo, hi):
    """Per row y of the sub-frame (h, w) at (oy0, ox0): the columns [lo[y], hi[y]) whose canvas
    point lies on the tile. Along a row the canvas point is (a + b x) / (c + d x), so each
    bound is one linear inequality once c + d x > 0: their intersection, a superset, is then
    shrunk at both ends by the exact rule (``_inside``)."""
    for y in range(h):
        Y = oy0 + y + 0.5 - S / 2
        X0 = ox0 + 0.5 - S / 2
        ax = M[0, 0] * X0 + M[0, 1] * Y + M[0, 2]
        ay = M[1, 0] * X0 + M[1, 1] * Y + M[1, 2]
        aq = M[2, 0] * X0 + M[2, 1] * Y + M[2, 2]
        bx, by, bq = M[0, 0], M[1, 0], M[2, 0]
        a, b = 0.0, float(w)
        a, b = _half(aq, bq, a, b)  # in front of the horizon
        a, b = _half(ax - rx0 * aq, bx - rx0 * bq, a, b)  # px >= rx0
        a, b = _half(rx1 * aq - ax, rx1 * bq - bx, a, b)  # px < rx1
        a, b = _half(ay - ry0 * aq, by - ry0 * bq, a, b)
        a, b = _half(ry1 * aq - ay, ry1 * bq - by, a, b)
        s = int(max(a, 0.0))
        e = int(min(b, float(w - 1))) + 1 if b > a else s
        e = min(max(e, s), w)
        while s < e and not _inside(M, X0 + s, Y, rx0, ry0, rx1, ry1):
            s += 1
        while e > s and not _inside(M, X0 + e - 1, Y, rx0, ry0, rx1, ry1):
            e -= 1
        lo[y], hi[y] = s, e


@njit(nogil=True, cache=True, error_model="numpy")
def _tile_runs(maps, sample, frame, rect, S, lo, hi):
    """``_runs`` for every tile of a batch in one call: tile t's sub-frame ``frame[t]`` (ox0,
    oy0, ox1, oy1) of sample ``sample[t]``'s output, its rows' runs into ``lo[t]``, ``hi[t]``;
    True per tile that has a non-empty run."""
    T = sample.shape[0]
    any_run = np.zeros(T, np.bool_)
    for t in range(T):
        ox0, oy0, ox1, oy1 = frame[t, 0], frame[t, 1], frame[t, 2], frame[t, 3]
        if ox1 <= ox0 or oy1 <= oy0:
            continue
        h = oy1 - oy0
        _runs(maps[sample[t]], S, oy0, ox0, h, ox1 - ox0, rect[t, 0], rect[t, 1], rect[t, 2],
              rect[t, 3], lo[t], hi[t])  # fmt: skip
        for y in range(h):
            if hi[t, y] > lo[t, y]:
                any_run[t] = True
                break
    return any_run


@njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
def _fill_gaps(out, fill, sample, frame, lo, hi):
    """Write ``fill`` into every pixel of ``out`` (N, S, S C, rows flattened) that no tile's
    run covers (the tiles write the rest: each pixel is written once, no memset of the whole
    batch first). Tiles are in sample order; a sample's runs in one row are disjoint (its tile
    rectangles do not overlap), at most one per tile."""
    N, S = out.shape[0], out.shape[1]
    C = out.shape[2] // S
    T = sample.shape[0]
    s_lo = np.empty(8, np.int64)
    s_hi = np.empty(8, np.int64)
    first = 0
    for j in range(N):
        last = first
        while last < T and sample[last] == j:
            last += 1
        for y in range(S):
            k = 0
            for t in range(first, min(last, first + 8)):
                oy0 = frame[t, 1]
                if oy0 <= y < frame[t, 3] and hi[t, y - oy0] > lo[t, y - oy0]:
                    a, b = frame[t, 0] + lo[t, y - oy0], frame[t, 0] + hi[t, y - oy0]
                    i = k  # insertion by start
                    while i > 0 and s_lo[i - 1] > a:
                        s_lo[i], s_hi[i] = s_lo[i - 1], s_hi[i - 1]
                        i -= 1
                    s_lo[i], s_hi[i] = a, b
                    k += 1
            row = out[j, y]
            x = 0
            for r in range(k + 1):
                end = s_lo[r] if r < k else S
                if end > x:  # unsigned offsets: the loop vectorises (a memset)
                    e, stop = np.uint64(x * C), np.uint64(end * C)
                    while e < stop:
                        row[e] = fill
                        e += np.uint64(1)
                if r < k:
                    x = max(x, s_hi[r])
        first = last


@njit(nogil=True, cache=True, error_model="numpy")
def _tile_boxes(A2s, A1s, ks, sizes, frame, boxes):
    """``source_boxes`` per tile, each over its own sub-frame (one call for the batch)."""
    for t in range(A2s.shape[0]):
        H = max(frame[t, 3] - frame[t, 1], 1)
        W = max(frame[t, 2] - frame[t, 0], 1)
        _source_boxes(A2s[t : t + 1], A1s[t : t + 1], ks[t : t + 1], sizes[t : t + 1], H, W,
                      boxes[t : t + 1])  # fmt: skip


def _boxes_to_canvas(ts: list, places, rects):
    """Tiles' boxes (targets ``ts``, image pixels) in canvas coordinates, cut at their tile
    rectangle; with their labels, crowd flags and each box's place and rectangle rows."""
    m = [len(t) for t in ts]
    P = np.repeat(np.asarray(places, np.float64).reshape(-1, 4), m, axis=0)
    R = np.repeat(np.asarray(rects, np.float64).reshape(-1, 4), m, axis=0)
    b = np.concatenate([t.boxes for t in ts] + [np.zeros((0, 4), np.float32)]).astype(np.float64)
    b = b / P[:, [0, 1, 0, 1]] + P[:, [2, 3, 2, 3]]
    b[:, 0::2] = np.clip(b[:, 0::2], R[:, [0]], R[:, [2]])
    b[:, 1::2] = np.clip(b[:, 1::2], R[:, [1]], R[:, [3]])
    labels = np.concatenate([t.labels for t in ts] + [np.zeros(0, np.int64)])
    crowd = np.concatenate([t.iscrowd for t in ts] + [np.zeros(0, bool)])
    return b, labels, crowd, P, R


def _canvas_targets(parts: list, size, K: int) -> Targets:
    """One sample's tiles' targets (``(Targets, (sx, sy, x0, y0), rect)`` each: image pixels,
    image pixels per canvas pixel, the image's place, the tile) in canvas coordinates, each
    cut at its tile rectangle (x0, y0, x1, y1). RLE masks are not carried through a mosaic:
    the instance keeps its box."""
    ts = [t for t, _, _ in parts]
    b, labels, crowd, P, R = _boxes_to_canvas(ts, [p for _, p, _ in parts],
                                              [r for _, _, r in parts])  # fmt: skip
    kp = None
    if K:
        kp = np.concatenate([t.keypoints for t in ts] + [np.zeros((0, K, 3), np.float32)])
        kp = kp.astype(np.float64)
        kp[..., 0] = kp[..., 0] / P[:, [0]] + P[:, [2]]
        kp[..., 1] = kp[..., 1] / P[:, [1]] + P[:, [3]]
        x, y = kp[..., 0], kp[..., 1]
        out = (x < R[:, [0]]) | (x >= R[:, [2]]) | (y < R[:, [1]]) | (y >= R[:, [3]])
        kp[..., 2] = np.where(out, 0.0, kp[..., 2])
    result = Targets(b, labels, size, iscrowd=crowd, keypoints=kp)
    if any(len(t.ring_inst) for t in ts):
        polys = []
        for t, (sx, sy, x0, y0), rect in parts:
            for j in range(len(t)):
                rings = []
                for r in t.rings(j):
                    c = clip_ring(r / (sx, sy) + (x0, y0) - rect[:2], rect[2] - rect[0],
                                  rect[3] - rect[1])  # fmt: skip
                    if len(c) >= 3:
                        rings.append(c + rect[:2])
                polys.append(rings)
        result.with_polygons(polys)
    return result


def _canvas_all(tqs: list, places, rects, samples, n: int, size, K: int) -> list[Targets]:
    """Per sample, ``_canvas_targets`` of its tiles (tile t: targets ``tqs[t]``, ``places[t]``,
    ``rects[t]``, sample ``samples[t]``, tiles in sample order). Plain boxes (no keypoints, no
    polygons) take one vectorised pass over the whole batch: the same arithmetic."""
    if K or any(len(t.ring_inst) for t in tqs):
        parts: list[list] = [[] for _ in range(n)]
        for t, tq in enumerate(tqs):
            parts[samples[t]].append((tq, places[t], rects[t]))
        return [_canvas_targets(p, size, K) for p in parts]
    b, labels, crowd, _, _ = _boxes_to_canvas(tqs, places, rects)
    m = [len(t) for t in tqs]
    per = np.bincount(np.asarray(samples, np.int64), weights=m, minlength=n).astype(np.int64)
    ends = np.cumsum(per).tolist()
    starts = [0] + ends[:-1]
    return [Targets(b[s:e], labels[s:e], size, iscrowd=crowd[s:e]) for s, e in zip(starts, ends)]


def _plan(recs, partners, centres, sizes, S: int):
    """Every visible tile of the batch, as arrays: ``sample``, ``image`` (dataset index),
    ``rect`` (x0, y0, x1, y1) on the canvas, ``frame`` (ox0, oy0, ox1, oy1) the bounding box
    of its part of the output, ``place`` (sx, sy, x0, y0) image pixels per canvas pixel and
    where the image starts; and the tiles' records (``C_q A2``, ``A1`` on the sub-frame)."""
    hw = sizes[partners].astype(np.float64)  # (n, 4, 2)
    place = placements(hw, centres, S)
    x0, y0 = place[..., 0], place[..., 1]
    nw, nh = place[..., 2] - x0, place[..., 3] - y0
    rect = np.stack([np.maximum(x0, 0), np.maximum(y0, 0), np.minimum(place[..., 2], 2 * S),
                     np.minimum(place[..., 3], 2 * S)], axis=2)  # fmt: skip
    # the tile's corners through output -> canvas, inverted: the bounding box of its part
    A2 = source_maps(recs)
    Minv = np.linalg.inv(A2 @ np.asarray(recs["A1"], np.float64))  # (n, 3, 3)
    cx = rect[..., [0, 2, 2, 0]]
    cy = rect[..., [1, 1, 3, 3]]
    q = Minv[:, None, 2, 0, None] * cx + Minv[:, None, 2, 1, None] * cy + Minv[:, None, 2, 2, None]
    ox = (Minv[:, None, 0, 0, None] * cx + Minv[:, None, 0, 1, None] * cy
          + Minv[:, None, 0, 2, None]) / q + S / 2  # fmt: skip
    oy = (Minv[:, None, 1, 0, None] * cx + Minv[:, None, 1, 1, None] * cy
          + Minv[:, None, 1, 2, None]) / q + S / 2  # fmt: skip
    frame = np.stack([np.floor(ox.min(axis=2)), np.floor(oy.min(axis=2)), np.ceil(ox.max(axis=2)),
                      np.ceil(oy.max(axis=2))], axis=2)  # fmt: skip
    frame = np.clip(np.nan_to_num(frame, nan=0.0), 0, S).astype(np.int64)
    # a corner behind a perspective horizon bounds nothing: the whole frame (the runs decide)
    frame[(q <= 0).any(axis=2)] = (0, 0, S, S)
    keep = (rect[..., 2] > rect[..., 0]) & (rect[..., 3] > rect[..., 1])
    j, k = np.nonzero(keep)
    tiles = {
        "sample": j,
        "image": partners[j, k],
        "rect": rect[j, k],
        "frame": frame[j, k],
        "place": np.stack(
            [hw[j, k, 1] / nw[j, k], hw[j, k, 0] / nh[j, k], x0[j, k], y0[j, k]], axis=1
        ),  # fmt: skip
    }
    sub = np.asarray(recs)[j]  # copies: one record per tile
    sx, sy, px, py = tiles["place"].T
    C = np.zeros((len(j), 3, 3))
    C[:, 0, 0], C[:, 0, 2], C[:, 1, 1], C[:, 1, 2], C[:, 2, 2] = sx, -px * sx, sy, -py * sy, 1.0
    sub["A2"][:, 0] = C @ sub["A2"][:, 0]
    sub["src_hw"] = sizes[tiles["image"]]
    f = tiles["frame"]
    sw, sh = np.maximum(f[:, 2] - f[:, 0], 1), np.maximum(f[:, 3] - f[:, 1], 1)
    shift = np.zeros((len(j), 3, 3))
    shift[:, 0, 0] = shift[:, 1, 1] = shift[:, 2, 2] = 1.0
    shift[:, 0, 2] = f[:, 0] + sw / 2 - S / 2  # the sub-frame's centre
    shift[:, 1, 2] = f[:, 1] + sh / 2 - S / 2
    sub["A1"] = sub["A1"] @ shift
    return tiles, sub


class _Scratch:
    """A grow-only buffer for the tiles' semantic masks (one per run: a tile's mask is
    sampled, then its runs copied out)."""

    def __init__(self):
        self.mask = np.empty(0, np.uint8)

    def semantic(self, h: int, w: int) -> np.ndarray:
        if self.mask.size < h * w:
            self.mask = np.empty(h * w, np.uint8)
        return self.mask[: h * w].reshape(h, w)


def run_mosaic(tp, dataset, indices, seed: int, epoch: int, out, sem_out=None) -> list[Targets]:
    """Render ``dataset[indices]`` as mosaics into ``out`` (N, S, S, 3); their targets (semantic
    masks into ``sem_out`` (N, S, S) when given)."""
    pipe = tp.pipeline
    mos = pipe._size_op
    S = mos.size
    pos = pipe.ops.index(mos)
    indices = np.asarray(indices, np.int64).reshape(-1)
    n = len(indices)
    recs = pipe.sample_params(np.tile(mos.canvas_hw, (n, 1)), indices, seed, epoch)
    partners, centres = mos.layout(indices, len(dataset), seed, epoch, pos)
    sizes = np.asarray(dataset.sizes)
    tiles, sub = _plan(recs, partners, centres, sizes, S)
    sems = None
    if tp.semantic:
        sems = sem_out[:n] if sem_out is not None else np.empty((n, S, S), np.uint8)
        sems[...] = 255
    maps = source_maps(recs) @ np.asarray(recs["A1"], np.float64)  # output -> canvas
    T = len(sub)
    fr = tiles["frame"]  # a perspective map's DCT scale is taken over each tile's sub-frame
    lo, hi = np.zeros((T, S), np.int64), np.zeros((T, S), np.int64)
    samples, images = tiles["sample"].tolist(), tiles["image"].tolist()
    places, rects = tiles["place"].tolist(), tiles["rect"]
    tqs = [read_targets(dataset, i) for i in images]
    canvas = _canvas_all(tqs, places, rects, samples, n, mos.canvas_hw, tp.K)
    if not T:
        out[:n] = mos.fill
        return _finish(tp, recs, canvas, sems, S)
    f = fields(sub)
    any_run = _tile_runs(maps, tiles["sample"], fr, rects, float(S), lo, hi)
    if out[:n].flags.c_contiguous:  # the fill goes only where no tile's run lands
        _fill_gaps(out[:n].reshape(n, S, S * 3), np.uint8(mos.fill), tiles["sample"], fr, lo, hi)
    else:
        out[:n] = mos.fill
    boxes = np.empty((T, 5))
    _tile_boxes(f[0], f[1], f[2].astype(np.float64), f[7], fr, boxes)
    hw = np.maximum(np.stack([fr[:, 3] - fr[:, 1], fr[:, 2] - fr[:, 0]], axis=1), 1)
    scales = min_scales(sub, hw).tolist()
    scratch = _Scratch()
    fill, fast = float(mos.fill), pipe.fast_decode
    for t in np.flatnonzero(any_run).tolist():
        j, iq = samples[t], images[t]
        ox0, oy0, ox1, oy1 = fr[t].tolist()
        sh, sw = oy1 - oy0, ox1 - ox0
        box = boxes[t]
        img, bgr, sc, off = load_region(dataset, iq, scales[t], box[:4], box[4], fast,
                                        reuse=True)  # fmt: skip
        render_item_spans(np.ascontiguousarray(img), bgr, f, t, out[j], oy0, ox0, lo[t, :sh],
                          hi[t, :sh], sw, fill, sc, off)  # fmt: skip
        if sems is not None and tqs[t].semantic is not None:
            m = warp_nearest(tqs[t].semantic, sub[t], (sh, sw), 255, out=scratch.semantic(sh, sw))
            copy_runs(m, sems[j], oy0, ox0, 1, lo[t, :sh], hi[t, :sh])
    return _finish(tp, recs, canvas, sems, S)


def _finish(tp, recs, canvas: list[Targets], sems, S: int) -> list[Targets]:
    """Each sample's targets (canvas coordinates) through its record."""
    result = []
    for j in range(len(recs)):
        t = transform(canvas[j], recs[j], (S, S), tp.options, tp.flip_idx if tp.K else None,
                      masks=tp.instances)  # fmt: skip
        t.semantic = sems[j] if sems is not None else None
        result.append(t)
    return result
