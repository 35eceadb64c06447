"""Fixed-point SIMD rows of the separable kernel (``axis.resize_axis``): int16 lanes.

Values between the two passes are Q7 (pixel x 128, int16, 0..32640); weights are Q15 (weight x
32768 rounded, int16, 0..32767). A blend is ``a + mulhrs(b - a, w)`` with ``mulhrs(x, w) =
(x w + 2^14) >> 15`` (x86's ``pmulhrsw``: 32 lanes per instruction with AVX-512, 16 with AVX2),
and the final value is ``(v + 64) >> 7``: rounding half up, no clamp needed (a blend stays
between its inputs). Against exact arithmetic each blend adds at most 2^-8 (rounding) plus
255 x 2^-16 (weight rounding) of a level, so the two passes stay within 0.016 of the exact
bilinear value before the final rounding (docs/transforms.md, "Speed").

Each function does a whole row, as one loop of 32-lane steps written in LLVM IR: no Numba-level
call per step (a call that passes arrays costs reference counting, measured at ~40% of the
kernel's time when it happened per row). Row lengths ``n`` are >= 32; the last step is moved
back to end at ``n`` (a few lanes computed twice), so that nothing is read or written past it.

- ``rows_u8``: dst[:n] = Q7 blend of two uint8 rows (the vertical pass first);
- ``row_q7``: dst[:n] = a uint8 row x 128 (a source row before the horizontal pass);
- ``rows_q7``: dst[k:k+n] = blend of two Q7 rows, rounded to uint8 or kept Q7 (vertical last);
- ``add_u8``, ``add_q``: acc[:n] += a uint8 or int16 row, in whole steps (the box prefilter's
  exact sums; up to 31 lanes past ``n`` read and written).

The horizontal pass is in ``augpipe.ops.fixed_gather``. With ``NUMBA_DISABLE_JIT=1`` the NumPy
definitions (``*_py``, the same integer arithmetic) run.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

_I1, _I8, _I16, _I32 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32)
_N = 32  # lanes per step
_V16 = ir.VectorType(_I16, _N)
_V8 = ir.VectorType(_I8, _N)
_W32 = ir.VectorType(_I32, _N)
_PIX = ir.VectorType(_I16, 8)  # one pixel pair's load: 3 + 3 lanes, 2 spare
# x86's pmulhrsw by name (LLVM does not match the generic pattern: it multiplies in 32-bit
# lanes), per the features Numba compiles for (the host's unless NUMBA_CPU_FEATURES says
# otherwise), widest first
_PMULHRS = (("+avx512bw", "llvm.x86.avx512.pmul.hr.sw.512", 32),
            ("+avx2", "llvm.x86.avx2.pmul.hr.sw", 16),
            ("+ssse3", "llvm.x86.ssse3.pmul.hr.sw.128", 8))  # fmt: skip


def _mask(lanes) -> ir.Constant:
    lanes = list(lanes)
    return ir.Constant(ir.VectorType(_I32, len(lanes)), lanes)


def _const(vtype, value):
    return ir.Constant(vtype, [value] * vtype.count)


def _features(context) -> set:
    return set(getattr(context.codegen(), "_tm_features", "").split(","))


def _splat(builder, value):
    v = builder.insert_element(ir.Constant(_V16, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), _mask([0] * _N))


def _mulhrs(context, builder, x, w):
    have = _features(context)
    for feature, name, lanes in _PMULHRS:
        if feature in have:
            vt = ir.VectorType(_I16, lanes)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt]), name)
            parts = []
            for s in range(0, _N, lanes):
                sel = _mask(range(s, s + lanes))
                parts.append(builder.call(fn, [builder.shuffle_vector(x, x, sel),
                                               builder.shuffle_vector(w, w, sel)]))  # fmt: skip
            while len(parts) > 1:  # concatenate
                c = parts[0].type.count
                parts = [builder.shuffle_vector(parts[i], parts[i + 1], _mask(range(2 * c)))
                         for i in range(0, len(parts), 2)]  # fmt: skip
            return parts[0]
    p = builder.mul(builder.sext(x, _W32), builder.sext(w, _W32))
    p = builder.ashr(builder.add(p, _const(_W32, 1 << 14)), _const(_W32, 15))
    return builder.trunc(p, _V16)


def _blend(context, builder, a, b, w):
    return builder.add(a, _mulhrs(context, builder, builder.sub(b, a), w))


def _ptr(builder, arr, off, vtype):
    return builder.bitcast(builder.gep(arr.data, [off], inbounds=True), vtype.as_pointer())


def _load(builder, arr, off, vtype):
    return builder.load(_ptr(builder, arr, off, vtype), align=vtype.element.width // 8)


def _store(builder, v, arr, off, to_u8: bool) -> None:
    if to_u8:  # (v + 64) >> 7: rounding half up; v is in [0, 32640]
        v = builder.lshr(builder.add(v, _const(_V16, 64)), _const(_V16, 7))
        builder.store(builder.trunc(v, _V8), _ptr(builder, arr, off, _V8), align=1)
    else:
        builder.store(v, _ptr(builder, arr, off, _V16), align=2)


def _unpack(context, builder, sig, args):
    """Arrays as Numba array structs, integers as intp, the weight as int16, flags as i1."""
    out = []
    for ty, v in zip(sig.args, args):
        if isinstance(ty, types.Array):
            out.append(context.make_array(ty)(context, builder, v))
        elif ty == types.int16:
            out.append(v)
        elif ty == types.boolean:
            out.append(builder.icmp_unsigned("!=", v, ir.Constant(v.type, 0)))
        else:
            out.append(context.cast(builder, v, ty, types.intp))
    return out


def _steps(builder, n, body):
    """for k in range(0, n, 32): body(min(k, n - 32)) (the last step moved back)."""
    one = ir.Constant(n.type, 1)
    count = builder.add(builder.sdiv(builder.sub(n, one), ir.Constant(n.type, _N)), one)
    last = builder.sub(n, ir.Constant(n.type, _N))
    with cgutils.for_range(builder, count) as loop:
        k = builder.mul(loop.index, ir.Constant(n.type, _N))
        body(builder.select(builder.icmp_signed("<", k, last), k, last))


def _arrays_ok(pairs) -> bool:
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in want
               for a, want in pairs)  # fmt: skip


def _ints_ok(*xs) -> bool:
    return all(isinstance(x, types.Integer) for x in xs)


_U8, _Q = (types.uint8,), (types.int16,)
_OUT = (types.uint8, types.int16)


def _weight(builder, context, w, ty):
    return context.cast(builder, w, ty, types.int16)


# --- contiguous rows --------------------------------------------------------------------------


@intrinsic
def _rows_u8(typingctx, a, i, b, j, n, w, dst):
    if not (_arrays_ok(((a, _U8), (b, _U8), (dst, _Q))) and _ints_ok(i, j, n, w)):
        raise TypeError("rows_u8: a, b uint8, dst int16 1-D C-contiguous arrays; i, j, n, w ints")

    def codegen(context, builder, sig, args):
        w16 = _weight(builder, context, args[5], sig.args[5])
        a, i, b, j, n, _, dst = _unpack(context, builder, sig, args)
        wv = _splat(builder, w16)

        def q7(arr, off):
            v = builder.zext(_load(builder, arr, off, _V8), _V16)
            return builder.shl(v, _const(_V16, 7))

        def body(k):
            v = _blend(context, builder, q7(a, builder.add(i, k)), q7(b, builder.add(j, k)), wv)
            _store(builder, v, dst, k, False)

        _steps(builder, n, body)
        return context.get_dummy_value()

    return types.void(a, i, b, j, n, w, dst), codegen


def rows_u8_py(a, i, b, j, n, w, dst):
    x = a[i : i + n].astype(np.int32) << 7
    y = b[j : j + n].astype(np.int32) << 7
    dst[:n] = x + ((((y - x) * np.int32(w)) + (1 << 14)) >> 15)


@intrinsic
def _row_q7(typingctx, a, i, n, dst):
    if not (_arrays_ok(((a, _U8), (dst, _Q))) and _ints_ok(i, n)):
        raise TypeError("row_q7: a uint8, dst int16 1-D C-contiguous arrays; i, n ints")

    def codegen(context, builder, sig, args):
        a, i, n, dst = _unpack(context, builder, sig, args)

        def body(k):
            v = builder.zext(_load(builder, a, builder.add(i, k), _V8), _V16)
            _store(builder, builder.shl(v, _const(_V16, 7)), dst, k, False)

        _steps(builder, n, body)
        return context.get_dummy_value()

    return types.void(a, i, n, dst), codegen


def row_q7_py(a, i, n, dst):
    dst[:n] = a[i : i + n].astype(np.int16) << 7


@intrinsic
def _rows_q7(typingctx, a, i, b, j, n, w, dst, k):
    if not (_arrays_ok(((a, _Q), (b, _Q), (dst, _OUT))) and _ints_ok(i, j, n, w, k)):
        raise TypeError("rows_q7: a, b int16, dst uint8 or int16 1-D C-contiguous arrays")
    to_u8 = dst.dtype == types.uint8

    def codegen(context, builder, sig, args):
        w16 = _weight(builder, context, args[5], sig.args[5])
        a, i, b, j, n, _, dst, k0 = _unpack(context, builder, sig, args)
        wv = _splat(builder, w16)

        def body(k):
            x = _load(builder, a, builder.add(i, k), _V16)
            y = _load(builder, b, builder.add(j, k), _V16)
            _store(builder, _blend(context, builder, x, y, wv), dst, builder.add(k0, k), to_u8)

        _steps(builder, n, body)
        return context.get_dummy_value()

    return types.void(a, i, b, j, n, w, dst, k), codegen


def _finish(v, dst, k):
    if dst.dtype == np.uint8:
        dst[k : k + v.shape[0]] = (v + 64) >> 7
    else:
        dst[k : k + v.shape[0]] = v


def rows_q7_py(a, i, b, j, n, w, dst, k):
    x = a[i : i + n].astype(np.int32)
    y = b[j : j + n].astype(np.int32)
    _finish(x + ((((y - x) * np.int32(w)) + (1 << 14)) >> 15), dst, k)


def _blocks(builder, n, body):
    """for k in range(0, n, 32): body(k) (whole steps: up to 31 lanes past n)."""
    count = builder.sdiv(builder.add(n, ir.Constant(n.type, _N - 1)), ir.Constant(n.type, _N))
    with cgutils.for_range(builder, count) as loop:
        body(builder.mul(loop.index, ir.Constant(n.type, _N)))


@intrinsic
def _add_u8(typingctx, a, i, n, acc):
    if not (_arrays_ok(((a, _U8), (acc, _Q))) and _ints_ok(i, n)):
        raise TypeError("add_u8: a uint8, acc int16 1-D C-contiguous arrays; i, n ints")

    def codegen(context, builder, sig, args):
        a, i, n, acc = _unpack(context, builder, sig, args)

        def body(k):
            v = builder.zext(_load(builder, a, builder.add(i, k), _V8), _V16)
            _store(builder, builder.add(_load(builder, acc, k, _V16), v), acc, k, False)

        _blocks(builder, n, body)
        return context.get_dummy_value()

    return types.void(a, i, n, acc), codegen


def add_u8_py(a, i, n, acc):
    m = -(-n // _N) * _N
    part = np.zeros(m, np.int16)
    got = a[i : i + m]
    part[: got.shape[0]] = got
    acc[:m] += part


@intrinsic
def _add_q(typingctx, a, i, n, acc):
    if not (_arrays_ok(((a, _Q), (acc, _Q))) and _ints_ok(i, n)):
        raise TypeError("add_q: a, acc int16 1-D C-contiguous arrays; i, n ints")

    def codegen(context, builder, sig, args):
        a, i, n, acc = _unpack(context, builder, sig, args)

        def body(k):
            v = _load(builder, a, builder.add(i, k), _V16)
            _store(builder, builder.add(_load(builder, acc, k, _V16), v), acc, k, False)

        _blocks(builder, n, body)
        return context.get_dummy_value()

    return types.void(a, i, n, acc), codegen


def add_q_py(a, i, n, acc):
    m = -(-n // _N) * _N
    acc[:m] += a[i : i + m]


def _pick(py, jit):
    return py if config.DISABLE_JIT else jit


add_u8 = _pick(add_u8_py, _add_u8)
add_q = _pick(add_q_py, _add_q)
rows_u8 = _pick(rows_u8_py, _rows_u8)
row_q7 = _pick(row_q7_py, _row_q7)
rows_q7 = _pick(rows_q7_py, _rows_q7)
