"""One explicit SIMD primitive for the horizontal resampling gather: a whole RGB pixel per step.

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
"""

from __future__ import annotations

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
