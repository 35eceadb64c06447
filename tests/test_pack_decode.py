"""The pack's fast paths give exactly what the reference computations give: simplejpeg's JPEG
decode and NumPy orientation vs Pillow's decode and ``ImageOps.exif_transpose``; the cached
statistics sampling vs ``rng.bits`` and ``x.sum``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from augpipe import rng
from augpipe.format import imageio, stats


def _photo_like(h: int = 37, w: int = 54) -> np.ndarray:
    # Smooth gradients plus noise: exercises chroma upsampling more than flat colours would.
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).integers(0, 40, (h, w, 3))
    px = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=2) + noise
    return np.clip(px, 0, 255).astype(np.uint8)


def _pillow_reference(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    "kind", ["444", "422", "420", "420-progressive", "grey", "grey-progressive"]
)
def test_fast_jpeg_decode_equals_pillow(tmp_path, kind, orientation):
    img = Image.fromarray(_photo_like())
    if kind.startswith("grey"):
        img = img.convert("L")
    exif = Image.Exif()
    exif[0x0112] = orientation
    opts = {"quality": 87, "exif": exif, "progressive": kind.endswith("progressive")}
    if not kind.startswith("grey"):
        opts["subsampling"] = {"444": 0, "422": 1, "420": 2}[kind[:3]]
    path = tmp_path / "a.jpg"
    img.save(path, **opts)
    data = path.read_bytes()
    assert imageio._decode_plain_jpeg(data, *img.size) is not None  # the fast path is taken
    pixels, _ = imageio.load_for_pack(str(path))
    ref = _pillow_reference(path)
    assert pixels.flags.c_contiguous and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, ref)


def test_other_jpegs_keep_the_pillow_path(tmp_path):
    px = _photo_like()
    Image.fromarray(px).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(px).save(tmp_path / "rgb.jpg", keep_rgb=True)  # Adobe RGB, no YCbCr
    for name in ("cmyk.jpg", "rgb.jpg"):
        data = (tmp_path / name).read_bytes()
        assert imageio._decode_plain_jpeg(data, px.shape[1], px.shape[0]) is None
        pixels, _ = imageio.load_for_pack(str(tmp_path / name))
        np.testing.assert_array_equal(pixels, _pillow_reference(tmp_path / name))
    # A truncated file makes libjpeg-turbo warn: the fast path declines, Pillow refuses it.
    Image.fromarray(px).save(tmp_path / "ycc.jpg")
    data = (tmp_path / "ycc.jpg").read_bytes()
    assert imageio._decode_plain_jpeg(data[: len(data) // 2], px.shape[1], px.shape[0]) is None


@pytest.mark.parametrize("index", [0, 1, 7, 123_456, 2**40 + 3, 2**63 + 5])
@pytest.mark.parametrize("n", [4097, 156_455, 10**7 + 3])
def test_sample_positions_equal_rng_bits(index, n):
    k = np.arange(stats.PIXELS_PER_IMAGE, dtype=np.uint64)
    expected = rng.bits(stats.STATS_SEED, 0, k, stream=index) % np.uint64(n)
    np.testing.assert_array_equal(stats._positions(index, n), expected)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (65, 64), (377, 415)])
def test_partial_is_the_exact_integer_sums(shape):
    px = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    flat = px.reshape(-1, 3)
    if flat.shape[0] > stats.PIXELS_PER_IMAGE:
        k = np.arange(stats.PIXELS_PER_IMAGE, dtype=np.uint64)
        pos = rng.bits(stats.STATS_SEED, 0, k, stream=9) % np.uint64(flat.shape[0])
        flat = flat[pos.astype(np.intp)]
    x = flat.astype(np.int64)
    expected = np.concatenate([[x.shape[0]], x.sum(axis=0), (x.T @ x).ravel()])
    got = stats.partial(px, 9)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_finish_is_exact_and_independent_of_the_order_of_addition():
    imgs = [np.random.default_rng(s).integers(0, 256, (70, 66, 3), dtype=np.uint8)
            for s in range(5)]  # fmt: skip
    parts = [stats.partial(px, i) for i, px in enumerate(imgs)]
    forward = stats.finish(np.sum(parts, axis=0))
    backward = np.zeros(13, np.int64)
    for p in parts[::-1]:
        backward += p
    assert stats.finish(backward) == forward
    x = np.concatenate([stats.sample_pixels(px, i) for i, px in enumerate(imgs)]) / 255.0
    np.testing.assert_allclose(forward["mean"], x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(forward["std"], x.std(0), rtol=1e-12)
