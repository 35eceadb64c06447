"""Explicit SIMD primitives for the resampling gathers: whole RGB pixels per step.

A horizontal bilinear pass reads, for each output pixel, two source pixels at a data-dependent
offset: LLVM's loop vectoriser cannot vectorise that (the loads are gathers, which it declines
on current x86 cost models) and Numba leaves the SLP vectoriser off, so the loop runs one
channel at a time: ~230 ns per 224-pixel row. ``lerp_pixel`` instead blends the pixel as one
4-lane vector (two unaligned 16-byte loads, one subtract, one FMA, one store): ~105 ns per row
on the same machine (AVX-512 Zen; measured in isolation, 224 output pixels from 260).

The fourth lane holds the next source pixel's first channel; it is written to ``dst[k + 3]``,
which the next output pixel overwrites (callers go left to right and give ``dst`` and ``src``
one spare element at the end). With ``NUMBA_DISABLE_JIT=1`` the plain-Python definition runs
(3 lanes), so tests can compare compiled and pure-Python results.

``gather4x2`` (the warp kernel) goes four output pixels per step: one 8-float load per pixel
and row holds both pixels it blends, two constant shuffles pick the left and right pixels'
channels in output order, FMAs blend all 12 channels, and the result is stored once (rounded
to bytes when the caller needs no colour pass); the float one-row form of this step ran the
separable kernel at ~65 ns per 224-pixel row where ``lerp_pixel`` takes ~105 (same machine;
per-call minimum), before that kernel moved to fixed point (``augpipe.ops.fixed``). The
shuffles are generic LLVM vector IR: AVX-512 gets two-source permutes, AVX2 a longer sequence.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

_I32 = ir.IntType(32)
_V4 = ir.VectorType(ir.FloatType(), 4)
_LANES = ir.VectorType(_I32, 4)
_CONTRACT = ("contract",)  # lets LLVM fuse the multiply and add into one FMA


def _lerp4_codegen(order: tuple[int, int, int, int]):
    def codegen(context, builder, sig, args):
        src, i, f, dst, k = args
        sa = context.make_array(sig.args[0])(context, builder, src)
        da = context.make_array(sig.args[3])(context, builder, dst)
        i = context.cast(builder, i, sig.args[1], types.intp)
        k = context.cast(builder, k, sig.args[4], types.intp)
        f = context.cast(builder, f, sig.args[2], types.float32)
        p = builder.bitcast(builder.gep(sa.data, [i], inbounds=True), _V4.as_pointer())
        i3 = builder.add(i, ir.Constant(i.type, 3))
        q = builder.bitcast(builder.gep(sa.data, [i3], inbounds=True), _V4.as_pointer())
        a = builder.load(p, align=4)
        b = builder.load(q, align=4)
        undef = ir.Constant(_V4, ir.Undefined)
        fv = builder.insert_element(undef, f, ir.Constant(_I32, 0))
        fv = builder.shuffle_vector(fv, undef, ir.Constant(_LANES, [0, 0, 0, 0]))
        d = builder.fsub(b, a, flags=_CONTRACT)
        r = builder.fadd(builder.fmul(fv, d, flags=_CONTRACT), a, flags=_CONTRACT)
        if order != (0, 1, 2, 3):
            r = builder.shuffle_vector(r, undef, ir.Constant(_LANES, list(order)))
        out = builder.bitcast(builder.gep(da.data, [k], inbounds=True), _V4.as_pointer())
        builder.store(r, out, align=4)
        return context.get_dummy_value()

    return codegen


def _lerp4x2_codegen(order: tuple[int, int, int, int]):
    def codegen(context, builder, sig, args):
        src, i, j, fx, fy, dst, k = args
        sa = context.make_array(sig.args[0])(context, builder, src)
        da = context.make_array(sig.args[5])(context, builder, dst)
        i = context.cast(builder, i, sig.args[1], types.intp)
        j = context.cast(builder, j, sig.args[2], types.intp)
        k = context.cast(builder, k, sig.args[6], types.intp)
        fx = context.cast(builder, fx, sig.args[3], types.float32)
        fy = context.cast(builder, fy, sig.args[4], types.float32)
        undef = ir.Constant(_V4, ir.Undefined)

        def splat(v):
            v = builder.insert_element(undef, v, ir.Constant(_I32, 0))
            return builder.shuffle_vector(v, undef, ir.Constant(_LANES, [0, 0, 0, 0]))

        def load(off):
            p = builder.gep(sa.data, [off], inbounds=True)
            return builder.load(builder.bitcast(p, _V4.as_pointer()), align=4)

        def lerp(a, b, f):
            d = builder.fsub(b, a, flags=_CONTRACT)
            return builder.fadd(builder.fmul(f, d, flags=_CONTRACT), a, flags=_CONTRACT)

        three = ir.Constant(i.type, 3)
        vx, vy = splat(fx), splat(fy)
        top = lerp(load(i), load(builder.add(i, three)), vx)
        bot = lerp(load(j), load(builder.add(j, three)), vx)
        r = lerp(top, bot, vy)
        if order != (0, 1, 2, 3):
            r = builder.shuffle_vector(r, undef, ir.Constant(_LANES, list(order)))
        out = builder.bitcast(builder.gep(da.data, [k], inbounds=True), _V4.as_pointer())
        builder.store(r, out, align=4)
        return context.get_dummy_value()

    return codegen


def _check(src, dst):
    ok = (
        isinstance(src, types.Array)
        and isinstance(dst, types.Array)
        and src.dtype == types.float32
        and dst.dtype == types.float32
        and src.layout == "C"
        and dst.layout == "C"
        and src.ndim == 1
        and dst.ndim == 1
    )
    if not ok:
        raise TypeError("lerp_pixel: src and dst must be 1-D C-contiguous float32 arrays")


@intrinsic
def _lerp4_rgb(typingctx, src, i, f, dst, k):
    _check(src, dst)
    return types.void(src, i, f, dst, k), _lerp4_codegen((0, 1, 2, 3))


@intrinsic
def _lerp4_bgr(typingctx, src, i, f, dst, k):
    _check(src, dst)
    return types.void(src, i, f, dst, k), _lerp4_codegen((2, 1, 0, 3))


def lerp_pixel(src, i, f, dst, k, bgr):
    """dst[k:k+3] = src[i:i+3] + f (src[i+3:i+6] - src[i:i+3]), channels reversed when ``bgr``.

    Compiled, it also writes dst[k+3] and reads src[i+6] (see the module docstring).
    """
    a = src[i : i + 3]
    v = a + f * (src[i + 3 : i + 6] - a)
    dst[k : k + 3] = v[::-1] if bgr else v


@overload(lerp_pixel, jit_options=dict(fastmath=True))
def _lerp_pixel_jit(src, i, f, dst, k, bgr):
    def impl(src, i, f, dst, k, bgr):
        if bgr:
            _lerp4_bgr(src, i, f, dst, k)
        else:
            _lerp4_rgb(src, i, f, dst, k)

    return impl


@intrinsic
def _lerp4x2_rgb(typingctx, src, i, j, fx, fy, dst, k):
    _check(src, dst)
    return types.void(src, i, j, fx, fy, dst, k), _lerp4x2_codegen((0, 1, 2, 3))


@intrinsic
def _lerp4x2_bgr(typingctx, src, i, j, fx, fy, dst, k):
    _check(src, dst)
    return types.void(src, i, j, fx, fy, dst, k), _lerp4x2_codegen((2, 1, 0, 3))


def lerp_pixel2(src, i, j, fx, fy, dst, k, bgr):
    """Bilinear: the pixels at i, i+3 (top) and j, j+3 (bottom) blended by fx, then top and
    bottom by fy, into dst[k:k+3]; compiled, the same spare lane as ``lerp_pixel``."""
    a = src[i : i + 3]
    top = a + fx * (src[i + 3 : i + 6] - a)
    c = src[j : j + 3]
    bot = c + fx * (src[j + 3 : j + 6] - c)
    v = top + fy * (bot - top)
    dst[k : k + 3] = v[::-1] if bgr else v


@overload(lerp_pixel2, jit_options=dict(fastmath=True))
def _lerp_pixel2_jit(src, i, j, fx, fy, dst, k, bgr):
    def impl(src, i, j, fx, fy, dst, k, bgr):
        if bgr:
            _lerp4x2_bgr(src, i, j, fx, fy, dst, k)
        else:
            _lerp4x2_rgb(src, i, j, fx, fy, dst, k)

    return impl


# --- four output pixels per step -------------------------------------------------------------
# The same blend as ``lerp_pixel2`` for output pixels o..o+3 at once: four pairs of 4-lane
# loads per row are joined into two 16-lane vectors, and constant shuffles pack the 12 channels
# together (and reverse BGR). ``to_u8`` rounds half up and stores bytes, fusing the rounding
# pass. Both write 16 elements at dst[k:]: the last 4 are spare (the next step overwrites them).
_V16 = ir.VectorType(ir.FloatType(), 16)
_V8 = ir.VectorType(ir.FloatType(), 8)
_U8X16 = ir.VectorType(ir.IntType(8), 16)


def _mask(lanes) -> ir.Constant:
    lanes = list(lanes)
    return ir.Constant(ir.VectorType(_I32, len(lanes)), lanes)


def _store16(builder, r, out, to_u8: bool) -> None:
    """Store 16 float lanes at ``out``: rounded half up to uint8, or as float32."""
    if to_u8:
        half = ir.Constant(_V16, [0.5] * 16)
        r = builder.fptoui(builder.fadd(r, half, flags=_CONTRACT), _U8X16)
        builder.store(r, builder.bitcast(out, _U8X16.as_pointer()), align=1)
    else:
        builder.store(r, builder.bitcast(out, _V16.as_pointer()), align=4)


def _check4(src, idx, wt4, dst, dst_dtype):
    ok = (
        all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
            for a in (src, idx, wt4, dst))
        and src.dtype == types.float32
        and wt4.dtype == types.float32
        and idx.dtype == types.uint32
        and dst.dtype == dst_dtype
    )  # fmt: skip
    if not ok:
        raise TypeError("gather4x2: src, wx, wy float32, idx uint32, dst 1-D C-contiguous arrays")


def _gather4x2_codegen(bgr: bool, to_u8: bool):
    # four pixels of bilinear sampling: each pixel blends two pixels of its row and the same two
    # ``stride`` elements below; per-pixel weights wx[o + p], wy[o + p], spread over the
    # pixel's lanes by a shuffle
    def codegen(context, builder, sig, args):
        src, idx, stride, wx, wy, o, dst, k = args
        sa = context.make_array(sig.args[0])(context, builder, src)
        ia = context.make_array(sig.args[1])(context, builder, idx)
        xa = context.make_array(sig.args[3])(context, builder, wx)
        ya = context.make_array(sig.args[4])(context, builder, wy)
        da = context.make_array(sig.args[6])(context, builder, dst)
        o = context.cast(builder, o, sig.args[5], types.intp)
        k = context.cast(builder, k, sig.args[7], types.intp)
        stride = builder.zext(context.cast(builder, stride, sig.args[2], types.uint32), o.type)
        offs = []
        for p in range(4):
            i = builder.load(builder.gep(ia.data, [builder.add(o, ir.Constant(o.type, p))],
                                         inbounds=True))  # fmt: skip
            offs.append(builder.zext(i, o.type))

        def load8(off):
            ptr = builder.gep(sa.data, [off], inbounds=True)
            return builder.load(builder.bitcast(ptr, _V8.as_pointer()), align=4)

        order = (2, 1, 0) if bgr else (0, 1, 2)
        lanes_a = _mask([8 * p + c for p in range(4) for c in order] + [3, 11, 19, 27])
        lanes_b = _mask([8 * p + 3 + c for p in range(4) for c in order] + [6, 14, 22, 30])

        def row(delta):
            v = [load8(off if delta is None else builder.add(off, delta)) for off in offs]
            x = builder.shuffle_vector(v[0], v[1], _mask(range(16)))
            y = builder.shuffle_vector(v[2], v[3], _mask(range(16)))
            return builder.shuffle_vector(x, y, lanes_a), builder.shuffle_vector(x, y, lanes_b)

        def table(arr):  # the 4 pixels' weights, each spread over its 3 lanes
            wp = builder.gep(arr.data, [o], inbounds=True)
            w = builder.load(builder.bitcast(wp, _V4.as_pointer()), align=4)
            spread = [p for p in range(4) for _ in range(3)] + [3, 3, 3, 3]
            return builder.shuffle_vector(w, ir.Constant(_V4, ir.Undefined), _mask(spread))

        def lerp(a, b, w):
            d = builder.fsub(b, a, flags=_CONTRACT)
            return builder.fadd(builder.fmul(w, d, flags=_CONTRACT), a, flags=_CONTRACT)

        wx, wy = table(xa), table(ya)
        top = lerp(*row(None), wx)
        bot = lerp(*row(stride), wx)
        r = lerp(top, bot, wy)
        _store16(builder, r, builder.gep(da.data, [k], inbounds=True), to_u8)
        return context.get_dummy_value()

    return codegen


def _make_gather4x2(bgr: bool, to_u8: bool):
    dtype = types.uint8 if to_u8 else types.float32

    def typer(typingctx, src, idx, stride, wx, wy, o, dst, k):
        _check4(src, idx, wx, dst, dtype)
        _check4(src, idx, wy, dst, dtype)
        sig = types.void(src, idx, stride, wx, wy, o, dst, k)
        return sig, _gather4x2_codegen(bgr, to_u8)

    return intrinsic(typer)


_G4X2 = {(b, u): _make_gather4x2(b, u) for b in (False, True) for u in (False, True)}


def gather4x2(src, idx, stride, wx, wy, o, dst, k, bgr):
    """``lerp_pixel2`` for output pixels o..o+3 (o a multiple of 4): pixel o + p blends the
    source pixels at idx[o + p] and + 3 (horizontal weight wx[o + p]), the same two ``stride``
    elements below, and the two rows (vertical weight wy[o + p]); a uint8 ``dst`` receives the
    values rounded half up. Compiled, it also writes dst[k + 12 : k + 16] and reads src up to
    idx[o + 3] + stride + 7."""
    for p in range(4):
        i = int(idx[o + p])
        j = i + int(stride)
        fx, fy = wx[o + p], wy[o + p]
        a = src[i : i + 3]
        top = a + fx * (src[i + 3 : i + 6] - a)
        c = src[j : j + 3]
        v = top + fy * (c + fx * (src[j + 3 : j + 6] - c) - top)
        v = v[::-1] if bgr else v
        if dst.dtype == np.uint8:
            dst[k + 3 * p : k + 3 * p + 3] = (v + np.float32(0.5)).astype(np.uint8)
        else:
            dst[k + 3 * p : k + 3 * p + 3] = v


@overload(gather4x2, jit_options=dict(fastmath=True))
def _gather4x2_jit(src, idx, stride, wx, wy, o, dst, k, bgr):
    u8 = dst.dtype == types.uint8
    f_rgb, f_bgr = _G4X2[(False, u8)], _G4X2[(True, u8)]

    def impl(src, idx, stride, wx, wy, o, dst, k, bgr):
        if bgr:
            f_bgr(src, idx, stride, wx, wy, o, dst, k)
        else:
            f_rgb(src, idx, stride, wx, wy, o, dst, k)

    return impl
