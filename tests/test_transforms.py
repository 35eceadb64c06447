"""The public transforms: geometry against OpenCV references, colour formulas, errors, batches."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from augpipe import transforms as T
from augpipe.errors import ConfigError, ConfigTypeError

EIG = dict(eigval=(0.2, 0.02, 0.005), eigvec=np.eye(3))


def _smooth(h, w, seed=0):
    small = np.random.default_rng(seed).integers(
        0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _flat(rgb, h=16, w=20):
    return np.tile(np.asarray(rgb, np.uint8), (h, w, 1))


def _ref_resize_short(img, short):
    h, w = img.shape[:2]
    s = short / min(h, w)
    nh, nw = (short, round(w * s)) if h <= w else (round(h * s), short)
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)


def test_center_crop_is_slicing():
    img = _smooth(30, 41)
    assert np.array_equal(T.Compose([T.CenterCrop((10, 12))])(img), img[10:20, 14:26])


def test_center_crop_with_resize_equals_slicing_a_reference_resize():
    img = _smooth(60, 90)
    out = T.Compose([T.CenterCrop(32, short_side=40)])(img)
    ref = _ref_resize_short(img, 40)
    t, l = round((ref.shape[0] - 32) / 2), round((ref.shape[1] - 32) / 2)
    assert np.abs(out.astype(int) - ref[t : t + 32, l : l + 32]).max() <= 1


def test_ten_crop_geometry_and_order():
    img = _smooth(36, 50)
    out = T.Compose([T.TenCrop(20)])(img)
    assert out.shape == (10, 20, 20, 3)
    five = [img[:20, :20], img[:20, 30:], img[16:, :20], img[16:, 30:], img[8:28, 15:35]]
    for j, ref in enumerate(five):
        assert np.array_equal(out[j], ref)
        assert np.array_equal(out[5 + j], ref[:, ::-1])


def test_multiscale_ten_crop_scales_outer():
    img = _smooth(40, 60)
    pipe = T.Compose([T.MultiScaleTenCrop(16, scales=(16, 24))])
    out = pipe(img)
    assert out.shape == pipe.output_shape == (20, 16, 16, 3)
    ref = _ref_resize_short(img, 24)
    assert np.abs(out[10].astype(int) - ref[:16, :16]).max() <= 1
    assert np.abs(out[19].astype(int) - ref[4:20, 10:26][:, ::-1]).max() <= 1


def test_random_resized_crop_matches_cv2_with_its_params():
    img = _smooth(80, 100)
    pipe = T.Compose([T.RandomResizedCrop(56)])  # at most 100/56 < 2x: plain bilinear
    for i in range(5):
        rec = pipe.sample_params([img.shape[:2]], [i], seed=7)
        A = rec["A2"][0, 0]
        w, h = A[0, 0] * 56, A[1, 1] * 56
        x0, y0 = round(A[0, 2] - w / 2), round(A[1, 2] - h / 2)
        crop = img[y0 : y0 + round(h), x0 : x0 + round(w)]
        ref = cv2.resize(crop, (56, 56), interpolation=cv2.INTER_LINEAR)
        err = np.abs(pipe.apply(img, rec[0]).astype(int) - ref)
        # the border rows may differ: we blend with the true pixels beyond the crop where
        # cv2.resize of the cut-out crop replicates its edge
        assert err[2:-2, 2:-2].max() <= 1 and err.mean() < 1.0


def test_horizontal_flip_exact():
    img = _smooth(12, 17)
    assert np.array_equal(T.Compose([T.HorizontalFlip(p=1.0)])(img), img[:, ::-1])


def test_affine_matches_warp_affine():
    img = _smooth(64, 64)
    out = T.Compose([T.Affine(rotate=(25, 25), stretch=(1.2, 1.2))])(img)
    M = cv2.getRotationMatrix2D((31.5, 31.5), 25, 1.2)  # pixel-centre coordinates
    ref = cv2.warpAffine(img, M, (64, 64), flags=cv2.INTER_LINEAR)
    inner = (slice(12, 52), slice(12, 52))
    assert np.abs(out[inner].astype(int) - ref[inner]).mean() < 0.6
    assert np.abs(out.astype(int) - ref).mean() < 2.0


def test_translate_moves_content():
    img = _smooth(40, 40)
    out = T.Compose([T.Affine(translate=((0.25, 0.25)))])(img)  # +10 px right and down
    assert np.array_equal(out[10:, 10:], img[:30, :30])
    assert not out[:10].any()


def test_4x_downscale_does_not_alias():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 192, 3), dtype=np.uint8)  # worst case: white noise
    out = T.Compose([T.CenterCrop((32, 48), short_side=32)])(img)
    ref = cv2.resize(img, (48, 32), interpolation=cv2.INTER_AREA)
    psnr = 10 * np.log10(255**2 / np.mean((out.astype(float) - ref) ** 2).clip(1e-9))
    assert psnr > 40


def test_lens_distortion_direction():
    img = _smooth(41, 41)
    barrel = T.Compose([T.LensDistortion((0.3, 0.3))])(img)
    assert np.abs(barrel[20, 20].astype(int) - img[20, 20]).max() <= 1  # centre stays
    assert not barrel[0, 0].any()  # corners sample outside the source: fill


def test_colour_jitter_formulas_on_flat_images():
    img = _flat((100, 150, 50))
    b = T.Compose([T.ColorJitter(brightness=(1.5, 1.5))])(img)
    assert np.all(b == (150, 225, 75))
    grey = 0.299 * 100 + 0.587 * 150 + 0.114 * 50
    c = T.Compose([T.ColorJitter(contrast=(0.5, 0.5))])(img)
    want = 0.5 * np.array([100, 150, 50]) + 0.5 * grey  # halfway to the grey mean
    assert np.all(np.abs(c - want) <= 0.5 + 1e-6)
    s = T.Compose([T.ColorJitter(saturation=(0.0, 0.0))])(img)
    assert np.all(np.abs(s.astype(float) - grey) <= 0.5 + 1e-6)
    two = np.concatenate([_flat((0, 0, 0)), _flat((200, 200, 200))], axis=1)
    c2 = T.Compose([T.ColorJitter(contrast=(0.5, 0.5))])(two)
    assert np.all(c2[:, :20] == 50) and np.all(c2[:, 20:] == 150)  # halfway to the mean 100


def test_pca_lighting_formula():
    img = _flat((100, 100, 100))
    vec = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    op = T.PCALighting(0.5, eigval=(0.3, 0.1, 0.02), eigvec=vec)
    pipe = T.Compose([op])
    rec = pipe.sample_params([img.shape[:2]], [11], seed=2)
    from augpipe import rng

    alpha = np.array([rng.normal(2, 0, [11], rng.stream_id(0, i), 0.0, 0.5)[0] for i in range(3)])
    want = 100 + 255 * vec @ (alpha * np.array([0.3, 0.1, 0.02]))
    assert np.allclose(rec["coff"][0], want - 100, atol=1e-3)
    out = pipe(img, index=11, seed=2)
    assert np.all(np.abs(out[0, 0] - np.clip(want, 0, 255)) <= 0.5 + 1e-3)


def test_pca_lighting_needs_statistics():
    pipe = T.Compose([T.CenterCrop(8), T.PCALighting(0.1)])
    with pytest.raises(ConfigError, match="eigval"):
        pipe(_flat((1, 2, 3)))

    class NoStats:
        stats: dict = {}
        sizes = np.array([[16, 20]])

    with pytest.raises(ConfigError, match="eigval"):
        pipe.bind(NoStats())


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: T.RandomResizedCrop(0), ConfigError, "RandomResizedCrop.size"),
        (lambda: T.RandomResizedCrop("224"), ConfigTypeError, "RandomResizedCrop.size"),
        (lambda: T.RandomResizedCrop(8, scale=(0.9, 0.1)), ConfigError, "low <= high"),
        (lambda: T.HorizontalFlip(p=1.5), ConfigError, "HorizontalFlip.p"),
        (lambda: T.ColorJitter(brightness="a lot"), ConfigTypeError, "ColorJitter.brightness"),
        (lambda: T.LensDistortion(k=(-0.9, 0.1)), ConfigError, "LensDistortion.k"),
        (lambda: T.ScaleJitter(224, short_side=(128, 256)), ConfigError, "short_side"),
        (lambda: T.PCALighting(0.1, eigval=(1, 2)), ConfigError, "eigval"),
        (lambda: T.Compose([T.HorizontalFlip, T.CenterCrop(8)]), ConfigTypeError, "instantiated"),
        (lambda: T.Compose([T.HorizontalFlip(), T.CenterCrop(8)]), ConfigError, "front"),
        (lambda: T.Compose([T.CenterCrop(8), T.CenterCrop(4)]), ConfigError, "sizing"),
    ],
)
def test_config_errors_name_the_parameter(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


def test_bad_images_are_user_errors():
    pipe = T.Compose([T.CenterCrop(4)])
    with pytest.raises(ConfigTypeError, match="uint8"):
        pipe(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ConfigError, match="shape"):
        pipe(np.zeros((8, 8), np.uint8))


def test_output_shape_needs_a_sizing_op():
    with pytest.raises(ConfigError, match="sizing op"):
        _ = T.Compose([T.HorizontalFlip()]).output_shape


def _pipelines():
    return [
        T.Compose([T.RandomResizedCrop(16), T.HorizontalFlip()]),
        T.Compose(
            [
                T.ScaleJitter(16, (18, 30)),
                T.HorizontalFlip(),
                T.Affine(rotate=10),
                T.LensDistortion(0.1),
                T.ColorJitter(0.3, 0.3, 0.3),
                T.PCALighting(0.1),
            ]
        ),
        T.Compose([T.TenCrop(16, short_side=18)]),
    ]


@pytest.mark.parametrize("packed", ["tiny_packed", "tiny_packed_raw"])
def test_run_batch_on_a_packed_dataset(packed, request):
    from augpipe.format.dataset import ShardDataset

    ds = ShardDataset(request.getfixturevalue(packed))
    for pipe in _pipelines():
        bound = pickle.loads(pickle.dumps(pipe.bind(ds)))
        idx = np.array([5, 0, 17, 5, 9])
        out = np.zeros((5, *bound.output_shape), np.uint8)
        bound.run_batch(ds, idx, 3, 1, out)
        assert out.any() and np.array_equal(out[0], out[3])  # same index, same sample
        # a sample depends on (seed, epoch, index) only, not on its batch
        one = np.zeros((1, *bound.output_shape), np.uint8)
        bound.run_batch(ds, idx[2:3], 3, 1, one)
        assert np.array_equal(one[0], out[2])
        again = np.zeros_like(out)
        bound.run_batch(ds, idx, 3, 2, again)
        assert not np.array_equal(again, out) or "TenCrop" in repr(pipe)
        # the dataset path agrees with the in-memory path on the full decode
        ref = bound(ds.image(17), index=17, seed=3, epoch=1)
        assert np.abs(ref.astype(float) - out[2]).mean() < 6.0


def test_run_batch_checks_out(tiny_packed):
    from augpipe.format.dataset import ShardDataset

    ds = ShardDataset(tiny_packed)
    pipe = T.Compose([T.CenterCrop(16)])
    with pytest.raises(ConfigError, match="out"):
        pipe.run_batch(ds, np.arange(2), 0, 0, np.zeros((2, 8, 8, 3), np.uint8))


def test_decode_batch_decodes_what_run_batch_renders(tiny_packed, monkeypatch):
    from augpipe.format.dataset import ShardDataset

    ds = ShardDataset(tiny_packed)
    pipe = T.Compose([T.RandomResizedCrop(16), T.HorizontalFlip()]).bind(ds)
    idx = np.arange(len(ds))
    calls: list[tuple] = []
    real = T.load_region

    def spy(dataset, i, scale, box, step, *a, **k):
        calls.append((i, scale, tuple(np.round(box, 6)), step))
        return real(dataset, i, scale, box, step, *a, **k)

    monkeypatch.setattr(T, "load_region", spy)
    assert pipe.decode_batch(ds, idx, 3, 1) == len(ds)
    decoded, calls[:] = list(calls), []
    pipe.run_batch(ds, idx, 3, 1, np.empty((len(ds), 16, 16, 3), np.uint8))
    assert decoded == calls  # the same records, regions and DCT scales
