"""The Numba kernels on tiny hand-computed arrays and against OpenCV references."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np

from augpipe.ops import kernels

EYE = np.eye(3, dtype=np.float32)
ZERO = np.zeros(3, dtype=np.float32)


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth(h, w, seed=0):
    small = _img(max(2, h // 8), max(2, w // 8), seed)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_resize_axis_identity_and_flip_exact():
    src = _img(5, 7)
    out = np.empty_like(src)
    kernels.resize_axis(src, False, 1.0, 0.0, 1.0, 0.0, EYE, ZERO, False, out)
    assert np.array_equal(out, src)
    kernels.resize_axis(src, False, -1.0, 6.0, 1.0, 0.0, EYE, ZERO, False, out)
    assert np.array_equal(out, src[:, ::-1])


def test_resize_axis_hand_computed_midpoints():
    src = np.zeros((1, 2, 3), np.uint8)
    src[0, 1] = (100, 50, 10)
    out = np.empty((1, 3, 3), np.uint8)
    # x = 0, 0.5, 1 -> 0, half, full
    kernels.resize_axis(src, False, 0.5, 0.0, 1.0, 0.0, EYE, ZERO, False, out)
    assert out[0].tolist() == [[0, 0, 0], [50, 25, 5], [100, 50, 10]]


def test_resize_axis_bgr_swap_is_free():
    src = _img(6, 6)
    out = np.empty_like(src)
    kernels.resize_axis(
        np.ascontiguousarray(src[..., ::-1]), True, 1.0, 0.0, 1.0, 0.0, EYE, ZERO, False, out
    )
    assert np.array_equal(out, src)


def test_resize_axis_matches_cv2_resize():
    src = _smooth(60, 80)
    for oh, ow in ((24, 32), (45, 70), (90, 100)):
        out = np.empty((oh, ow, 3), np.uint8)
        ay, ax = 60 / oh, 80 / ow
        kernels.resize_axis(src, False, ax, ax / 2 - 0.5, ay, ay / 2 - 0.5, EYE, ZERO, False, out)
        ref = cv2.resize(src, (ow, oh), interpolation=cv2.INTER_LINEAR)
        assert np.abs(out.astype(int) - ref).max() <= 1


def test_colour_matrix_applied_and_clamped():
    src = np.full((2, 2, 3), 100, np.uint8)
    out = np.empty_like(src)
    cmat = np.diag([2.0, 0.5, 3.0]).astype(np.float32)
    kernels.resize_axis(src, False, 1.0, 0.0, 1.0, 0.0, cmat, np.float32([10, 0, 0]), True, out)
    assert out[0, 0].tolist() == [210, 50, 255]


def test_box_reduce_matches_inter_area():
    src = _img(32, 48)
    out = np.empty((8, 12, 3), np.uint8)
    kernels.box_reduce(src, 0, 0, 4, 4, out)
    ref = cv2.resize(src, (12, 8), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_warp_matches_cv2_warp_affine():
    src = _smooth(64, 64)
    M = cv2.getRotationMatrix2D((32, 32), 17, 0.8)  # forward map
    inv = cv2.invertAffineTransform(M)
    # kernel frame: centred output pixels -> A2 -> source edge coordinates
    A2 = np.eye(3)
    A2[:2, :2] = inv[:, :2]
    A2[:2, 2] = inv[:, :2] @ [31.5, 31.5] + inv[:, 2] + 0.5  # centre of pixel (31.5, 31.5)
    out = np.empty((64, 64, 3), np.uint8)
    kernels.warp(src, False, 0, 64, 0, 64, np.eye(3), 0.0, A2, 0.0, EYE, ZERO, False, out)
    ref = cv2.warpAffine(src, M, (64, 64), flags=cv2.INTER_LINEAR, borderValue=0)
    inner = (slice(12, 52), slice(12, 52))
    assert np.abs(out[inner].astype(int) - ref[inner]).mean() < 0.6
    assert np.abs(out.astype(int) - ref).mean() < 2.0


def test_region_mean():
    src = np.zeros((10, 10, 3), np.uint8)
    src[:, :, 0] = 30
    src[:, :, 2] = 90
    assert np.allclose(kernels.region_mean(src, False, 0, 10, 0, 10), [30, 0, 90])
    assert np.allclose(kernels.region_mean(src, True, 0, 10, 0, 10), [90, 0, 30])


def test_compiled_equals_pure_python(tmp_path):
    """Same pipeline output with the JIT and with NUMBA_DISABLE_JIT=1 (a tiny input)."""
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from augpipe.transforms import (Affine, ColorJitter, Compose, HorizontalFlip,
                                        LensDistortion, PCALighting, RandomResizedCrop)
        img = np.random.default_rng(1).integers(0, 256, (20, 26, 3), dtype=np.uint8)
        pipes = [Compose([RandomResizedCrop(12), HorizontalFlip()]),
                 Compose([RandomResizedCrop(12), HorizontalFlip(), Affine(rotate=20, shear=5),
                          LensDistortion(0.2), ColorJitter(0.4, 0.4, 0.4),
                          PCALighting(0.1, eigval=(0.2, 0.02, 0.01), eigvec=np.eye(3))]),
                 Compose([RandomResizedCrop(4, scale=(0.9, 1.0))])]  # 5x shrink: box path
        out = np.concatenate([p(img, index=i, seed=3).ravel() for p in pipes for i in range(3)])
        np.save(sys.argv[1], out)
    """)
    outs = []
    for jit in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit)
        path = tmp_path / f"out{jit}.npy"
        subprocess.run([sys.executable, "-c", script, str(path)], env=env, check=True, timeout=240)
        outs.append(np.load(path))
    # float32 vs float64 arithmetic may round a rare value differently
    assert np.abs(outs[0].astype(int) - outs[1]).max() <= 1
    assert np.mean(outs[0] != outs[1]) < 0.01


def test_warp_reads_bgr_as_rgb_and_fills_outside():
    src = _smooth(20, 24)
    A2 = np.array([[0.9, 0.2, 12.0], [-0.2, 0.9, 10.0], [0, 0, 1.0]])
    a = np.empty((16, 16, 3), np.uint8)
    b = np.empty_like(a)
    kernels.warp(src, False, 0, 20, 0, 24, np.eye(3), 0.1, A2, 7.0, EYE, ZERO, False, a)
    bgr = np.ascontiguousarray(src[..., ::-1])
    kernels.warp(bgr, True, 0, 20, 0, 24, np.eye(3), 0.1, A2, 7.0, EYE, ZERO, False, b)
    assert np.array_equal(a, b)
    far = np.array([[1.0, 0, 500.0], [0, 1.0, 500.0], [0, 0, 1.0]])
    kernels.warp(src, False, 0, 20, 0, 24, np.eye(3), 0.0, far, 7.0, EYE, ZERO, False, a)
    assert np.all(a == 7)


def _ref_axis(src, ax, bx, ay, by, H, W):
    # float64 reference of the separable bilinear map with a replicated border
    def taps(n_out, a, b, n):
        s = np.clip(a * np.arange(n_out) + b, 0, n - 1)
        i = np.minimum(s.astype(int), max(n - 2, 0))
        return i, np.minimum(i + 1, n - 1), s - i

    x0, x1, fx = taps(W, ax, bx, src.shape[1])
    y0, y1, fy = taps(H, ay, by, src.shape[0])
    s = src.astype(float)
    rows = s[y0] * (1 - fy)[:, None, None] + s[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def test_resize_axis_both_pass_orders_flip_bgr_and_colour():
    """Upscales take the horizontal-first order, downscales the vertical-first one."""
    src = _img(30, 40, seed=3)
    cmat = np.float32([[1.1, 0.1, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]])
    coff = np.float32([3.0, -2.0, 1.0])
    for H, W in ((64, 56), (12, 16), (40, 20)):
        ax, ay = 40 / W, 30 / H
        ref = _ref_axis(src, -ax, 40 - ax / 2 - 0.5, ay, ay / 2 - 0.5, H, W)
        col = np.clip(np.floor(ref @ cmat.T.astype(float) + coff + 0.5), 0, 255)
        out = np.empty((H, W, 3), np.uint8)
        bgr = np.ascontiguousarray(src[..., ::-1])
        kernels.resize_axis(bgr, True, -ax, 40 - ax / 2 - 0.5, ay, ay / 2 - 0.5, EYE, ZERO,
                            False, out)  # fmt: skip
        assert np.abs(out.astype(int) - np.floor(ref + 0.5)).max() <= 1
        kernels.resize_axis(src, False, -ax, 40 - ax / 2 - 0.5, ay, ay / 2 - 0.5, cmat, coff,
                            True, out)  # fmt: skip
        assert np.abs(out.astype(int) - col).max() <= 1


def test_lerp_pixel_compiled_equals_python_and_swaps_channels():
    from numba import njit

    from augpipe.ops.simd import lerp_pixel, lerp_pixel2

    @njit
    def gather(src, offs, fx, fy, bgr, two, dst):
        for o in range(offs.shape[0]):  # left to right: the spare lane is overwritten
            if two:
                lerp_pixel2(src, offs[o], offs[o] + 9, fx[o], fy[o], dst, 3 * o, bgr)
            else:
                lerp_pixel(src, offs[o], fx[o], dst, 3 * o, bgr)

    rng = np.random.default_rng(0)
    src = rng.uniform(0, 255, 40).astype(np.float32)
    offs = np.array([0, 3, 3, 12, 24, 6], np.uint32)  # pixel offsets; reads up to 24 + 9 + 6
    fx = rng.uniform(0, 1, len(offs)).astype(np.float32)
    fy = rng.uniform(0, 1, len(offs)).astype(np.float32)
    for two in (False, True):
        for bgr in (False, True):
            got = np.zeros(len(offs) * 3 + 1, np.float32)  # + 1: the spare lane
            gather(src, offs, fx, fy, bgr, two, got)
            ref = np.zeros(len(offs) * 3, np.float32)
            for o, i in enumerate(offs):  # the plain-Python definitions (NUMBA_DISABLE_JIT)
                if two:
                    lerp_pixel2(src, int(i), int(i) + 9, fx[o], fy[o], ref, 3 * o, bgr)
                else:
                    lerp_pixel(src, int(i), fx[o], ref, 3 * o, bgr)
            np.testing.assert_allclose(got[:-1], ref, rtol=0, atol=1e-3)
            p = src[offs[1] : offs[1] + 6].astype(float)  # pixel 1 by hand, top row only
            top = p[:3] + fx[1] * (p[3:] - p[:3])
            if not two:
                np.testing.assert_allclose(got[3:6], top[::-1] if bgr else top, atol=1e-3)


def test_resize_axis_one_pixel_wide_and_tall_sources():
    # a 1-pixel axis replicates (cv2.resize's border); upscales and downscales, both orders
    for h, w in ((1, 1), (1, 6), (6, 1), (1, 40), (40, 1)):
        src = _img(h, w, seed=h * 7 + w)
        for H, W in ((5, 7), (20, 3)):
            out = np.empty((H, W, 3), np.uint8)
            ax, ay = w / W, h / H
            kernels.resize_axis(src, False, ax, ax / 2 - 0.5, ay, ay / 2 - 0.5, EYE, ZERO, False,
                                out)  # fmt: skip
            ref = cv2.resize(src, (W, H), interpolation=cv2.INTER_LINEAR)
            assert np.abs(out.astype(int) - ref).max() <= 1, (h, w, H, W)


def test_fused_kernel_digest_tracks_the_kernel_sources():
    # Numba caches _render's machine code keyed on fused.py's own text; the kernels it calls
    # are inside that code, so fused.py carries a digest of their sources
    import hashlib

    from augpipe.ops import fused

    folder = os.path.dirname(fused.__file__)
    h = hashlib.sha256()
    for name in fused._KERNEL_SOURCES:
        with open(os.path.join(folder, name), "rb") as f:
            h.update(f.read())
    assert fused._KERNELS_DIGEST == h.hexdigest()[:16], (
        f"augpipe/ops/fused.py: set _KERNELS_DIGEST = {h.hexdigest()[:16]!r} (the kernel "
        "sources changed; otherwise Numba's cache keeps the old kernels inside _render)"
    )


def test_gather4x2_equals_lerp_pixel2():
    # the warp kernel's four-pixel bilinear step against the one-pixel blend it replaces
    from numba import njit

    from augpipe.ops.simd import gather4x2, lerp_pixel2

    @njit
    def one(src, offs, stride, wx, wy, bgr, dst):
        for o in range(offs.shape[0]):
            lerp_pixel2(src, offs[o], offs[o] + stride, wx[o], wy[o], dst, 3 * o, bgr)

    @njit
    def four(src, offs, stride, wx, wy, bgr, dst):
        for o in range(0, offs.shape[0], 4):
            gather4x2(src, offs, stride, wx, wy, o, dst, 3 * o, bgr)

    rng = np.random.default_rng(2)
    stride = np.uint32(30)
    src = np.zeros(100, np.float32)
    src[:92] = rng.uniform(0, 255, 92)
    offs = np.array([0, 3, 27, 9, 12, 48, 51, 54], np.uint32)  # reads up to 54 + 30 + 7
    wx = rng.uniform(0, 1, len(offs)).astype(np.float32)
    wy = rng.uniform(0, 1, len(offs)).astype(np.float32)
    wx[0], wy[0] = 1.0, 1.0  # pixel 0: exactly the source pixel at 0 + 3 + 30
    for bgr in (False, True):
        ref = np.zeros(len(offs) * 3 + 1, np.float32)
        one(src, offs, stride, wx, wy, bgr, ref)
        got = np.zeros(len(offs) * 3 + 4, np.float32)
        four(src, offs, stride, wx, wy, bgr, got)
        np.testing.assert_allclose(got[:-4], ref[:-1], rtol=0, atol=1e-3)
        p = src[33:36]
        np.testing.assert_allclose(got[:3], p[::-1] if bgr else p, atol=1e-3)
        u8 = np.zeros(len(offs) * 3 + 4, np.uint8)
        four(src, offs, stride, wx, wy, bgr, u8)
        np.testing.assert_array_equal(u8[:-4], np.floor(got[:-4] + 0.5).astype(np.uint8))
        py = np.zeros(len(offs) * 3, np.float32)  # the plain-Python definition
        for o in range(0, len(offs), 4):
            gather4x2(src, offs, stride, wx, wy, o, py, 3 * o, bgr)
        np.testing.assert_allclose(got[:-4], py, rtol=0, atol=1e-3)


def test_a_degenerate_shrink_renders_the_fill_not_a_petabyte_box_filter():
    # hypothesis found RandomScale(1e-15): the box filter's factor, 1e15, sized its buffers
    from augpipe import Compose
    from augpipe.ops.detection.random_scale import RandomScale

    img = _img(36, 44)
    for fill in (0, 114):
        out = Compose([RandomScale(scale=(1e-15, 1e-15), p=1.0)], fill=fill)(img, 0, 0, 0)
        assert out.shape == img.shape and (out == fill).all()
