"""RandomPerspective: torchvision's random corner displacement, as one 3x3 map of the warp.

The four corners of the frame (W x H, at that point of the pipeline) move inwards by random
whole pixels, at most ``distortion_scale`` times half the side, drawn as torchvision v2 draws
them (``randint(0, int(d * (W // 2)) + 1)`` from each side). The map sending the moved corners
back to the original ones is solved as ``torchvision.transforms.functional._get_perspective_coeffs``
solves it (8 equations, corner positions in pixel-centre units applied to edge coordinates, as
torchvision's tensor kernel and Pillow do) and enters the fused warp as a 3x3 inverse map like
every geometric op's; the kernel divides by the homogeneous w per pixel only for such maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.ops.base import Op, number, probability
from augpipe.ops.detection.letterbox import check_fill


def _system(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = start.shape[0]
    A = np.zeros((n, 8, 8))
    x, y = end[..., 0], end[..., 1]
    u, v = start[..., 0], start[..., 1]
    A[:, 0::2, 0], A[:, 0::2, 1], A[:, 0::2, 2] = x, y, 1.0
    A[:, 0::2, 6], A[:, 0::2, 7] = -u * x, -u * y
    A[:, 1::2, 3], A[:, 1::2, 4], A[:, 1::2, 5] = x, y, 1.0
    A[:, 1::2, 6], A[:, 1::2, 7] = -v * x, -v * y
    return A, start.reshape(n, 8)


def perspective_coeffs(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N, 8): per sample the coefficients (a..h) of ``x' = (a x + b y + c) / (g x + h y + 1)``,
    ``y' = (d x + e y + f) / (g x + h y + 1)`` sending ``end`` (N, 4, 2) to ``start`` (N, 4, 2),
    the system torchvision's ``_get_perspective_coeffs`` solves (here in float64). It has no
    solution where the map's constant term is 0 (``end``'s origin on the horizon): see
    ``perspective_maps``."""
    A, b = _system(start, end)
    return np.linalg.solve(A, b[..., None])[..., 0]


def perspective_maps(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N, 3, 3) the maps sending ``end`` to ``start`` on edge coordinates: torchvision's
    8-coefficient solve, and where that system is singular (the point (0, 0) of ``end`` maps to
    infinity, which happens for whole-pixel corner draws) the same map from the null space of
    the full 8 x 9 system, which needs no normalisation."""
    A, b = _system(start, end)
    n = A.shape[0]
    out = np.empty((n, 3, 3))
    rank = np.linalg.matrix_rank(A)
    ok = rank == 8
    if ok.any():
        c = np.linalg.solve(A[ok], b[ok][..., None])[..., 0]
        out[ok] = np.concatenate([c, np.ones((c.shape[0], 1))], axis=1).reshape(-1, 3, 3)
    for j in np.flatnonzero(~ok):  # rare: the homogeneous DLT system, 8 x 9
        M = np.concatenate([A[j], -b[j][:, None]], axis=1)  # A h + (-b) h33 = 0
        h = np.linalg.svd(M)[2][-1]
        out[j] = h.reshape(3, 3)
    return out


def convex(quad: np.ndarray) -> np.ndarray:
    """(N,) whether each quadrilateral (N, 4, 2), corners in order, is strictly convex."""
    e = np.roll(quad, -1, axis=1) - quad
    f = np.roll(e, -1, axis=1)
    cross = e[..., 0] * f[..., 1] - e[..., 1] * f[..., 0]
    return np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)


def centred_map(C: np.ndarray, end: np.ndarray, out_hw) -> np.ndarray:
    """(N, 3, 3) maps on edge coordinates -> (N, 3, 3) the same maps on the frame centred
    on the output (``augpipe.ops.params``), scaled so that w = 1 at the centroid of the moved
    corners ``end`` (N, 4, 2): w > 0 on the quadrilateral that maps onto the source, the side
    of the horizon the kernel samples."""
    H, W = out_hw
    T = np.array([[1.0, 0.0, W / 2], [0.0, 1.0, H / 2], [0.0, 0.0, 1.0]])
    Ti = np.array([[1.0, 0.0, -W / 2], [0.0, 1.0, -H / 2], [0.0, 0.0, 1.0]])
    G = Ti @ C @ T
    c = end.mean(axis=1) - (W / 2, H / 2)  # (the coefficients act on edge coordinates)
    w = G[:, 2, 0] * c[:, 0] + G[:, 2, 1] * c[:, 1] + G[:, 2, 2]
    return G / w[:, None, None]


@dataclass(frozen=True)
class RandomPerspective(Op):
    """With probability ``p``, a random perspective: torchvision v2's ``RandomPerspective``
    (each corner moves inwards by up to ``distortion_scale`` x half the side, in whole pixels;
    0 is the identity). Areas that come from outside the source get ``fill`` (a grey level;
    ``Compose(fill=...)`` or the sizing op's fill when this is None). Boxes, masks and keypoints
    follow the same map (``augpipe.targets``).

    >>> Compose([RandomResizedCrop(224), RandomPerspective(distortion_scale=0.5, p=0.5)])
    """

    distortion_scale: float = 0.5
    p: float = 0.5
    fill: int | None = None
    kind: ClassVar[str] = "geometry"

    def __post_init__(self):
        number("RandomPerspective.distortion_scale", self.distortion_scale, 0.0, 1.0)
        probability("RandomPerspective.p", self.p)
        if self.fill is not None:
            check_fill("RandomPerspective.fill", self.fill)

    def corners(self, indices, seed: int, epoch: int, pos: int, out_hw):
        """(start, end): (N, 4, 2) the frame's corners (x, y) top-left, top-right,
        bottom-right, bottom-left, and where each moves to (torchvision's endpoints)."""
        H, W = (int(v) for v in out_hw)
        n = len(indices)
        bh = int(self.distortion_scale * (H // 2)) + 1
        bw = int(self.distortion_scale * (W // 2)) + 1

        def randint(slot, lo, hi):  # uniform integers in [lo, hi), as torch.randint
            if hi - lo <= 1:
                return np.full(n, float(lo))
            u = rng.uniform(seed, epoch, indices, rng.stream_id(pos, slot))
            return np.minimum(lo + np.floor(u * (hi - lo)), hi - 1)

        end = np.empty((n, 4, 2))
        end[:, 0] = np.stack([randint(0, 0, bw), randint(1, 0, bh)], axis=1)
        end[:, 1] = np.stack([randint(2, W - bw, W), randint(3, 0, bh)], axis=1)
        end[:, 2] = np.stack([randint(4, W - bw, W), randint(5, H - bh, H)], axis=1)
        end[:, 3] = np.stack([randint(6, 0, bw), randint(7, H - bh, H)], axis=1)
        start = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], np.float64)
        start = np.broadcast_to(start, (n, 4, 2)).copy()
        if self.p < 1:
            on = rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 8), self.p)
            end[~on] = start[~on]
        return start, end

    def matrices(self, indices, seed: int, epoch: int, pos: int, out_hw) -> np.ndarray:
        start, end = self.corners(indices, seed, epoch, pos, out_hw)
        H, W = (int(v) for v in out_hw)
        n = len(indices)
        out = np.tile(np.eye(3), (n, 1, 1))
        moved = np.any(end != start, axis=(1, 2))  # the exact identity where nothing moved
        # no perspective where the frame is a line (H or W < 2) or the drawn corners do not
        # make a strictly convex quadrilateral (two corners meet at distortion_scale ~1): no
        # map sends them back (torchvision's solve fails there)
        moved &= (H >= 2) & (W >= 2) & convex(end)
        if moved.any():
            out[moved] = centred_map(perspective_maps(start[moved], end[moved]), end[moved], out_hw)
        return out
