"""The vectorised pixel-program kernels (``ops/pixel/tables.py``, ``filters.py``) against NumPy
definitions of the per-pixel loops they replaced: equal on random and real-looking tiles of odd
sizes (block tails), in the kernel alone and through the fused render path."""

from __future__ import annotations

import numpy as np
import pytest

from augpipe import transforms as T
from augpipe.ops.pixel import filters, tables, tile
from augpipe.ops.pixel import program as P
from augpipe.synth import make_image

SIZES = [(1, 1), (2, 7), (3, 3), (5, 17), (26, 30), (33, 41)]


def _tiles(seed=0):
    rng = np.random.default_rng(seed)
    for h, w in SIZES:
        yield rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if h >= 3:
            yield make_image(seed % 3, 3, h, w, rng)


def _sharpness_ref(img, f):
    """The replaced loop: 3x3 sum (centre 5) rounded as floor(s / 13 + 0.5), float32 blend
    d + f (x - d), clamped and truncated; the one-pixel border ring unchanged."""
    out = img.copy()
    H, W = img.shape[:2]
    if H < 3 or W < 3:
        return out
    t = img.astype(np.int32)
    s = 4 * t[1:-1, 1:-1]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            s = s + t[dy : H - 2 + dy, dx : W - 2 + dx]
    d = np.floor(s / 13.0 + 0.5).astype(np.float32)
    x = img[1:-1, 1:-1].astype(np.float32)
    v = d + np.float32(f) * (x - d)
    out[1:-1, 1:-1] = np.clip(v, 0, 255).astype(np.uint8)
    return out


def test_sharpness_rounding_identity_is_exact_for_every_sum():
    # floor(s / 13 + 0.5) in float64 == floor((s + 6.5) / 13) in float32, s in 0 .. 13 * 255
    s = np.arange(13 * 255 + 1)
    old = np.floor(s / 13.0 + 0.5)
    new = np.floor((s.astype(np.float32) + np.float32(6.5)) / np.float32(13.0))
    assert np.array_equal(old, new)


@pytest.mark.parametrize("f", [0.0, 0.1, 1.0, 1.37, 1.9, 2.0])
def test_sharpness_equals_the_per_pixel_loop(f):
    for img in _tiles(1):
        out = img.copy()
        filters.sharpness(out, f)
        assert np.array_equal(out, _sharpness_ref(img, f)), img.shape


def test_sharpness_in_the_render_path_equals_the_loop():
    # through _render (compiled with fastmath): the pixel kernels keep their own float rules
    img = make_image(1, 3, 31, 37, np.random.default_rng(5))
    for f in (0.3, 1.9):
        assert np.array_equal(T.Compose([T.Sharpness(f)])(img), _sharpness_ref(img, f))


STATIC = [(P.SOLARIZE, a, 0) for a in (0, 1, 77.3, 128, 255, 255.5, 256, -3, 300)]
STATIC += [(P.SOLARIZE_ADD, a, t) for a, t in ((30, 128), (0, 0), (255, 256), (40.7, 100.2))]
STATIC += [(P.POSTERIZE, b, 0) for b in range(0, 9)] + [(P.INVERT, 0, 0)]


@pytest.mark.parametrize("code,a0,a1", STATIC)
def test_static_steps_equal_their_tables(code, a0, a1):
    a0, a1 = np.float32(a0), np.float32(a1)
    lut = np.empty((3, 256), np.uint8)
    tables.static_lut(code, a0, a1, lut)
    every = np.arange(256, dtype=np.uint8)[:, None, None].repeat(3, axis=2)  # every value
    for img in [every, *_tiles(2)]:
        out = img.copy()
        tables.static_step(out.reshape(-1), code, a0, a1)
        assert np.array_equal(out, lut[0][img])


def test_histogram_and_minmax_on_odd_sizes():
    for img in _tiles(3):
        flat = img.reshape(-1, 3)
        h = tables.histogram(img.reshape(-1))
        for c in range(3):
            assert np.array_equal(h[c], np.bincount(flat[:, c], minlength=256))
        lo, hi = tables.minmax(img.reshape(-1))
        assert list(lo) == list(flat.min(0)) and list(hi) == list(flat.max(0))


def _autocontrast_ref(img):
    lut = np.empty((3, 256), np.uint8)
    tables.autocontrast_lut(tables.histogram(img.reshape(-1)), lut)
    return np.stack([lut[c][img[..., c]] for c in range(3)], axis=-1)


def test_autocontrast_equals_its_table_for_every_range():
    ramp = np.arange(256)
    for lo in range(0, 256, 3):
        for hi in range(lo, 256, 5):
            chans = [np.clip(ramp, lo, hi), np.clip(ramp, 255 - hi, 255 - lo), np.full(256, lo)]
            img = np.stack(chans, axis=-1).astype(np.uint8).reshape(16, 16, 3)
            out = img.copy()
            tables.autocontrast(out.reshape(-1))
            assert np.array_equal(out, _autocontrast_ref(img)), (lo, hi)
    for img in _tiles(4):
        out = img.copy()
        tables.autocontrast(out.reshape(-1))
        assert np.array_equal(out, _autocontrast_ref(img))


def _contracted_case():
    # a fused multiply-add rounds int(255 s - 52 s), s = 255 / 203, down to 254
    img = make_image(0, 3, 29, 35, np.random.default_rng(7))
    img[0, 0] = (52, 60, 0)
    img[1, 1] = (255, 200, 255)
    img[..., 0] = np.clip(img[..., 0], 52, 255)
    return img


def test_autocontrast_in_the_render_path_equals_its_table():
    img = _contracted_case()
    assert np.array_equal(T.Compose([T.AutoContrast()])(img), _autocontrast_ref(img))


def test_pixel_kernels_keep_their_float_rules_under_a_fastmath_caller():
    # Numba compiles a kernel without its own fastmath option with its caller's (_render is
    # fastmath): the pixel kernels set it off, so a first compile from _render rounds the same
    from numba import njit

    for mod in (tile, tables, filters):
        assert mod._K["fastmath"] is False
    fresh = njit(**dict(tables._K, cache=False))(tables.autocontrast.py_func)

    @njit(fastmath=True, cache=False)
    def caller(flat):
        fresh(flat)

    img = _contracted_case()
    out = img.copy()
    caller(out.reshape(-1))
    assert np.array_equal(out, _autocontrast_ref(img))


@pytest.mark.parametrize("tv", [False, True])
def test_contrast_uses_the_exact_grey_mean(tv):
    for img in _tiles(5):
        f = np.float32(1.6)
        x = img.reshape(-1, 3).astype(np.int64)
        if tv:
            g = np.floor(0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
            d = np.float32(g.sum() / len(x))
        else:
            g = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000) >> 16
            d = np.float32(int(g.sum() / len(x) + 0.5))
        v = d + f * (img.astype(np.float32) - d)
        ref = np.clip(v, 0, 255).astype(np.uint8)
        out = img.copy()
        tile.run_program(out, np.array([P.CONTRAST], np.int8),
                         np.array([[f, 1.0 if tv else 0.0, 0, 0]], np.float32))  # fmt: skip
        assert np.array_equal(out, ref)


def test_equalize_through_the_program_equals_its_table():
    for img in _tiles(6):
        lut = np.empty((3, 256), np.uint8)
        flat = img.reshape(-1, 3)
        h = np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.int64)
        tables.equalize_lut(h, lut)
        out = img.copy()
        tile.run_program(out, np.array([P.EQUALIZE], np.int8), np.zeros((1, 4), np.float32))
        assert np.array_equal(out, np.stack([lut[c][img[..., c]] for c in range(3)], -1))


def test_grey_in_float32_is_exact_for_every_colour():
    # _blend_grey computes PIL's fixed-point L in float32: exact for all 2^24 colours
    v = np.arange(256, dtype=np.int64)
    r, g = np.meshgrid(v, v, indexing="ij")
    k = [np.float32(c) for c in (19595, 38470, 7471, 0x8000)]
    for b in range(256):
        exact = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        f = r.astype(np.float32) * k[0] + g.astype(np.float32) * k[1] + np.float32(b) * k[2]
        assert np.array_equal(np.floor((f + k[3]) * np.float32(1 / 65536)), exact)


@pytest.mark.parametrize("f", [0.0, 0.4, 1.7])
def test_color_equals_the_fixed_point_grey_blend(f):
    for img in _tiles(8):
        x = img.reshape(-1, 3).astype(np.int64)
        L = ((x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000) >> 16).astype(np.float32)
        v = L[:, None] + np.float32(f) * (img.reshape(-1, 3).astype(np.float32) - L[:, None])
        out = img.copy()
        tile.run_program(out, np.array([P.COLOR], np.int8), np.array([[f, 0, 0, 0]], np.float32))
        assert np.array_equal(out.reshape(-1, 3), np.clip(v, 0, 255).astype(np.uint8))


def _erase_ref(img, box, mode, colour, std, key):
    """The replaced per-pixel loop: colour (rounded) or colour + std N(hash) per pixel."""
    out = img.copy()
    y0, x0, h, w = (int(v) for v in box)
    if mode == 0 or h <= 0 or w <= 0:
        return out
    if mode != 3:
        out[y0 : y0 + h, x0 : x0 + w] = np.clip(colour + np.float32(0.5), 0, 255).astype(np.uint8)
        return out
    yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    z = np.uint64(key) ^ ((yy * img.shape[1] + xx) * 2 + 1).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    for c in range(3):
        g = tile._NORMAL[(z >> np.uint64(12 * c)) & np.uint64(4095)]
        v = colour[c] + std[c] * g + np.float32(0.5)
        out[y0 : y0 + h, x0 : x0 + w, c] = np.clip(v, 0, 255).astype(np.uint8)
    return out


def test_erase_equals_the_per_pixel_loop():
    rng = np.random.default_rng(9)
    colour = np.array([124.3, 116.0, 300.0], np.float32)  # the last channel clamps
    std = np.array([58.4, 57.1, 57.4], np.float32)
    for _ in range(60):
        H, W = rng.integers(1, 40, 2)
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        h, w = rng.integers(0, H + 1), rng.integers(0, W + 1)
        box = np.array([rng.integers(0, H - h + 1), rng.integers(0, W - w + 1), h, w], np.int32)
        key = np.uint64(rng.integers(0, 2**63))
        for mode in (0, 1, 2, 3):
            out = img.copy()
            tile.erase(out, box, np.int8(mode), colour, std, key)
            assert np.array_equal(out, _erase_ref(img, box, mode, colour, std, key)), mode


def test_erase_boxes_do_not_depend_on_the_batch():
    # the attempts stop once every sample of the batch has its box: a sample's box is the one
    # it gets alone (which may take all ten attempts)
    op = T.RandomErasing(1.0, scale=(0.3, 0.9), ratio=(0.2, 5.0), mode="rand")
    idx = np.arange(200)
    batch = op.erase_box(idx, 3, 1, 0, (24, 20))
    assert 0 < batch["emode"].astype(bool).sum() < len(idx)  # some samples find no box
    for i in idx:
        one = op.erase_box(idx[i : i + 1], 3, 1, 0, (24, 20))
        for k, v in one.items():
            assert np.array_equal(v[0], batch[k][i]), (i, k)


def test_clip_canvas_fills_exactly_the_pixels_mapped_outside():
    from augpipe.ops.policies import vocab as V

    rng = np.random.default_rng(10)
    fill = np.array([124, 116, 104], np.float32)
    kinds = [V.ROTATE, V.SHEAR_X, V.SHEAR_Y, V.TRANSLATE_X, V.TRANSLATE_Y]
    top = {V.ROTATE: 135.0, V.SHEAR_X: 1.0, V.SHEAR_Y: 1.0, V.TRANSLATE_X: 60, V.TRANSLATE_Y: 60}
    for _ in range(80):
        H, W = (int(v) for v in rng.integers(1, 50, 2))
        k = rng.choice(kinds, 2)
        v = np.array([rng.uniform(-top[c], top[c]) for c in k])
        G = V.geometry(k[None], v[None], (H, W))[0]
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        out = img.copy()
        tile.clip_canvas(out, G, fill)
        hx, hy = W / 2.0, H / 2.0
        Y, X = np.mgrid[0:H, 0:W] + 0.5
        X, Y = X - hx, Y - hy
        u = G[0, 0] * X + G[0, 1] * Y + G[0, 2]
        w = G[1, 0] * X + G[1, 1] * Y + G[1, 2]
        outside = (u < -hx) | (u >= hx) | (w < -hy) | (w >= hy)
        ref = np.where(outside[..., None], fill.astype(np.uint8), img)
        assert np.array_equal(out, ref), (H, W, k, v)
