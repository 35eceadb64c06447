"""The random draws of ``Mixup.params``, one compiled call per batch.

A batch's draws are a few hundred numbers, so what costs is the number of calls (in a loader
worker, right after the fused pass, the first NumPy calls of a batch run with cold caches:
the dozen NumPy passes this replaced took ~200 µs per batch there). ``mix_params`` draws,
per draw i, the uniforms of streams ``base + 0, 5..9`` and the Betas ``x / (x + y)`` of two
Gammas on streams (base + 1, base + 1001) for Mixup and (base + 3, base + 1003) for CutMix,
then does the rest of ``Mixup.params`` (switch, λ, box, area correction, λ on the blend's
grid) and spreads the draws over the batch by mode.

The streams and the arithmetic are ``augpipe.rng``'s and ``vocab.gammas``' (the uniforms'
integer hash exactly; Marsaglia-Tsang's tries t = 0..15 on streams s + 8t + 1 (a normal: two
uniforms) and s + 8t + 2, the first accepted try kept, the mode if none; α < 1 boosted by the
uniform on s + 7). The float64 operations are the same in the same order (no fastmath); the
transcendental functions are the C library's (NumPy's SIMD ``log``/``cos`` can differ from it
in the last bit, so a λ can differ from ``gammas``' by an ulp; tests compare both).

>>> lam, cut, boxes = mix_params(key, base, n, B, mode, 0.8, 1.0, True, True, 0.5, 1.0,
...                              224, 224, False, lo_hi, True)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe import rng

UNIFORMS = (0, 5, 6, 7, 8, 9)  # offsets from ``base`` of the plain uniforms ``params`` reads
MIX, CUT = 1, 3  # offsets of the Mixup and CutMix Betas (streams s and s + 1000 each)
MODES = {"batch": 0, "pair": 1, "elem": 2}
_G, _M1, _M2 = rng._GOLDEN, rng._M1, rng._M2
_U64 = (1 << 64) - 1
_JIT = dict(nogil=True, cache=True, error_model="numpy")


def epoch_key(seed: int, epoch: int) -> np.uint64:
    """The (seed, epoch) part of every stream's key (``rng._key``'s first two rounds)."""
    g, m1 = int(_G), int(_M1)
    return np.uint64(rng._mix_int(rng._mix_int((seed + g) & _U64) ^ (((epoch & _U64) * g + m1)
                                                                      & _U64)))  # fmt: skip


@njit(**_JIT)
def _splitmix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**_JIT)
def _uniform(key, stream, i):
    """``rng.uniform`` of index i on ``stream`` (uint64; ``key``: ``epoch_key``)."""
    s = _splitmix(key ^ (stream * _M2 + _G))
    z = _splitmix((np.uint64(i) * _G) ^ s)
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**_JIT)
def _gamma(key, s, i, alpha):
    """``vocab.gamma``'s Gamma(alpha, 1) of index i on stream s."""
    if alpha == 1.0:
        return -np.log1p(-_uniform(key, s, i))
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = d  # the mode, for the (vanishingly rare) sample no try accepts
    one, two = np.uint64(1), np.uint64(2)
    for t in range(16):
        st = s + np.uint64(8 * t + 1)
        r = np.sqrt(-2.0 * np.log1p(-_uniform(key, st * two + one, i)))
        x = r * np.cos(2.0 * np.pi * _uniform(key, st * two + two, i))
        u = _uniform(key, s + np.uint64(8 * t + 2), i)
        v = (1.0 + c * x) ** 3.0
        if v > 0 and np.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * np.log(v):
            out = d * v
            break
    if alpha < 1.0:
        out = out * (1.0 - _uniform(key, s + np.uint64(7), i)) ** (1.0 / alpha)
    return out


@njit(**_JIT)
def _beta(key, s, i, alpha):
    x = _gamma(key, s, i, alpha)
    y = _gamma(key, s + np.uint64(1000), i, alpha)
    return x / (x + y)


@njit(**_JIT)
def betas(key, s, n, alpha):
    """Beta(alpha, alpha) of indices 0..n-1 on streams (s, s + 1000), (n,) float64."""
    out = np.empty(n)
    for i in range(n):
        out[i] = _beta(key, s, i, alpha)
    return out


@njit(**_JIT)
def _randint(u, lo, hi):
    """numpy.random.randint(lo, hi) from a uniform u (hi > lo; else lo), as before in NumPy:
    ``lo + floor(u * (hi - lo))`` in float64, truncated to int64."""
    hi = max(hi, lo + 1)
    return np.int64(lo + np.floor(u * (hi - lo)))


@njit(**_JIT)
def mix_params(key, base, n, B, mode, mix_a, cut_a, both, cut_on, switch_prob, prob, H, W,
               minmax, lo_hi, correct_lam):  # fmt: skip
    """``Mixup.params``: n draws on the streams from ``base`` (uint64), spread over the batch of
    B by ``mode`` (``MODES``). ``lo_hi``: int(H*lo), int(H*hi), int(W*lo), int(W*hi) of
    ``cutmix_minmax``. Returns (lam (B,) float32, cut (B,) bool, boxes (B, 4) int64: y0 y1 x0
    x1); a Mixup λ is rounded to a multiple of 1/256 (the blend's weight: exact in float32)."""
    lam = np.empty(n)
    cut = np.empty(n, np.bool_)
    boxes = np.empty((n, 4), np.int64)
    ub = np.empty(6)
    for i in range(n):
        for k in range(6):
            ub[k] = _uniform(key, base + np.uint64(UNIFORMS[k]), i)
        c = ub[0] < switch_prob if both else cut_on
        on = ub[1] < prob
        v = 1.0
        if on:
            if c:
                v = _beta(key, base + np.uint64(CUT), i, cut_a) if cut_a > 0 else 1.0
            else:
                v = _beta(key, base + np.uint64(MIX), i, mix_a) if mix_a > 0 else 1.0
        c = c and on and v < 1.0
        if minmax:
            ch = _randint(ub[2], lo_hi[0], lo_hi[1])
            cw = _randint(ub[3], lo_hi[2], lo_hi[3])
            y0 = _randint(ub[4], 0, H - ch)
            x0 = _randint(ub[5], 0, W - cw)
            y1, x1 = y0 + ch, x0 + cw
        else:
            r = np.sqrt(1.0 - v)
            ch, cw = np.int64(H * r), np.int64(W * r)
            cy, cx = _randint(ub[2], 0, H), _randint(ub[3], 0, W)
            y0, y1 = min(max(cy - ch // 2, 0), H), min(max(cy + ch // 2, 0), H)
            x0, x1 = min(max(cx - cw // 2, 0), W), min(max(cx + cw // 2, 0), W)
        if c and (correct_lam or minmax):
            v = 1.0 - ((y1 - y0) * (x1 - x0)) / np.float64(H * W)
        elif not c:  # Mixup: λ on the blend's grid (augpipe.ops.batch.blend), exact in float32
            v = np.rint(v * 256.0) / 256.0
        lam[i], cut[i] = v, c
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = y0, y1, x0, x1
    out_lam = np.empty(B, np.float32)
    out_cut = np.empty(B, np.bool_)
    out_boxes = np.empty((B, 4), np.int64)
    for i in range(B):  # batch: draw 0 for all; pair: i and B-1-i share one; elem: one each
        r = 0 if mode == 0 else (min(min(i, B - 1 - i), n - 1) if mode == 1 else i)
        out_lam[i], out_cut[i] = np.float32(lam[r]), cut[r]
        for k in range(4):
            out_boxes[i, k] = boxes[r, k]
    return out_lam, out_cut, out_boxes


@njit(**_JIT)
def _uniforms(key, streams, n):
    out = np.empty((streams.shape[0], n))
    for s in range(streams.shape[0]):
        for i in range(n):
            out[s, i] = _uniform(key, streams[s], i)
    return out


def uniforms(seed: int, epoch: int, n: int, streams) -> np.ndarray:
    """``rng.uniforms(seed, epoch, np.arange(n), streams)``, compiled (the same values: integer
    arithmetic and one exact scaling)."""
    keys = np.array([int(s) & _U64 for s in streams], dtype=np.uint64)
    return _uniforms(epoch_key(seed, epoch), keys, int(n))
