"""One image's targets through one sample's record: boxes, polygons, keypoints and masks.

Boxes come from the instance's shape when it has one: the transformed polygon, clipped to the
frame (or the warped RLE mask); otherwise from the transformed box outline (``box_rule``
``"corners"``, conservative: it contains the object's box, or ``"ellipse"``: the inscribed
ellipse, tighter under rotation). Under a lens every edge is subdivided before mapping, so
curved edges are followed (affine and perspective maps keep edges straight: vertices
suffice). The filters run once, on the result of the whole map: a box is dropped when its
area inside the frame is zero or below ``min_area``, when that area over the transformed
box's full area is below ``min_visibility``, when a side is shorter than ``min_wh``, or when
its aspect (long / short side) exceeds ``max_aspect``. Keypoints that leave the frame get
v = 0; a mirroring map swaps them through ``flip_idx``.

>>> opts = TargetOptions(min_visibility=0.3)
>>> out = transform(dataset.targets(7), rec, (640, 640), opts, flip_idx)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from augpipe.errors import ConfigError, bad_param
from augpipe.targets.core import IGNORE, Targets
from augpipe.targets.forward import apply_point, forward, inv3_jit, mirrors, source_map
from augpipe.targets.masks import instance_planes, mask_box, warp_nearest

_SUBDIV = 8  # points per edge when the map bends straight lines
_ELLIPSE = 32  # points on the inscribed ellipse
COMPILED_BOXES = True  # the compiled path for plain boxes (tests turn it off to compare)


@dataclass(frozen=True)
class TargetOptions:
    """How targets are carried: box filters, the box rule, and which masks to produce.

    >>> Loader(ds, 16, pipe, targets=TargetOptions(min_visibility=0.1, min_wh=2))
    """

    min_area: float = 0.0
    min_visibility: float = 0.0
    min_wh: float = 0.0
    max_aspect: float = math.inf
    box_rule: str = "corners"
    masks: bool = True  # semantic masks and instance maps in batches (when the data has them)

    def __post_init__(self):
        for name in ("min_area", "min_visibility", "min_wh", "max_aspect"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
                raise bad_param(f"TargetOptions.{name}", "a number >= 0", v)
        if self.min_visibility > 1:
            raise bad_param("TargetOptions.min_visibility", "a fraction in [0, 1]",
                            self.min_visibility)  # fmt: skip
        if self.max_aspect < 1:
            raise bad_param("TargetOptions.max_aspect", "a ratio >= 1 (or inf)", self.max_aspect)
        if self.box_rule not in ("corners", "ellipse"):
            raise bad_param("TargetOptions.box_rule", "'corners' or 'ellipse'", self.box_rule)


def check_one_map(recs) -> None:
    """Refuse sample records whose image is a blend of differently warped copies (AugMix's
    chains): no one set of targets fits it."""
    if "nchain" in (recs.dtype.names or ()) and np.any(recs["nchain"] > 0):
        raise ConfigError(
            "pipeline: AugMix blends images warped by different maps, so no one set of "
            "targets fits the result; drop AugMix for targets"
        )


def _outline(boxes: np.ndarray, rule: str, subdiv: int) -> np.ndarray:
    """(M, N, 2) points whose image bounds each box's image."""
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))
    if rule == "ellipse":
        t = np.linspace(0, 2 * np.pi, _ELLIPSE, endpoint=False)[None]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=2)
    t = np.arange(subdiv)[None] / subdiv
    edges = [(x0 + t * (x1 - x0), y0 + 0 * t), (x1 + 0 * t, y0 + t * (y1 - y0)),
             (x1 - t * (x1 - x0), y1 + 0 * t), (x0 + 0 * t, y1 - t * (y1 - y0))]  # fmt: skip
    return np.concatenate([np.stack(e, axis=2) for e in edges], axis=1)


def _densify(ring: np.ndarray, n: int) -> np.ndarray:
    if n <= 1:
        return ring
    nxt = np.roll(ring, -1, axis=0)
    t = (np.arange(n) / n)[None, :, None]
    return (ring[:, None] + t * (nxt - ring)[:, None]).reshape(-1, 2)


def clip_ring(ring: np.ndarray, W: float, H: float) -> np.ndarray:
    """Sutherland-Hodgman against [0, W] x [0, H]: the ring's part inside the frame."""
    pts = ring
    for axis, bound, keep_below in ((0, 0.0, False), (0, W, True), (1, 0.0, False),
                                    (1, H, True)):  # fmt: skip
        if len(pts) == 0:
            break
        nxt = np.roll(pts, -1, axis=0)
        a, b = pts[:, axis], nxt[:, axis]
        ina = a <= bound if keep_below else a >= bound
        inb = b <= bound if keep_below else b >= bound
        out = []
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (bound - a) / (b - a)
            cross = pts + t[:, None] * (nxt - pts)  # used only where the edge crosses
        for i in range(len(pts)):
            if ina[i]:
                out.append(pts[i])
                if not inb[i]:
                    out.append(cross[i])
            elif inb[i]:
                out.append(cross[i])
        pts = np.asarray(out).reshape(-1, 2)
    return pts


def _bounds(pts: np.ndarray) -> np.ndarray:
    if len(pts) == 0:
        return np.zeros(4)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


@njit(nogil=True, cache=True, error_model="numpy")
def _corner_boxes(boxes, F, G, W, H, min_area, min_vis, min_wh, max_aspect, box, keep):
    """Plain boxes without a lens (``transform``'s corner rule, its filters): each box's four
    corners through the inverses of ``F`` (the source map) and ``G`` (A1), their bounds
    clipped to the frame into ``box``; ``keep`` per box. The NumPy path's arithmetic, point by
    point (no fastmath: the same float64 results)."""
    Fi, Gi = inv3_jit(F), inv3_jit(G)
    for j in range(boxes.shape[0]):
        x0, y0 = np.float64(boxes[j, 0]), np.float64(boxes[j, 1])
        x1, y1 = np.float64(boxes[j, 2]), np.float64(boxes[j, 3])
        lx = ly = np.inf
        hx = hy = -np.inf
        for c in range(4):
            x = x0 if c == 0 or c == 3 else x1
            y = y0 if c < 2 else y1
            u, v = apply_point(Fi, x, y)
            X, Y = apply_point(Gi, u, v)
            X, Y = X + W / 2, Y + H / 2
            lx, hx = min(lx, X), max(hx, X)
            ly, hy = min(ly, Y), max(hy, Y)
        bx0, bx1 = min(max(lx, 0.0), W), min(max(hx, 0.0), W)
        by0, by1 = min(max(ly, 0.0), H), min(max(hy, 0.0), H)
        box[j, 0], box[j, 1], box[j, 2], box[j, 3] = bx0, by0, bx1, by1
        bw, bh = bx1 - bx0, by1 - by0
        area = max(bw, 0.0) * max(bh, 0.0)
        full_area = (hx - lx) * (hy - ly)
        vis = 0.0
        if full_area > 0:
            vis = max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0) / full_area
        ok = area > 0 and area >= min_area and vis >= min_vis and bw >= min_wh and bh >= min_wh
        keep[j] = ok and max(bw / bh, bh / bw) <= max_aspect


def _plain_boxes(t: Targets, rec, H: int, W: int, opts: TargetOptions, crop: int, masks: bool):
    """(box, keep) from ``_corner_boxes`` when ``t`` holds plain boxes under a lens-free map
    with the corner rule; None otherwise (the general path decides)."""
    if (not COMPILED_BOXES or float(rec["k"]) != 0.0 or opts.box_rule != "corners"
            or len(t.ring_inst) or (not all(r is None for r in t.rle)
                                    and instance_planes(t, masks))):  # fmt: skip
        return None
    m = len(t)
    box, keep = np.empty((m, 4)), np.empty(m, np.bool_)
    _corner_boxes(t.boxes, source_map(rec, crop), np.asarray(rec["A1"], np.float64), float(W),
                  float(H), float(opts.min_area), float(opts.min_visibility), float(opts.min_wh),
                  float(opts.max_aspect), box, keep)  # fmt: skip
    return box, keep


def transform(t: Targets, rec, out_hw, opts: TargetOptions = TargetOptions(), flip_idx=None,
              crop: int = 0, masks: bool = True, semantic_out=None,
              warped=None) -> Targets:  # fmt: skip
    """``t`` (source pixels) -> a new ``Targets`` in the output frame ``out_hw`` = (H, W).

    The result's ``masks`` attribute holds the warped RLE instance masks (H, W) uint8 for kept
    instances that have one (None for the others); ``semantic`` is warped with fill 255, into
    ``semantic_out`` (H, W) uint8 when given (a batch slot). ``warped``: (semantic, {instance:
    mask}), the masks already sampled in the image's pass (``augpipe.targets.render``), for
    the semantic mask and the instances ``instance_planes(t, masks)`` names."""
    H, W = (int(v) for v in out_hw)
    plain = _plain_boxes(t, rec, H, W, opts, crop, masks) if len(t) else None
    if plain is not None and t.keypoints is None and t.semantic is None:
        idx = np.flatnonzero(plain[1])
        out = Targets.plain(np.ascontiguousarray(plain[0][idx], np.float32), t.labels[idx],
                            (H, W), t.iscrowd[idx])  # fmt: skip
        out.masks = [None] * len(idx)
        return out
    if plain is not None:
        return _finish(t, rec, (H, W), plain[0], np.flatnonzero(plain[1]), [[]] * len(t),
                       [None] * len(t), flip_idx, crop, semantic_out, warped)  # fmt: skip
    # only a lens bends straight lines: under an affine or perspective map (in front of its
    # horizon) a segment's image is the segment between its ends' images, so vertices suffice
    sub = 1 if float(rec["k"]) == 0.0 else _SUBDIV
    m = len(t)
    full = np.zeros((m, 4))
    vis = np.zeros((m, 4))
    if m:
        pts = _outline(t.boxes.astype(np.float64), opts.box_rule, sub)
        q = forward(rec, pts.reshape(-1, 2), (H, W), crop).reshape(m, -1, 2)
        full = np.concatenate([q.min(axis=1), q.max(axis=1)], axis=1)
        vis = full.copy()
    has_poly = t.has_polygon()
    new_rings: list[list[np.ndarray]] = [[] for _ in range(m)]
    for j in np.flatnonzero(has_poly):
        rings = [forward(rec, _densify(r, sub), (H, W), crop) for r in t.rings(j)]
        new_rings[j] = rings
        full[j] = _bounds(np.concatenate(rings))
        vis[j] = _bounds(np.concatenate([clip_ring(r, W, H) for r in rings]))
    inst = [None] * m
    for j in instance_planes(t, masks):
        if warped is not None:
            inst[j] = warped[1][j]
        else:
            inst[j] = warp_nearest(t.instance_mask(j), rec, (H, W), 0, crop)
        if not has_poly[j]:
            vis[j] = mask_box(inst[j])
    box = vis.copy()
    box[:, 0::2] = np.clip(box[:, 0::2], 0, W)
    box[:, 1::2] = np.clip(box[:, 1::2], 0, H)
    bw, bh = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    area = np.maximum(bw, 0) * np.maximum(bh, 0)
    fw = np.clip(full[:, 2], 0, W) - np.clip(full[:, 0], 0, W)
    fh = np.clip(full[:, 3], 0, H) - np.clip(full[:, 1], 0, H)
    full_area = (full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        visibility = np.where(full_area > 0, np.maximum(fw, 0) * np.maximum(fh, 0) / full_area, 0)
        aspect = np.maximum(bw / bh, bh / bw)
    keep = (area > 0) & (area >= opts.min_area) & (visibility >= opts.min_visibility)
    keep &= (bw >= opts.min_wh) & (bh >= opts.min_wh) & (aspect <= opts.max_aspect)
    idx = np.flatnonzero(keep)
    return _finish(t, rec, (H, W), box, idx, new_rings, inst, flip_idx, crop, semantic_out,
                   warped)  # fmt: skip


def _finish(t, rec, out_hw, box, idx, new_rings, inst, flip_idx, crop, semantic_out, warped):
    """The kept instances ``idx`` (boxes ``box`` in the output frame) with their keypoints,
    polygons, masks and the semantic mask: ``transform``'s result."""
    H, W = out_hw
    kp = None
    if t.keypoints is not None:
        kp = t.keypoints[idx].astype(np.float64)
        labelled = kp[..., 2] > 0
        xy = forward(rec, kp[..., :2].reshape(-1, 2), (H, W), crop).reshape(kp.shape[:2] + (2,))
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < W) & (xy[..., 1] >= 0) & (xy[..., 1] < H)
        kp[..., :2] = np.where(labelled[..., None], xy, 0.0)
        kp[..., 2] = np.where(labelled & inside, kp[..., 2], 0.0)
        if flip_idx is not None and mirrors(rec, crop):
            kp = kp[:, np.asarray(flip_idx)]
    sem = None
    if t.semantic is not None and warped is not None:
        sem = warped[0]
    elif t.semantic is not None:
        sem = warp_nearest(t.semantic, rec, (H, W), IGNORE, crop, semantic_out)
    out = Targets(box[idx], t.labels[idx], (H, W), iscrowd=t.iscrowd[idx], keypoints=kp,
                  semantic=sem)  # fmt: skip
    if t.keypoints is not None and out.keypoints is None:
        out.keypoints = np.zeros((0, t.n_keypoints, 3), np.float32)
    out.with_polygons([new_rings[j] for j in idx])
    out.masks = [inst[j] for j in idx]
    return out
