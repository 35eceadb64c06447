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

from augpipe.errors import ConfigError, bad_param
from augpipe.targets.core import IGNORE, Targets
from augpipe.targets.forward import forward, mirrors
from augpipe.targets.masks import instance_planes, mask_box, warp_nearest

_SUBDIV = 8  # points per edge when the map bends straight lines
_ELLIPSE = 32  # points on the inscribed ellipse


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
