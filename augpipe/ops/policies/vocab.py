"""The policy op vocabulary and how drawn (op, value) slots become a record's geometry and steps.

A policy's draw is two (n, L) arrays: ``kinds`` (codes below) and ``values`` (the op's final
argument: degrees, shear factor, pixels, enhance factor, bits, threshold). Geometric kinds
compose, in order, into one inverse map (centred output frame -> centred crop frame, pixel
units); every other kind becomes one program step (``augpipe.ops.pixel.program``).

Geometry conventions (both libraries): rotation counter-clockwise for positive degrees about
the centre; shear about the top-left corner, ``x_in = x + f y`` (PIL's ``(1, f, 0, 0, 1, 0)``,
torchvision's ``shear=atan(f)`` with ``center=[0, 0]``); translation by whole or fractional
pixels.
"""

from __future__ import annotations

import numpy as np

from augpipe import rng
from augpipe.ops.pixel import program as P

IDENTITY = 0
ROTATE = 1
SHEAR_X = 2
SHEAR_Y = 3
TRANSLATE_X = 4
TRANSLATE_Y = 5
# step kinds: 100 + program code (CONTRAST_TV: torchvision's float grey mean)
STEP = 100
CONTRAST_TV = 99

GEOMETRY = (ROTATE, SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y)
GEO_NAMES = {ROTATE: "Rotate", SHEAR_X: "ShearX", SHEAR_Y: "ShearY", TRANSLATE_X: "TranslateX",
             TRANSLATE_Y: "TranslateY", IDENTITY: "Identity", CONTRAST_TV: "Contrast"}  # fmt: skip


def step(code: int) -> int:
    return STEP + code


def geometry(kinds: np.ndarray, values: np.ndarray, out_hw) -> np.ndarray:
    """(n, 3, 3): the composed inverse map of the geometric slots (identity where none)."""
    n, L = kinds.shape
    H, W = out_hw
    G = np.tile(np.eye(3), (n, 1, 1))
    for j in range(L):
        k, v = kinds[:, j], values[:, j]
        if not np.any(np.isin(k, GEOMETRY)):
            continue
        m = np.tile(np.eye(3), (n, 1, 1))
        r = np.deg2rad(np.where(k == ROTATE, v, 0.0))
        c, s = np.cos(r), np.sin(r)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
        sx = k == SHEAR_X
        m[sx, 0, 1] = v[sx]
        m[sx, 0, 2] = v[sx] * H / 2
        sy = k == SHEAR_Y
        m[sy, 1, 0] = v[sy]
        m[sy, 1, 2] = v[sy] * W / 2
        m[k == TRANSLATE_X, 0, 2] = v[k == TRANSLATE_X]
        m[k == TRANSLATE_Y, 1, 2] = v[k == TRANSLATE_Y]
        G = G @ m  # the earlier op's map is applied last to output coordinates
    return G


def steps(kinds: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, L) step codes and (n, L, 4) arguments: NOP for geometric and identity slots."""
    codes = np.where(kinds >= STEP, kinds - STEP, 0).astype(np.int8)
    args = np.zeros(kinds.shape + (4,), np.float32)
    args[..., 0] = np.where(kinds >= STEP, values, 0.0)
    tv = kinds == CONTRAST_TV
    codes[tv] = P.CONTRAST
    args[..., 0][tv] = values[tv]
    args[..., 1][tv] = 1.0
    return codes, args


def assemble(kinds, values, out_hw, fill) -> dict:
    """The ``policy`` dict ``augpipe.ops.params`` expects from a policy op."""
    G = geometry(kinds, values, out_hw)
    codes, args = steps(kinds, values)
    clip = np.any(np.isin(kinds, GEOMETRY), axis=1)
    return {"geo": G, "clip": clip, "fill": fill, "codes": codes, "args": args}


def describe(kinds_row, values_row) -> list[str]:
    """Names and magnitudes of one sample's applied slots (preview captions)."""
    out = []
    for k, v in zip(kinds_row, values_row):
        k = int(k)
        if k == IDENTITY and np.isnan(v):
            continue  # a skipped slot (probability not drawn)
        if k >= STEP:
            name = P.NAMES[k - STEP]
            if k - STEP in (P.EQUALIZE, P.AUTOCONTRAST, P.INVERT, P.GRAYSCALE):
                out.append(name)
                continue
        else:
            name = GEO_NAMES[k]
            if k == IDENTITY:
                out.append(name)
                continue
        out.append(f"{name}({float(v):.3g})")
    return out


def choice(seed, epoch, indices, stream, n_options: int) -> np.ndarray:
    """A uniform integer in [0, n_options) per index."""
    u = rng.uniform(seed, epoch, indices, stream)
    return np.minimum((u * n_options).astype(np.int64), n_options - 1)


def weighted_choice(seed, epoch, indices, stream, weights) -> np.ndarray:
    """An index drawn with the given (unnormalised) weights, per sample."""
    cdf = np.cumsum(np.asarray(weights, np.float64))
    u = rng.uniform(seed, epoch, indices, stream) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def gamma(seed, epoch, indices, stream, alpha: float) -> np.ndarray:
    """Gamma(alpha, 1) draws (Marsaglia-Tsang, 16 vectorised tries; alpha < 1 boosted).

    Try t uses ``normal(stream + 8t + 1)`` and ``uniform(stream + 8t + 2)``."""
    return gammas(seed, epoch, indices, [stream], alpha)[0]


def gammas(seed, epoch, indices, streams, alpha: float) -> np.ndarray:
    """``gamma`` for each stream of ``streams``, stacked (len(streams), len(indices)): the
    first tries (nearly every sample accepts in them) of all the streams are drawn in one
    ``rng.uniforms`` pass, later ones only while a sample is still open; the same values as
    one stream at a time."""
    S, n = len(streams), len(indices)
    if alpha == 1.0:
        return -np.log1p(-rng.uniforms(seed, epoch, indices, streams))
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.full((S, n), d)  # the mode, for the (vanishingly rare) sample no try accepts
    done = np.zeros((S, n), dtype=bool)
    first = _FIRST_TRIES
    per = [(s + 8 * t + 1) * 2 + k for s in streams for t in range(first) for k in (1, 2)]
    per += [s + 8 * t + 2 for s in streams for t in range(first)]
    per += [s + 7 for s in streams] if alpha < 1.0 else []
    U = rng.uniforms(seed, epoch, indices, per)
    k = S * first
    xs = rng.box_muller(U[0 : 2 * k : 2], U[1 : 2 * k : 2]).reshape(S, first, n)
    us = U[2 * k : 3 * k].reshape(S, first, n)
    for t in range(16):
        if t < first:
            x, u = xs[:, t], us[:, t]
        else:
            x = np.stack([rng.normal(seed, epoch, indices, s + 8 * t + 1) for s in streams])
            u = np.stack([rng.uniform(seed, epoch, indices, s + 8 * t + 2) for s in streams])
        v = (1.0 + c * x) ** 3
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (v > 0) & (np.log(np.maximum(u, 1e-300)) < 0.5 * x * x + d - d * v
                            + d * np.log(np.where(v > 0, v, 1.0)))  # fmt: skip
        new = ok & ~done
        out[new] = d * v[new]
        done |= ok
        if done.all():  # later tries only fill samples not yet accepted: same values
            break
    if alpha < 1.0:
        out = out * (1.0 - U[3 * k :]) ** (1.0 / alpha)
    return out


_FIRST_TRIES = 3
