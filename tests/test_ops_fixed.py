"""The fixed-point separable kernel: its row steps against their NumPy definitions, and
``resize_axis`` against an exact (float64) bilinear reference over many maps."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from augpipe.ops import fixed, kernels
from augpipe.ops import fixed_gather as fg

EYE = np.eye(3, dtype=np.float32)
ZERO = np.zeros(3, dtype=np.float32)
# two passes of Q7/Q15 blends stay within this of the exact value (augpipe.ops.fixed)
BOUND = 0.5 + 0.016


@njit
def _rows(a, i, b, j, n, w, d16, ring, k, d8):
    fixed.rows_u8(a, i, b, j, n, w, d16)
    fixed.row_q7(a, i, n, ring)
    fixed.rows_q7(d16, 0, ring, 0, n, w, d8, k)
    fixed.rows_q7(d16, 0, ring, 0, n, w, ring, n)


def test_row_steps_equal_their_numpy_definitions():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 400, dtype=np.uint8)
    for n, w in ((32, 0), (33, 32767), (100, 12345), (257, 1)):
        d16, ring, d8 = np.zeros(300, np.int16), np.zeros(600, np.int16), np.zeros(320, np.uint8)
        _rows(a, 5, a, 77, n, w, d16, ring, 3, d8)
        r16, rring, r8 = np.zeros_like(d16), np.zeros_like(ring), np.zeros_like(d8)
        fixed.rows_u8_py(a, 5, a, 77, n, w, r16)
        fixed.row_q7_py(a, 5, n, rring)
        fixed.rows_q7_py(r16, 0, rring, 0, n, w, r8, 3)
        fixed.rows_q7_py(r16, 0, rring, 0, n, w, rring, n)
        np.testing.assert_array_equal(d16, r16)
        np.testing.assert_array_equal(ring, rring)
        np.testing.assert_array_equal(d8, r8)
    # by hand: a blend of 0 and 100 at weight 1/2 is 50, Q7 6400; that blended with 0 is 25
    z = np.zeros(64, np.uint8)
    z[32:] = 100
    q, r, o = np.zeros(32, np.int16), np.zeros(64, np.int16), np.zeros(40, np.uint8)
    _rows(z, 0, z, 32, 32, 16384, q, r, 0, o)
    assert q.tolist() == [6400] * 32 and o[:32].tolist() == [25] * 32


@njit
def _gathers(src, idx, wq, bgr, base8, perm, d8, d16, p8):
    fg.gather_row(src, idx, wq, bgr, d8, 0)
    fg.gather_row(src, idx, wq, bgr, d16, 0)
    ok = fg.permute_ok() and fg.permute_tables(idx, bgr, base8, perm)
    if ok:
        fg.permute_row(src, base8, perm, wq, p8, 0)
    return ok


@pytest.mark.parametrize("flip", [False, True])
def test_gathers_equal_their_numpy_definitions_and_each_other(flip):
    rng = np.random.default_rng(1)
    src = np.zeros(400, np.int16)
    src[:300] = rng.integers(0, 32641, 300)
    offs = np.sort(rng.integers(0, 98, 24)) * 3  # 24 output pixels from <= 100 source pixels
    idx = (offs[::-1] if flip else offs).astype(np.uint32)
    wq = rng.integers(0, 32768, 24).astype(np.int16)
    wq[:2] = (0, 32767)
    for bgr in (False, True):
        base8, perm = np.zeros(3, np.uint32), np.zeros(96, np.int16)
        d8, d16, p8 = np.zeros(80, np.uint8), np.zeros(80, np.int16), np.zeros(80, np.uint8)
        ok = _gathers(src, idx, wq, bgr, base8, perm, d8, d16, p8)
        r8, r16 = np.zeros(72, np.uint8), np.zeros(72, np.int16)
        fg.gather_row_py(src, idx, wq, bgr, r8, 0)
        fg.gather_row_py(src, idx, wq, bgr, r16, 0)
        np.testing.assert_array_equal(d8[:72], r8)
        np.testing.assert_array_equal(d16[:72], r16)
        assert np.array_equal(r8, (r16.astype(int) + 64) >> 7)
        if ok:  # AVX-512: the permute path gives the same bytes
            np.testing.assert_array_equal(p8[:72], r8)
            py = np.zeros(72, np.uint8)
            fg.permute_row_py(src, base8, perm, wq, py, 0)
            np.testing.assert_array_equal(py, r8)
        i = int(idx[0])  # output pixel 0 (weight 0) is its left source pixel, channels as asked
        pix = src[i : i + 3][::-1] if bgr else src[i : i + 3]
        assert r16[:3].tolist() == pix.tolist()


def test_permute_tables_refuse_groups_wider_than_the_window():
    idx = (np.arange(8) * 9 * 3).astype(np.uint32)  # 9 source pixels per output pixel
    assert not fg.permute_tables(idx, False, np.zeros(1, np.uint32), np.zeros(64, np.int16))


def _ref_axis(src, ax, bx, ay, by, H, W):
    # float64 bilinear map with a replicated border, as resize_axis defines it
    def taps(n_out, a, b, n):
        s = np.clip(a * np.arange(n_out) + b, 0, n - 1)
        i = np.minimum(s.astype(int), max(n - 2, 0))
        return i, np.minimum(i + 1, n - 1), np.minimum(s - i, 1.0)

    x0, x1, fx = taps(W, ax, bx, src.shape[1])
    y0, y1, fy = taps(H, ay, by, src.shape[0])
    s = src.astype(float)
    rows = s[y0] * (1 - fy)[:, None, None] + s[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def _maps(rng, h, w, count):
    """Random crops (inside the source), output sizes 1..70, scales 0.2x..5x, flips."""
    for _ in range(count):
        H, W = (int(v) for v in rng.integers(1, 71, 2))
        ch = rng.uniform(0.5, h)
        cw = rng.uniform(0.5, w)
        y0 = rng.uniform(0, h - ch)
        x0 = rng.uniform(0, w - cw)
        ay, ax = ch / H, cw / W
        by, bx = y0 + ay / 2 - 0.5, x0 + ax / 2 - 0.5
        if rng.random() < 0.5:  # horizontal flip: decreasing x
            ax, bx = -ax, x0 + cw - abs(ax) / 2 - 0.5
        yield H, W, ax, bx, ay, by


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_resize_axis_within_the_fixed_point_bound_of_exact(kind):
    """Every output value within 0.516 of the exact bilinear value (the float32 kernel it
    replaced was within 0.5 + 1e-4: the two differ by at most 1)."""
    rng = np.random.default_rng(2 if kind == "random" else 3)
    for h, w in ((1, 1), (1, 9), (9, 1), (2, 3), (17, 23), (40, 61), (120, 90)):
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if kind == "smooth":
            src = np.clip(np.cumsum(src.astype(int) - 127, axis=1) // 4 + 128, 0, 255)
            src = src.astype(np.uint8)
        bgr = np.ascontiguousarray(src[..., ::-1])
        for H, W, ax, bx, ay, by in _maps(rng, h, w, 12):
            ref = _ref_axis(src, ax, bx, ay, by, H, W)
            out = np.empty((H, W, 3), np.uint8)
            kernels.resize_axis(src, False, ax, bx, ay, by, EYE, ZERO, False, out)
            err = np.abs(out - ref).max()
            assert err < BOUND, (h, w, H, W, ax, ay, err)
            alt = np.empty_like(out)
            kernels.resize_axis(bgr, True, ax, bx, ay, by, EYE, ZERO, False, alt)
            assert np.array_equal(alt, out)  # the BGR swap changes no value


def test_resize_axis_colour_within_bound_and_one_pixel_crops():
    rng = np.random.default_rng(4)
    cmat = np.float32([[1.1, 0.1, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]])
    coff = np.float32([3.0, -2.0, 1.0])
    src = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for H, W, ax, bx, ay, by in _maps(rng, 33, 47, 20):
        ref = _ref_axis(src, ax, bx, ay, by, H, W) @ cmat.T.astype(float) + coff
        out = np.empty((H, W, 3), np.uint8)
        kernels.resize_axis(src, False, ax, bx, ay, by, cmat, coff, True, out)
        # the colour matrix scales the resampling error by its largest row sum (1.25)
        ok = np.abs(out - np.clip(ref, 0, 255)) < 0.5 + 0.016 * 1.25 + 1e-3
        assert ok.all(), (H, W)
    # a 1-pixel source upscaled is that pixel everywhere, in either channel order
    one = np.ascontiguousarray(src[20:21, 10:11])
    out = np.empty((7, 5, 3), np.uint8)
    for bgr, img in ((False, one), (True, np.ascontiguousarray(one[..., ::-1]))):
        kernels.resize_axis(img, bgr, 1 / 5, -0.4, 1 / 7, -0.43, EYE, ZERO, False, out)
        assert (out == src[20, 10]).all()
        kernels.resize_axis(img, bgr, -1 / 5, 0.4, 1 / 7, -0.43, EYE, ZERO, False, out)
        assert (out == src[20, 10]).all()


def test_resize_axis_exact_at_whole_pixel_steps():
    # integer steps and offsets: every weight 0, output = the sampled source pixels exactly
    src = np.random.default_rng(5).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for ay, ax in ((1, 1), (2, 1), (1, 2), (2, 2)):
        H, W = 50 // ay, 70 // ax
        out = np.empty((H, W, 3), np.uint8)
        kernels.resize_axis(src, False, float(ax), 0.0, float(ay), 0.0, EYE, ZERO, False, out)
        assert np.array_equal(out, src[::ay, ::ax][:H, :W])
        kernels.resize_axis(src, False, -float(ax), 69.0, float(ay), 0.0, EYE, ZERO, False, out)
        assert np.array_equal(out, src[::ay, ::-ax][:H, :W])


def test_box_reduce_gives_the_exact_means_rounded_half_up():
    """The int16 box means (blocks up to 128 pixels) and the float32-sum path (larger blocks)
    against exact integer means: identical bytes, blocks cut by the border included."""
    from augpipe.ops import axis

    rng = np.random.default_rng(6)
    for h, w, fy, fx in ((7, 5, 2, 2), (40, 61, 1, 2), (61, 40, 2, 1), (33, 47, 3, 5),
                         (100, 90, 8, 8), (50, 70, 16, 8), (30, 30, 12, 12)):  # fmt: skip
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        y0, x0 = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        H, W = -(-(h - y0) // fy), -(-(w - x0) // fx)
        ref = np.empty((H, W, 3), np.int64)
        for oy in range(H):
            for ox in range(W):
                block = src[y0 + oy * fy : y0 + oy * fy + fy, x0 + ox * fx : x0 + ox * fx + fx]
                c = block.shape[0] * block.shape[1]
                ref[oy, ox] = (2 * block.reshape(-1, 3).astype(np.int64).sum(0) + c) // (2 * c)
        a = np.empty((H, W, 3), np.uint8)
        b = np.empty_like(a)
        kernels.box_reduce(src, y0, x0, fy, fx, a)
        axis._box_reduce_float(src, y0, x0, fy, fx, b)
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(b, ref)


def test_render_record_reads_the_program_fields_in_order():
    # render_item hands Numba the record itself; _render_record builds _render's program tuple
    # from it by name, in PROGRAM_FIELDS' order (a field added there must be added here too)
    import inspect
    import re

    from augpipe.ops import fused

    text = inspect.getsource(fused._render_record.py_func)
    start = text.index("pg = (")
    names = re.findall(r'\br\["(\w+)"\]', text[start : text.index(")", start)])
    assert tuple(names) == fused.PROGRAM_FIELDS
