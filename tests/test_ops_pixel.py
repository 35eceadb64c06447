"""The post-resample stages against PIL: LUT ops exact, enhance ops within 1, hand-made
histograms for equalize/autocontrast, sharpness's border ring, erase boxes, canvas clipping."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from augpipe import transforms as T
from augpipe.errors import ConfigError
from augpipe.ops.pixel import program as P
from augpipe.ops.pixel import tile
from augpipe.synth import make_image


def _photo(h=26, w=30, seed=0):
    """Real-looking: a shape on a gradient with noise (augpipe.synth)."""
    return make_image(seed % 3, 3, h, w, np.random.default_rng(seed))


def _pil(img, fn):
    return np.asarray(fn(Image.fromarray(img)))


def _solarize_add(im, add=40, thresh=128):  # timm's solarize_add
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return im.point(lut * 3)


LUT_CASES = [
    (T.Solarize(100), lambda im: ImageOps.solarize(im, 100)),
    (T.Solarize(0), lambda im: ImageOps.solarize(im, 0)),
    (T.SolarizeAdd(40, 128), _solarize_add),
    (T.Posterize(3), lambda im: ImageOps.posterize(im, 3)),
    (T.Posterize(1), lambda im: ImageOps.posterize(im, 1)),
    (T.Invert(), ImageOps.invert),
    (T.Equalize(), ImageOps.equalize),
    (T.AutoContrast(), ImageOps.autocontrast),
    (T.Grayscale(), lambda im: im.convert("L").convert("RGB")),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("op,ref", LUT_CASES, ids=lambda c: repr(c)[:30])
def test_lut_ops_equal_pil_exactly(op, ref, seed):
    img = _photo(seed=seed)
    assert np.array_equal(T.Compose([op])(img), _pil(img, ref))


ENHANCE_CASES = [
    ("Sharpness", 1.8, T.Sharpness(1.8)),
    ("Sharpness", 0.2, T.Sharpness(0.2)),
    ("Sharpness", 0.0, T.Sharpness(0.0)),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name,f,op", ENHANCE_CASES, ids=lambda c: str(c)[:20])
def test_enhance_ops_within_one_of_pil(name, f, op, seed):
    img = _photo(seed=seed)
    ref = _pil(img, lambda im: getattr(ImageEnhance, name)(im).enhance(f))
    out = T.Compose([op])(img)
    assert np.abs(out.astype(int) - ref).max() <= 1


@pytest.mark.parametrize("code,name", [(P.BRIGHTNESS, "Brightness"), (P.COLOR, "Color"),
                                       (P.CONTRAST, "Contrast")])  # fmt: skip
@pytest.mark.parametrize("f", [0.1, 0.6, 1.5])
def test_policy_enhance_steps_within_one_of_pil(code, name, f):
    img = _photo(seed=2)
    out = img.copy()
    tile.run_program(out, np.array([code], np.int8), np.array([[f, 0, 0, 0]], np.float32))
    ref = _pil(img, lambda im: getattr(ImageEnhance, name)(im).enhance(f))
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_sharpness_keeps_the_border_ring():
    img = _photo(seed=3)
    out = T.Compose([T.Sharpness(0.0)])(img)  # factor 0: the smoothed image itself
    assert np.array_equal(out[0], img[0]) and np.array_equal(out[-1], img[-1])
    assert np.array_equal(out[:, 0], img[:, 0]) and np.array_equal(out[:, -1], img[:, -1])
    smooth = _pil(img, lambda im: im.filter(ImageFilter.SMOOTH))
    assert np.abs(out[1:-1, 1:-1].astype(int) - smooth[1:-1, 1:-1]).max() <= 1
    assert not np.array_equal(out[1:-1, 1:-1], img[1:-1, 1:-1])


def _hist_lut(fn, h):
    lut = np.empty((3, 256), np.uint8)
    fn(np.tile(np.asarray(h, np.int64), (3, 1)), lut)
    return lut[0]


def test_equalize_on_hand_made_histograms():
    h = np.zeros(256, np.int64)
    h[10], h[20], h[200] = 255, 255, 10  # step = 510 // 255 = 2
    lut = _hist_lut(tile.equalize_lut, h)
    # lut[i] = (1 + cumsum before i) // 2
    assert lut[10] == 0 and lut[11] == 128 and lut[20] == 128 and lut[21] == 255
    assert lut[200] == 255
    one = np.zeros(256, np.int64)
    one[77] = 50  # a single value: identity
    assert np.array_equal(_hist_lut(tile.equalize_lut, one), np.arange(256))
    few = np.zeros(256, np.int64)
    few[3], few[9] = 100, 5  # step = 100 // 255 = 0: identity
    assert np.array_equal(_hist_lut(tile.equalize_lut, few), np.arange(256))
    flat = np.ones(256, np.int64) * 4  # uniform: already equalised -> near identity
    assert np.abs(_hist_lut(tile.equalize_lut, flat).astype(int) - np.arange(256)).max() <= 1


def test_autocontrast_on_hand_made_histograms():
    h = np.zeros(256, np.int64)
    h[50], h[100], h[150] = 1, 5, 1
    lut = _hist_lut(tile.autocontrast_lut, h)
    assert lut[50] == 0 and lut[150] == 255 and lut[100] == 127  # int(50 * 2.55)
    assert lut[0] == 0 and lut[255] == 255  # clamped outside [lo, hi]
    full = np.zeros(256, np.int64)
    full[0], full[255] = 1, 1  # already full range: identity
    assert np.array_equal(_hist_lut(tile.autocontrast_lut, full), np.arange(256))
    single = np.zeros(256, np.int64)
    single[90] = 9  # hi == lo: identity
    assert np.array_equal(_hist_lut(tile.autocontrast_lut, single), np.arange(256))


def test_autocontrast_is_per_channel():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = np.arange(16).reshape(4, 4) + 100  # red 100..115
    img[..., 1] = 7  # green constant: unchanged
    img[..., 2] = np.arange(16).reshape(4, 4) * 10  # blue 0..150
    out = T.Compose([T.AutoContrast()])(img)
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert np.all(out[..., 1] == 7)
    assert out[..., 2].max() == 255
    assert np.array_equal(out, _pil(img, ImageOps.autocontrast))


def test_gaussian_blur_matches_torchvision_kernel_on_an_impulse():
    img = np.zeros((9, 9, 3), np.uint8)
    img[4, 4] = 255
    out = img.copy()
    tile.run_program(out, np.array([P.BLUR], np.int8), np.array([[1.0, 2, 0, 0]], np.float32))
    x = np.arange(-2, 3)
    k = np.exp(-0.5 * x**2)
    k /= k.sum()
    ref = np.floor(np.outer(k, k) * 255 + 0.5)
    assert np.abs(out[2:7, 2:7, 0].astype(int) - ref).max() <= 1
    assert out[0, 0, 0] == 0 and out.sum() > 0
    assert abs(int(out[..., 0].sum()) - 255) <= 12  # mass kept (rounding)


def test_hue_shift_by_a_third_rotates_primaries():
    img = np.zeros((1, 3, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, 1] = (0, 255, 0)
    img[0, 2] = (90, 90, 90)
    out = img.copy()
    tile.run_program(out, np.array([P.HUE], np.int8), np.array([[1 / 3, 0, 0, 0]], np.float32))
    assert tuple(out[0, 0]) == (0, 255, 0) and tuple(out[0, 1]) == (0, 0, 255)
    assert tuple(out[0, 2]) == (90, 90, 90)


def test_color_jitter_hue_changes_colour_not_grey():
    img = _photo(seed=4)
    out = T.Compose([T.ColorJitter(hue=0.2)])(img, index=1)
    assert not np.array_equal(out, img)
    grey = np.full((6, 6, 3), 120, np.uint8)
    assert np.array_equal(T.Compose([T.ColorJitter(hue=0.2)])(grey, index=1), grey)


def test_random_erasing_box_fits_and_has_the_mode_colour():
    img = _photo(seed=5)
    op = T.RandomErasing(1.0, mode="const", value=(1, 2, 3))
    recs = T.Compose([op]).sample_params([img.shape[:2]] * 64, np.arange(64), seed=0)
    y0, x0, h, w = recs["ebox"].T
    on = recs["emode"] > 0
    assert on.mean() > 0.9
    H, W = img.shape[:2]
    assert np.all((y0[on] >= 0) & (y0[on] + h[on] <= H) & (x0[on] >= 0) & (x0[on] + w[on] <= W))
    assert np.all((h[on] < H) & (w[on] < W))
    area = h[on] * w[on] / (H * W)
    assert area.min() >= 0.01 and area.max() <= 0.4
    j = int(np.flatnonzero(on)[0])
    out = T.Compose([op]).apply(img, recs[j])
    b = out[y0[j] : y0[j] + h[j], x0[j] : x0[j] + w[j]]
    assert np.all(b == np.array([1, 2, 3], np.uint8))
    mask = np.ones(img.shape[:2], bool)
    mask[y0[j] : y0[j] + h[j], x0[j] : x0[j] + w[j]] = False
    assert np.array_equal(out[mask], img[mask])


def test_random_erasing_pixel_mode_is_noise_around_the_mean():
    img = np.zeros((40, 40, 3), np.uint8)
    op = T.RandomErasing(1.0, scale=(0.3, 0.3), ratio=(1, 1), mode="pixel")
    out = T.Compose([op])(img, index=2)
    erased = out[out.sum(axis=2) > 0].astype(float)
    assert len(erased) > 300
    assert np.allclose(erased.mean(axis=0), np.asarray(op.mean), atol=8)
    assert 40 < erased[:, 0].std() < 70
    assert np.array_equal(out, T.Compose([op])(img, index=2))  # deterministic noise


def test_erasing_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="RandomErasing.mode"):
        T.RandomErasing(mode="zeros")
    with pytest.raises(ConfigError, match="at most one RandomErasing"):
        T.Compose([T.RandomErasing(), T.RandomErasing()])
    with pytest.raises(ConfigError, match="GaussianBlur.kernel_size"):
        T.GaussianBlur(4)
    with pytest.raises(ConfigError, match="Posterize.bits"):
        T.Posterize(9)


def test_clip_canvas_fills_outside_the_crop():
    out = np.full((4, 6, 3), 9, np.uint8)
    G = np.eye(3)
    G[0, 2] = 3.0  # shifted right by 3 px: the last 3 columns map outside
    tile.clip_canvas(out, G, np.array([1, 2, 3], np.float32))
    assert np.all(out[:, :3] == 9) and np.all(out[:, 3:] == np.array([1, 2, 3]))
