"""Mixup/CutMix on a uint8 NHWC batch, in place: the pixel work of ``Mixup`` on the host.

Sample i mixes with its partner j = B-1-i, so the batch splits into pairs (i, j) whose two
outputs depend only on the pair's two inputs. One compiled call walks the pairs; each pair is
one pass that reads both images once and writes both results over them (no copy of the batch,
no temporary). Per output the rule is constant over a run of pixels: keep, take the partner's
original pixel (inside a CutMix box) or blend, so a pair without a box is one flat loop and a
pair with boxes is cut, row by row, into at most five runs at the boxes' edges.

The blend is timm's and the previous NumPy path's to the bit: float32 ``a * w + b * (1 - w)``
(``1 - w`` in float32, no fused multiply-add), rounded half to even. The rounding adds
``1.5 * 2**23`` and keeps the low byte of the float's bit pattern, which is ``rint(v)`` for
``0 <= v < 2**22`` (``v`` never reaches 255.5 here: ``w + fl(1 - w) <= 1 + 2**-24``), so no
subtract, clamp or float-to-int conversion is needed.

>>> mix_inplace(images, lam, cut, boxes)  # images: (B, H, W, 3) uint8, C-contiguous
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from augpipe.errors import bad_param

# exact float32 arithmetic (fastmath would contract a*w + b into an FMA and change the rounding)
_EXACT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)
# 1.5 * 2**23: the low mantissa bits of v + R hold v rounded half to even (0 <= v < 2**22)
_ROUND = np.float32(12582912.0)
KEEP, TAKE, BLEND = 0, 1, 2  # what an output pixel becomes


def round_u8(v):
    """A float32 blend value (0 <= v < 255.5) rounded half to even, as uint8. Pure Python
    (what runs with ``NUMBA_DISABLE_JIT=1``); compiled: the low byte of ``v + 1.5 * 2**23``."""
    return np.uint8(np.rint(np.float32(v)))


@intrinsic
def _bits(typingctx, v):
    """The bit pattern of a float32, as uint32 (no conversion)."""
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@overload(round_u8)
def _round_u8_jit(v):
    def impl(v):
        return np.uint8(_bits(v + _ROUND))

    return impl


@njit(**_EXACT)
def _run(a, b, lo, hi, ri, rj, wi, wj):
    """Pixels [lo, hi) of the pair's rows a (sample i) and b (its partner j), in place: each
    output by its rule (KEEP, TAKE the partner's original, BLEND with weight wi / wj)."""
    # unsigned indices: a signed one keeps Numba's negative-index wraparound select in the
    # loop, which stops LLVM from vectorising it (and slicing per run costs more than a row)
    lo, hi = np.uint64(lo), np.uint64(hi)
    wi1 = np.float32(1.0) - wi
    wj1 = np.float32(1.0) - wj
    if ri == BLEND and rj == BLEND:
        for k in range(lo, hi):
            fa = np.float32(a[k])
            fb = np.float32(b[k])
            a[k] = round_u8(fa * wi + fb * wi1)
            b[k] = round_u8(fb * wj + fa * wj1)
    elif ri == BLEND:
        if rj == TAKE:
            for k in range(lo, hi):
                ta = a[k]
                a[k] = round_u8(np.float32(ta) * wi + np.float32(b[k]) * wi1)
                b[k] = ta
        else:
            for k in range(lo, hi):
                a[k] = round_u8(np.float32(a[k]) * wi + np.float32(b[k]) * wi1)
    elif rj == BLEND:
        if ri == TAKE:
            for k in range(lo, hi):
                tb = b[k]
                b[k] = round_u8(np.float32(tb) * wj + np.float32(a[k]) * wj1)
                a[k] = tb
        else:
            for k in range(lo, hi):
                b[k] = round_u8(np.float32(b[k]) * wj + np.float32(a[k]) * wj1)
    elif ri == TAKE and rj == TAKE:
        for k in range(lo, hi):
            t = a[k]
            a[k] = b[k]
            b[k] = t
    elif ri == TAKE:
        for k in range(lo, hi):
            a[k] = b[k]
    elif rj == TAKE:
        for k in range(lo, hi):
            b[k] = a[k]


@njit(**_EXACT)
def _pair(a, b, H, R, C, ri, rj, bi, bj, wi, wj):
    """One pair, flat (H*R bytes each, R per row): one run when neither has a CutMix box
    (``bi``/``bj``: (y0, y1, x0, x1), or None-like y0 == y1), else runs between box edges."""
    if bi[0] == bi[1] and bj[0] == bj[1]:
        _run(a, b, 0, H * R, ri, rj, wi, wj)
        return
    edges = np.empty(6, np.int64)
    for y in range(H):
        n = 0
        ini = bi[0] <= y < bi[1]
        inj = bj[0] <= y < bj[1]
        if ini:
            edges[0], edges[1] = bi[2] * C, bi[3] * C
            n = 2
        if inj:
            edges[n], edges[n + 1] = bj[2] * C, bj[3] * C
            n += 2
        if n == 0 and ri != BLEND and rj != BLEND:
            continue  # a row outside the boxes of two CutMix samples: unchanged
        edges[n], edges[n + 1] = 0, R
        for s in range(1, n + 2):  # insertion sort of the (at most 6) edges
            v, t = edges[s], s
            while t > 0 and edges[t - 1] > v:
                edges[t] = edges[t - 1]
                t -= 1
            edges[t] = v
        row = y * R
        for s in range(n + 1):
            lo, hi = edges[s], edges[s + 1]
            if lo < hi:
                ui = TAKE if ini and bi[2] * C <= lo < bi[3] * C else ri
                uj = TAKE if inj and bj[2] * C <= lo < bj[3] * C else rj
                _run(a, b, row + lo, row + hi, ui, uj, wi, wj)


@njit(**_EXACT)
def _self_blend(a, w):
    """The middle sample of an odd batch mixes with itself: rint(a * w + a * (1 - w))."""
    w1 = np.float32(1.0) - w
    for k in range(np.uint64(a.shape[0])):
        fa = np.float32(a[k])
        a[k] = round_u8(fa * w + fa * w1)


@njit(**_EXACT)
def mix_pairs(x, C, lam, cut, boxes):
    """x: (B, H, W*C) uint8, in place; lam (B,) float32, cut (B,) bool, boxes (B, 4) int64
    (y0, y1, x0, x1; clipped to the image here). Sample i's base rule: BLEND if it mixes
    (``lam < 1`` and no box), KEEP otherwise; inside its box (CutMix) it TAKEs."""
    B, H, R = x.shape
    W = R // C
    bx = np.empty((B, 4), np.int64)
    for i in range(B):
        for k in range(4):
            bx[i, k] = min(max(boxes[i, k], 0), H if k < 2 else W)
    for i in range((B + 1) // 2):
        j = B - 1 - i
        ri = BLEND if (not cut[i]) and lam[i] < 1.0 else KEEP
        rj = BLEND if (not cut[j]) and lam[j] < 1.0 else KEEP
        if i == j:
            if ri == BLEND:
                _self_blend(x[i].reshape(-1), lam[i])
            continue
        # a sample without a (non-empty) box gets the empty box (0, 0, 0, 0)
        for s in (i, j):
            if not (cut[s] and bx[s, 0] < bx[s, 1] and bx[s, 2] < bx[s, 3]):
                bx[s, :] = 0
        if ri == KEEP and rj == KEEP and bx[i, 1] == 0 and bx[j, 1] == 0:
            continue
        a, b = x[i].reshape(-1), x[j].reshape(-1)
        _pair(a, b, H, R, C, ri, rj, bx[i], bx[j], lam[i], lam[j])


def mix_inplace(images: np.ndarray, lam, cut, boxes) -> np.ndarray:
    """Mixup/CutMix a C-contiguous uint8 NHWC batch in place (see the module docstring);
    returns ``images``. ``lam``, ``cut``, ``boxes``: ``Mixup.params``."""
    if not images.flags.c_contiguous:
        raise bad_param("images", "a C-contiguous array", "a strided view",
                        "pass np.ascontiguousarray(images)")  # fmt: skip
    B = images.shape[0]
    if B == 0 or images.size == 0:
        return images
    C = int(np.prod(images.shape[3:], dtype=np.int64)) if images.ndim > 3 else 1
    x = images.reshape(B, images.shape[1], -1)
    lam = np.ascontiguousarray(lam, np.float32).reshape(B)
    cut = np.ascontiguousarray(cut, np.bool_).reshape(B)
    boxes = np.ascontiguousarray(boxes, np.int64).reshape(B, 4)
    mix_pairs(x, C, lam, cut, boxes)
    return images
