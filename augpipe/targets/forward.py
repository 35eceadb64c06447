"""The forward map: source edge coordinates -> output edge coordinates, from a sample's record.

The kernel holds the inverse (output -> source): a centred output point X goes through ``A1``,
the radial lens ``(1 + k |u|^2 / R^2)`` (R the output's half-diagonal) and ``A2`` to a source
edge coordinate (``augpipe.ops.params``). Targets need the other direction, so here the 3x3
matrices are inverted analytically (adjugate / determinant, homogeneous division so a full
perspective row works too) and the lens per point by Newton's method on
``r (1 + c r^2) = r'``. Output coordinates are edge coordinates: pixel i covers [i, i + 1).

>>> xy = forward(rec, np.array([[10.0, 20.0]]), out_hw=(224, 224))
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NEWTON = 30


def inv3(m: np.ndarray) -> np.ndarray:
    """The inverse of a 3x3 matrix by its adjugate (exact for the integer and +-1 entries of
    crops, flips and shifts). Plain scalar code: ``inv3_jit`` is the same function compiled."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 0], m[1, 1], m[1, 2]
    g, h, i = m[2, 0], m[2, 1], m[2, 2]
    A, B, C = e * i - f * h, -(d * i - f * g), d * h - e * g
    det = a * A + b * B + c * C
    adj = np.empty((3, 3))
    adj[0, 0], adj[0, 1], adj[0, 2] = A, -(b * i - c * h), b * f - c * e
    adj[1, 0], adj[1, 1], adj[1, 2] = B, a * i - c * g, -(a * f - c * d)
    adj[2, 0], adj[2, 1], adj[2, 2] = C, -(a * h - b * g), a * e - b * d
    if det == 1.0:
        return adj
    return adj / det


def apply_h(m: np.ndarray, x: np.ndarray, y: np.ndarray):
    """(x, y) through the 3x3 ``m`` with homogeneous division (a no-op for affine rows);
    arrays or scalars (``apply_point``: the same function compiled, for scalars in Numba)."""
    u = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    v = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    if m[2, 0] == 0.0 and m[2, 1] == 0.0 and m[2, 2] == 1.0:
        return u, v
    w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return u / w, v / w


apply_point = njit(nogil=True, cache=True, error_model="numpy")(apply_h)
inv3_jit = njit(nogil=True, cache=True, error_model="numpy")(inv3)


def unlens(u: np.ndarray, v: np.ndarray, c: float):
    """Solve r (1 + c r^2) = r' for each point (Newton), keep the direction. For c < 0 the map
    folds beyond r* = sqrt(-1 / 3c) (outside the frame for the k the op allows): points past
    the fold's image are pushed outwards proportionally, so they stay outside the frame."""
    rp = np.hypot(u, v)
    if c == 0.0 or rp.size == 0:
        return u, v
    r = rp.copy()
    if c < 0:
        rstar = np.sqrt(-1.0 / (3.0 * c))
        gstar = rstar * (1.0 + c * rstar * rstar)
        r = np.minimum(r, rstar)
    for _ in range(_NEWTON):
        f = r * (1.0 + c * r * r) - rp
        d = 1.0 + 3.0 * c * r * r
        step = f / np.where(d > 1e-12, d, 1e-12)
        r = r - step
        if c < 0:
            r = np.clip(r, 0.0, rstar)
        if np.max(np.abs(step)) < 1e-10:
            break
    if c < 0:
        past = rp > gstar
        r = np.where(past, rstar * rp / gstar, r)
    s = np.where(rp > 0, r / np.where(rp > 0, rp, 1.0), 1.0)
    return u * s, v * s


def source_map(rec, crop: int = 0) -> np.ndarray:
    """The record's matrix after the lens: ``A2 G`` (G, ``geo``: a policy's geometry, applied
    in the same resampling; the identity when the record has none)."""
    a2 = np.asarray(rec["A2"][crop], np.float64)
    names = rec.dtype.names or ()
    return a2 @ np.asarray(rec["geo"], np.float64) if "geo" in names else a2


def source_maps(recs, crop: int = 0) -> np.ndarray:
    """``source_map`` of every record of a batch at once: (N, 3, 3)."""
    recs = np.asarray(recs).reshape(-1)
    a2 = np.asarray(recs["A2"][:, crop], np.float64)
    return a2 @ np.asarray(recs["geo"], np.float64) if "geo" in (recs.dtype.names or ()) else a2


def forward(rec, xy: np.ndarray, out_hw, crop: int = 0) -> np.ndarray:
    """(P, 2) source edge coordinates (x, y) of the record's image -> output edge coordinates."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    H, W = out_hw
    u, v = apply_h(inv3(source_map(rec, crop)), xy[:, 0], xy[:, 1])
    k = float(rec["k"])
    if k != 0.0:
        u, v = unlens(u, v, k / ((W / 2) ** 2 + (H / 2) ** 2))
    X, Y = apply_h(inv3(np.asarray(rec["A1"], np.float64)), u, v)
    return np.stack([X + W / 2, Y + H / 2], axis=1)


def is_affine(rec, crop: int = 0) -> bool:
    """True when the whole map is affine (no lens, no perspective row): straight edges stay
    straight, so transforming corners and vertices is exact."""
    a2, a1 = source_map(rec, crop), rec["A1"]
    return (float(rec["k"]) == 0.0 and a2[2, 0] == 0 and a2[2, 1] == 0 and a1[2, 0] == 0
            and a1[2, 1] == 0)  # fmt: skip


def mirrors(rec, crop: int = 0) -> bool:
    """True when the map reverses orientation (an odd number of flips): left/right swap."""
    return np.linalg.det(source_map(rec, crop)) * np.linalg.det(rec["A1"]) < 0
