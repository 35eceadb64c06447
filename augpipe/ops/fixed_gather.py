"""The fixed-point horizontal pass of the separable kernel: eight output pixels per step.

Values, weights and blends as in ``augpipe.ops.fixed`` (Q7, Q15, ``pmulhrsw``).

- ``gather_row``: the horizontal pass, eight output pixels per step: pixel o blends the pixels
  at ``idx[o]`` and + 3 by the Q15 weight ``wq[o]`` (spread over the pixel's lanes by a
  constant shuffle of one 8-lane load), channels
  reversed when ``bgr``, into dst[k + 3 o : ...]; 8 loads of 8 lanes make two 32-lane vectors
  and two constant shuffles pick the left and right pixels' channels. Each step writes 32
  elements (24 used; the next step overwrites the rest): dst needs 8 spare elements after the
  row, src 8 readable lanes after the last offset;
- ``permute_row``: the same through ``permute_tables`` where each group of 8 output pixels reads
  within 64 lanes (at most 2 source pixels per output pixel: what the box prefilter leaves):
  two contiguous 32-lane loads and two ``vpermi2w`` (AVX512BW's two-register word permute)
  whose lane tables also hold the channel order and the flip: 13 instructions per step where
  ``gather_row`` takes ~30 (~25% less time per row measured in isolation; both are bound by
  the permutes), the same result. Generic LLVM IR has no variable permute: this step exists
  where ``permute_ok()`` (Numba compiles for AVX512BW).

With ``NUMBA_DISABLE_JIT=1`` the NumPy definitions (``*_py``, the same integer arithmetic) run.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from augpipe.ops.fixed import (
    _I1,
    _I16,
    _N,
    _OUT,
    _PIX,
    _Q,
    _V16,
    _arrays_ok,
    _blend,
    _const,
    _features,
    _finish,
    _ints_ok,
    _load,
    _mask,
    _pick,
    _store,
    _unpack,
)

_VPERMW = "llvm.x86.avx512.vpermi2var.hi.512"  # AVX512BW's two-register word permute
_W8 = ir.VectorType(_I16, 8)
_SPREAD = _mask([p for p in range(8) for _ in range(3)] + [0] * 8)


def _spread(builder, w8):
    """8 pixels' weights -> their 24 channel lanes (and 8 spare lanes)."""
    return builder.shuffle_vector(w8, w8, _SPREAD)


def _length(builder, arr):
    return cgutils.unpack_tuple(builder, arr.shape, 1)[0]


@intrinsic
def _gather_row(typingctx, src, idx, wq, bgr, dst, k):
    if not (_arrays_ok(((src, _Q), (idx, (types.uint32,)), (wq, _Q), (dst, _OUT)))
            and _ints_ok(k) and isinstance(bgr, types.Boolean)):  # fmt: skip
        raise TypeError("gather_row: src, wq int16, idx uint32, dst uint8 or int16 arrays")
    to_u8 = dst.dtype == types.uint8

    def codegen(context, builder, sig, args):
        src, idx, wq, bgr, dst, k0 = _unpack(context, builder, sig, args)
        groups = builder.sdiv(_length(builder, idx), ir.Constant(k0.type, 8))

        def loop(order):
            # lane 8 p + c of (x, y) is channel c of output pixel p's left source pixel; the 8
            # spare output lanes take any lane (weight 0)
            left = _mask([8 * p + c for p in range(8) for c in order] + [6] * 8)
            right = _mask([8 * p + 3 + c for p in range(8) for c in order] + [7] * 8)
            with cgutils.for_range(builder, groups) as g:
                o = builder.mul(g.index, ir.Constant(k0.type, 8))
                v = []
                for p in range(8):
                    at = builder.gep(idx.data, [builder.add(o, ir.Constant(o.type, p))],
                                     inbounds=True)  # fmt: skip
                    v.append(_load(builder, src, builder.zext(builder.load(at), o.type), _PIX))
                pairs = [builder.shuffle_vector(v[2 * q], v[2 * q + 1], _mask(range(16)))
                         for q in range(4)]  # fmt: skip
                x = builder.shuffle_vector(pairs[0], pairs[1], _mask(range(32)))
                y = builder.shuffle_vector(pairs[2], pairs[3], _mask(range(32)))
                a = builder.shuffle_vector(x, y, left)
                b = builder.shuffle_vector(x, y, right)
                w = _spread(builder, _load(builder, wq, o, _W8))
                at = builder.add(k0, builder.mul(o, ir.Constant(o.type, 3)))
                _store(builder, _blend(context, builder, a, b, w), dst, at, to_u8)

        with builder.if_else(bgr) as (then, otherwise):
            with then:
                loop((2, 1, 0))
            with otherwise:
                loop((0, 1, 2))
        return context.get_dummy_value()

    return types.void(src, idx, wq, bgr, dst, k), codegen


def gather_row_py(src, idx, wq, bgr, dst, k):
    for o in range(idx.shape[0]):
        i = int(idx[o])
        x = src[i : i + 3].astype(np.int32)
        y = src[i + 3 : i + 6].astype(np.int32)
        q = np.int32(wq[o])
        v = x + ((((y - x) * q) + (1 << 14)) >> 15)
        _finish(v[::-1] if bgr else v, dst, k + 3 * o)


@intrinsic
def _permute_row(typingctx, src, base, perm, wq, dst, k):
    if not (_arrays_ok(((src, _Q), (base, (types.uint32,)), (perm, _Q), (wq, _Q), (dst, _OUT)))
            and _ints_ok(k)):  # fmt: skip
        raise TypeError("permute_row: src, perm, wq int16, base uint32, dst uint8 or int16")
    to_u8 = dst.dtype == types.uint8

    def codegen(context, builder, sig, args):
        src, base, perm, wq, dst, k0 = _unpack(context, builder, sig, args)
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(_V16, [_V16] * 3), _VPERMW)  # fmt: skip
        c = lambda v: ir.Constant(k0.type, v)  # noqa: E731
        with cgutils.for_range(builder, _length(builder, base)) as g:
            b = builder.load(builder.gep(base.data, [g.index], inbounds=True))
            off = builder.zext(b, k0.type)
            x = _load(builder, src, off, _V16)
            y = _load(builder, src, builder.add(off, c(_N)), _V16)
            lanes = _load(builder, perm, builder.mul(g.index, c(_N)), _V16)
            left = builder.call(fn, [x, lanes, y])
            # the right pixel's lanes are 3 further: an add where a second table load cost
            # more (loads bound this loop: -24% time per row measured)
            right = builder.call(fn, [x, builder.add(lanes, _const(_V16, 3)), y])
            w = _spread(builder, _load(builder, wq, builder.mul(g.index, c(8)), _W8))
            at = builder.add(k0, builder.mul(g.index, c(24)))
            _store(builder, _blend(context, builder, left, right, w), dst, at, to_u8)
        return context.get_dummy_value()

    return types.void(src, base, perm, wq, dst, k), codegen


def permute_row_py(src, base, perm, wq, dst, k):
    for g in range(base.shape[0]):
        b = int(base[g])
        win = np.zeros(2 * _N, np.int32)
        part = src[b : b + 2 * _N]
        win[: part.shape[0]] = part
        lanes = perm[32 * g : 32 * g + 24].astype(np.int64)
        x = win[lanes]
        y = win[lanes + 3]
        w = np.repeat(wq[8 * g : 8 * g + 8].astype(np.int32), 3)
        _finish(x + ((((y - x) * w) + (1 << 14)) >> 15), dst, k + 24 * g)


@intrinsic
def _permute_ok(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_I1, int("+avx512bw" in _features(context)))

    return types.boolean(), codegen


def permute_ok_py() -> bool:
    return True  # the NumPy definition runs anywhere


@njit(nogil=True, cache=True, boundscheck=False)
def permute_tables(idx, bgr, base, perm) -> bool:
    """The tables of ``permute_row`` for ``gather_row``'s offsets ``idx`` (8 g long): base[g] =
    the lowest offset of group g; perm[32 g + 3 p + c] the left pixel's lanes in the 64-lane
    window from there (the right pixel's are 3 further). False where a group's pixels span
    more than the window (the tables are then unusable)."""
    perm[:] = 0
    for g in range(idx.shape[0] // 8):
        lo = idx[8 * g]
        hi = idx[8 * g]
        for p in range(1, 8):
            lo = min(lo, idx[8 * g + p])
            hi = max(hi, idx[8 * g + p])
        if hi - lo + 6 > 2 * _N:
            return False
        base[g] = lo
        for p in range(8):
            d = idx[8 * g + p] - lo
            for c in range(3):
                cc = 2 - c if bgr else c
                perm[32 * g + 3 * p + c] = d + cc
    return True


gather_row = _pick(gather_row_py, _gather_row)
permute_row = _pick(permute_row_py, _permute_row)
permute_ok = _pick(permute_ok_py, _permute_ok)
