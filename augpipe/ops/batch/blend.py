"""Mixup/CutMix on a uint8 NHWC batch, in place: the pixel work of ``Mixup`` on the host.

Sample i mixes with its partner j = B-1-i, so the batch splits into pairs (i, j) whose two
outputs depend only on the pair's two inputs. One compiled call walks the pairs; each pair is
one pass that reads both images once and writes both results over them (no copy of the batch,
no temporary). Per output the rule is constant over a run of pixels: keep, take the partner's
original pixel (inside a CutMix box) or blend, so a pair without a box is one flat loop and a
pair with boxes is cut, row by row, into at most five runs at the boxes' edges.

The blend is integer, in 16-bit lanes: with the weight ``w = rint(256 λ)`` (0..256),
``out = (a w + b (256 - w) + 128) >> 8``, i.e. the exact blend with ``λ' = w / 256`` rounded
half up (``255 * 256 + 128 < 2**16``: no overflow, no clamp). ``Mixup.params`` returns λ
already on that grid, so the soft targets hold the very λ the pixels got. Against timm's
float32 path (``FastCollateMixup``: ``rint(a λ + b (1 - λ))``) a value differs by at most 1
(|λ' - λ| <= 1/512 moves the blend by < 0.5 before rounding). A sample with ``w == 256``
(and the middle sample of an odd batch, which mixes with itself) is unchanged.

>>> mix_inplace(images, lam, cut, boxes)  # images: (B, H, W, 3) uint8, C-contiguous
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from augpipe.errors import bad_param

_EXACT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)
KEEP, TAKE, BLEND = 0, 1, 2  # what an output pixel becomes
ONE = 256  # the weight of λ = 1: λ' = w / ONE


def weight(lam) -> np.ndarray:
    """The blend weights of ``lam``: ``rint(256 λ)`` clipped to 0..256, int64 (what the pixels
    get; ``weight(lam) / 256`` is the λ of the soft targets)."""
    return np.clip(np.rint(np.asarray(lam, np.float64) * ONE), 0, ONE).astype(np.int64)


def blend_u8(a, b, w, w1):
    """``(a w + b w1 + 128) >> 8`` (w + w1 = 256), as uint8. Pure Python (what runs with
    ``NUMBA_DISABLE_JIT=1``); compiled: the same integer arithmetic in 16-bit lanes."""
    return np.uint8((int(a) * int(w) + int(b) * int(w1) + 128) >> 8)


@intrinsic
def _blend16(typingctx, a, b, w, w1):
    """``blend_u8`` in i16 arithmetic (Numba would widen each product to 64 bits, and the
    vectorised loop with it: 4x fewer lanes per instruction)."""
    sig = types.uint8(types.uint8, types.uint8, types.uint16, types.uint16)

    def codegen(context, builder, signature, args):
        i16 = ir.IntType(16)
        x, y = builder.zext(args[0], i16), builder.zext(args[1], i16)
        s = builder.add(builder.mul(x, args[2]), builder.mul(y, args[3]))
        s = builder.lshr(builder.add(s, ir.Constant(i16, 128)), ir.Constant(i16, 8))
        return builder.trunc(s, ir.IntType(8))

    return sig, codegen


@overload(blend_u8)
def _blend_u8_jit(a, b, w, w1):
    def impl(a, b, w, w1):
        return _blend16(a, b, w, w1)

    return impl


@njit(**_EXACT)
def _run(a, b, lo, hi, ri, rj, wi, wj):
    """Pixels [lo, hi) of the pair's rows a (sample i) and b (its partner j), in place: each
    output by its rule (KEEP, TAKE the partner's original, BLEND with weight wi / wj)."""
    # unsigned indices: a signed one keeps Numba's negative-index wraparound select in the
    # loop, which stops LLVM from vectorising it (and slicing per run costs more than a row)
    lo, hi = np.uint64(lo), np.uint64(hi)
    wi0, wi1 = np.uint16(wi), np.uint16(ONE - wi)
    wj0, wj1 = np.uint16(wj), np.uint16(ONE - wj)
    if ri == BLEND and rj == BLEND:
        for k in range(lo, hi):
            x, y = a[k], b[k]
            a[k] = blend_u8(x, y, wi0, wi1)
            b[k] = blend_u8(y, x, wj0, wj1)
    elif ri == BLEND:
        if rj == TAKE:
            for k in range(lo, hi):
                x = a[k]
                a[k] = blend_u8(x, b[k], wi0, wi1)
                b[k] = x
        else:
            for k in range(lo, hi):
                a[k] = blend_u8(a[k], b[k], wi0, wi1)
    elif rj == BLEND:
        if ri == TAKE:
            for k in range(lo, hi):
                y = b[k]
                b[k] = blend_u8(y, a[k], wj0, wj1)
                a[k] = y
        else:
            for k in range(lo, hi):
                b[k] = blend_u8(b[k], a[k], wj0, wj1)
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
def mix_pairs(x, C, lam, cut, boxes):
    """x: (B, H, W*C) uint8, in place; lam (B,) float32, cut (B,) bool, boxes (B, 4) int64
    (y0, y1, x0, x1; clipped to the image here). Sample i's base rule: BLEND with the weight
    ``rint(256 lam)`` if it mixes (no box and a weight < 256), KEEP otherwise; inside its box
    (CutMix) it TAKEs."""
    B, H, R = x.shape
    W = R // C
    bx = np.empty((B, 4), np.int64)
    w = np.empty(B, np.int64)
    for i in range(B):
        for k in range(4):
            bx[i, k] = min(max(boxes[i, k], 0), H if k < 2 else W)
        w[i] = min(max(np.int64(np.rint(np.float64(lam[i]) * ONE)), 0), ONE)
    for i in range(B // 2):  # the middle sample of an odd batch is unchanged
        j = B - 1 - i
        ri = BLEND if (not cut[i]) and w[i] < ONE else KEEP
        rj = BLEND if (not cut[j]) and w[j] < ONE else KEEP
        # a sample without a (non-empty) box gets the empty box (0, 0, 0, 0)
        for s in (i, j):
            if not (cut[s] and bx[s, 0] < bx[s, 1] and bx[s, 2] < bx[s, 3]):
                bx[s, :] = 0
        if ri == KEEP and rj == KEEP and bx[i, 1] == 0 and bx[j, 1] == 0:
            continue
        a, b = x[i].reshape(-1), x[j].reshape(-1)
        _pair(a, b, H, R, C, ri, rj, bx[i], bx[j], w[i], w[j])


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
