"""The random draws of ``Mixup.params`` in a few calls: the same values as drawing each
stream on its own (``rng.uniforms`` per stream, ``vocab.gammas`` per Beta, the box in NumPy),
for a fraction of the cost (a batch's draws are a few hundred numbers, so the per-call
overhead of NumPy is what costs; ``Mixup.params`` runs once in the worker and once in the
main process per batch).

Every uniform the draws need (the switch/prob/box uniforms and the first Marsaglia-Tsang
tries of both Betas) comes from one compiled ``uniforms`` call (``rng.uniforms``' integer
arithmetic, exactly). The transcendental functions stay NumPy's (``log``, ``log1p``, ``cos``,
``**``: a compiled libm could differ in the last bit); the arithmetic around them is
compiled with the same float64 operations in the same order (no fastmath): the tries are
evaluated all at once and each sample takes its first accepted one, which is what
``gammas``' loop keeps. A sample that accepts in none of the first tries (rare) sends that
Beta back to ``gammas`` itself, so the values never differ. ``lam_boxes`` does the rest of
``params`` (switch, λ, box, area correction) per draw.

>>> u, lam_mix, lam_cut = mix_draws(seed, epoch, n, base, 0.8, 1.0)
>>> lam, cut, boxes = lam_boxes(u, lam_mix, lam_cut, True, True, 0.5, 1.0, 224, 224, ...)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from augpipe import rng
from augpipe.ops.policies.vocab import _FIRST_TRIES, gammas

UNIFORMS = (0, 5, 6, 7, 8, 9)  # offsets from ``base`` of the plain uniforms ``params`` reads
MIX, CUT = 1, 3  # offsets of the Mixup and CutMix Betas (streams s and s + 1000 each)


def _gamma_streams(streams: list[int], alpha: float) -> list[int]:
    """The uniform streams ``gammas(.., streams, alpha)`` reads in its first tries."""
    if alpha == 1.0:
        return list(streams)
    F = _FIRST_TRIES
    per = [(s + 8 * t + 1) * 2 + k for s in streams for t in range(F) for k in (1, 2)]
    per += [s + 8 * t + 2 for s in streams for t in range(F)]
    return per + ([s + 7 for s in streams] if alpha < 1.0 else [])


def _gammas_from(U: np.ndarray, streams, alpha: float, seed, epoch, idx) -> np.ndarray:
    """``gammas(seed, epoch, idx, streams, alpha)`` from its uniforms ``U`` (rows in
    ``_gamma_streams`` order); (len(streams), n)."""
    if alpha == 1.0:
        return -np.log1p(-U)
    S, F = len(streams), _FIRST_TRIES
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    k = S * F
    x = rng.box_muller(U[0 : 2 * k : 2], U[1 : 2 * k : 2])
    u = U[2 * k : 3 * k]
    v = (1.0 + c * x) ** 3
    with np.errstate(invalid="ignore", divide="ignore"):
        logu = np.log(np.maximum(u, 1e-300))
        logv = np.log(np.where(v > 0, v, 1.0))
    out, accepted = _first_accepted(x, v, logu, logv, d, S, F)
    if not accepted:  # a sample needs a later try: gammas' own loop
        return gammas(seed, epoch, idx, list(streams), alpha)
    if alpha < 1.0:
        out = out * (1.0 - U[3 * k :]) ** (1.0 / alpha)
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _first_accepted(x, v, logu, logv, d, S, F):
    """Marsaglia-Tsang's acceptance, tries t < F of stream s in row s * F + t (``gammas``'
    test, the same float64 operations in the same order): (d * v of each sample's first
    accepted try, (S, n); False if a sample accepted in none)."""
    n = x.shape[1]
    out = np.empty((S, n))
    for s in range(S):
        for i in range(n):
            for t in range(F):
                r = s * F + t
                vv, xx = v[r, i], x[r, i]
                if vv > 0 and logu[r, i] < 0.5 * xx * xx + d - d * vv + d * logv[r, i]:
                    out[s, i] = d * vv
                    break
            else:
                return out, False
    return out, True


def mix_draws(seed: int, epoch: int, n: int, base: int, mix_alpha: float, cut_alpha: float):
    """(uniforms (6, n) of the streams base + ``UNIFORMS``, λ Mixup or None, λ CutMix or
    None): the
    Betas ``x / (x + y)`` of gammas on streams (base + MIX, base + MIX + 1000) and
    (base + CUT, base + CUT + 1000), None where that alpha is 0."""
    idx = np.arange(n, dtype=np.int64)
    betas = [(o, alpha, [base + o, base + o + 1000])
             for o, alpha in ((MIX, mix_alpha), (CUT, cut_alpha)) if alpha > 0]  # fmt: skip
    streams = [base + o for o in UNIFORMS]
    spans = []
    for _, alpha, ss in betas:
        extra = _gamma_streams(ss, alpha)
        spans.append((len(streams), len(streams) + len(extra)))
        streams += extra
    U = uniforms(seed, epoch, n, streams)
    lam = {}
    for (o, alpha, ss), (lo, hi) in zip(betas, spans):
        g = _gammas_from(U[lo:hi], ss, alpha, seed, epoch, idx)
        lam[o] = g[0] / (g[0] + g[1])
    return U[: len(UNIFORMS)], lam.get(MIX), lam.get(CUT)


@njit(nogil=True, cache=True, error_model="numpy")
def _randint(u, lo, hi):
    """numpy.random.randint(lo, hi) from a uniform u (hi > lo; else lo), as before in NumPy:
    ``lo + floor(u * (hi - lo))`` in float64, truncated to int64."""
    hi = max(hi, lo + 1)
    return np.int64(lo + np.floor(u * (hi - lo)))


@njit(nogil=True, cache=True, error_model="numpy")
def lam_boxes(u, lam_mix, lam_cut, both, cut_on, switch_prob, prob, H, W, minmax, lo_hi,
              correct_lam):  # fmt: skip
    """The rest of ``Mixup.params`` per draw, exact IEEE float64 (no transcendental): which
    draws cut, λ (a Mixup λ rounded to a multiple of 1/256, the weight the pixels get), the
    CutMix box (y0, y1, x0, x1) and λ corrected to its area. ``u``: (6, n),
    the uniforms of ``UNIFORMS`` in order; ``lo_hi``: int(H*lo), int(H*hi), int(W*lo), int(W*hi) of
    ``cutmix_minmax``. Returns (lam (n,) float64, cut (n,) bool, boxes (n, 4) int64)."""
    n = lam_mix.shape[0]
    lam = np.empty(n)
    cut = np.empty(n, np.bool_)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        c = u[0, i] < switch_prob if both else cut_on
        on = u[1, i] < prob
        v = (lam_cut[i] if c else lam_mix[i]) if on else 1.0
        c = c and on and v < 1.0
        if minmax:
            ch = _randint(u[2, i], lo_hi[0], lo_hi[1])
            cw = _randint(u[3, i], lo_hi[2], lo_hi[3])
            y0 = _randint(u[4, i], 0, H - ch)
            x0 = _randint(u[5, i], 0, W - cw)
            y1, x1 = y0 + ch, x0 + cw
        else:
            r = np.sqrt(1.0 - v)
            ch, cw = np.int64(H * r), np.int64(W * r)
            cy, cx = _randint(u[2, i], 0, H), _randint(u[3, i], 0, W)
            y0, y1 = min(max(cy - ch // 2, 0), H), min(max(cy + ch // 2, 0), H)
            x0, x1 = min(max(cx - cw // 2, 0), W), min(max(cx + cw // 2, 0), W)
        if c and (correct_lam or minmax):
            v = 1.0 - ((y1 - y0) * (x1 - x0)) / np.float64(H * W)
        elif not c:  # Mixup: λ on the blend's grid (augpipe.ops.batch.blend), exact in float32
            v = np.rint(v * 256.0) / 256.0
        lam[i], cut[i] = v, c
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = y0, y1, x0, x1
    return lam, cut, boxes


_G, _M1, _M2 = rng._GOLDEN, rng._M1, rng._M2


@njit(nogil=True, cache=True)
def _splitmix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(nogil=True, cache=True)
def _uniforms(base, streams, n):
    """``rng.uniforms`` for indices 0..n-1 (``base``: the (seed, epoch) part of the key, as
    ``rng.uniforms`` computes it): the same uint64 arithmetic (wrapping) and float64 scaling."""
    out = np.empty((streams.shape[0], n))
    for s in range(streams.shape[0]):
        key = _splitmix(base ^ (streams[s] * _M2 + _G))
        for i in range(n):
            z = _splitmix((np.uint64(i) * _G) ^ key)
            out[s, i] = np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return out


def uniforms(seed: int, epoch: int, n: int, streams) -> np.ndarray:
    """``rng.uniforms(seed, epoch, np.arange(n), streams)``, compiled (one call instead of a
    dozen NumPy passes; the values are the same: integer arithmetic and one exact scaling)."""
    g, m1, u64 = int(_G), int(_M1), (1 << 64) - 1
    base = rng._mix_int(rng._mix_int((seed + g) & u64) ^ (((epoch & u64) * g + m1) & u64))
    keys = np.array([int(s) & u64 for s in streams], dtype=np.uint64)
    return _uniforms(np.uint64(base), keys, int(n))
