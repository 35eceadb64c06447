"""One invariant suite over every registered op, plus property-based parameter ranges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augpipe import transforms as T
from augpipe.ops.params import sample_params

EIG = dict(eigval=(0.2, 0.02, 0.005), eigvec=np.eye(3))

# one active example per registered op; a test fails when an op has none (Albumentations' rule)
EXAMPLES = {
    T.RandomResizedCrop: T.RandomResizedCrop(12),
    T.ScaleJitter: T.ScaleJitter(10, short_side=(12, 20)),
    T.CenterCrop: T.CenterCrop(12, short_side=14),
    T.HorizontalFlip: T.HorizontalFlip(),
    T.Affine: T.Affine(rotate=20, shear=10, translate=0.1, stretch=(0.8, 1.2)),
    T.RandomPerspective: T.RandomPerspective(0.5, p=1.0),
    T.LensDistortion: T.LensDistortion((-0.25, 0.25)),
    T.ColorJitter: T.ColorJitter(0.4, 0.4, 0.4),
    T.PCALighting: T.PCALighting(0.2, **EIG),
    T.TenCrop: T.TenCrop(10, short_side=12),
    T.MultiScaleTenCrop: T.MultiScaleTenCrop(8, scales=(8, 12)),
    T.Letterbox: T.Letterbox((12, 16)),
    T.RandomScale: T.RandomScale((0.6, 1.4)),
    T.HSVJitter: T.HSVJitter(0.1, 0.5, 0.3),
    T.Solarize: T.Solarize(128, p=0.5),
    T.SolarizeAdd: T.SolarizeAdd(60, p=0.5),
    T.Posterize: T.Posterize(2, p=0.5),
    T.Invert: T.Invert(p=0.5),
    T.Equalize: T.Equalize(p=0.5),
    T.AutoContrast: T.AutoContrast(p=0.5),
    T.Sharpness: T.Sharpness((0.1, 1.9)),
    T.GaussianBlur: T.GaussianBlur(3, p=0.5),
    T.Grayscale: T.Grayscale(p=0.5),
    T.RandomErasing: T.RandomErasing(0.9, mode="pixel"),
    T.RandAugment: T.RandAugment(2, 9),
    T.TrivialAugmentWide: T.TrivialAugmentWide(),
    T.AutoAugment: T.AutoAugment(),
    T.TimmRandAugment: T.TimmRandAugment(9, mstd=0.5, inc=True),
    T.TimmAutoAugment: T.TimmAutoAugment("original"),
    T.AugMix: T.AugMix(3, width=2),
}
# the same ops with p = 0 or zero strength: the identity
IDENTITY = [
    T.HorizontalFlip(p=0),
    T.Affine(),
    T.Affine(rotate=30, p=0),
    T.RandomPerspective(0.0, p=1.0),
    T.RandomPerspective(0.8, p=0.0),
    T.LensDistortion(0),
    T.LensDistortion((0, 0)),
    T.ColorJitter(),
    T.RandomScale(p=0.0),
    T.RandomScale((1.0, 1.0)),
    T.HSVJitter(0.0, 0.0, 0.0),
    T.PCALighting(0.0, **EIG),
    T.Solarize(0, p=0),
    T.Solarize(256),
    T.SolarizeAdd(0),
    T.Posterize(8),
    T.Invert(p=0),
    T.Equalize(p=0),
    T.AutoContrast(p=0),
    T.Sharpness(1.0),
    T.GaussianBlur(5, p=0),
    T.Grayscale(p=0),
    T.RandomErasing(0),
    T.ColorJitter(hue=0),
    T.RandAugment(num_ops=0),
    T.TimmRandAugment(p=0),
]


def _img(h=18, w=22, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_every_registered_op_has_an_example():
    assert set(EXAMPLES) == set(T.OPS)


@pytest.mark.parametrize("op", list(EXAMPLES.values()), ids=lambda o: type(o).__name__)
def test_invariants(op):
    pipe = T.Compose([op])
    img = _img()
    out = pipe(img, index=3, seed=1, epoch=2)
    if op.kind == "size":
        assert out.shape == pipe.output_shape
    else:
        assert out.shape == img.shape
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    # same (seed, epoch, index) -> identical; replayed params -> identical
    assert np.array_equal(out, pipe(img, index=3, seed=1, epoch=2))
    rec = pipe.sample_params([img.shape[:2]], [3], seed=1, epoch=2)
    assert np.array_equal(pipe.apply(img, rec[0]), out)
    # another index, seed or epoch -> different for random ops (deterministic ones stay put)
    if type(op) not in (T.CenterCrop, T.TenCrop, T.MultiScaleTenCrop, T.Letterbox):
        others = [
            pipe(img, index=i, seed=s, epoch=e)
            for i, s, e in (
                (4, 1, 2),
                (5, 1, 2),
                (6, 1, 2),
                (7, 1, 2),
                (3, 2, 2),
                (3, 5, 2),
                (3, 1, 3),
                (3, 1, 4),
            )
        ]
        assert sum(not np.array_equal(o, out) for o in others) >= 2  # a flip is 50/50


@pytest.mark.parametrize("op", IDENTITY, ids=repr)
def test_zero_strength_is_identity(op):
    img = _img()
    assert np.array_equal(T.Compose([op])(img, index=5, seed=2), img)
    crop = T.Compose([T.CenterCrop(12), op])(img, index=5, seed=2)
    assert np.array_equal(crop, img[3:15, 5:17])


def test_params_depend_on_index_not_on_batch():
    pipe = T.Compose(
        [
            T.RandomResizedCrop(12),
            T.HorizontalFlip(),
            T.Affine(rotate=10),
            T.ColorJitter(0.3, 0.3, 0.3),
        ]
    )
    sizes = np.array([[18, 22], [30, 40], [18, 22], [50, 20]])
    idx = np.array([9, 3, 7, 1])
    batch = pipe.sample_params(sizes, idx, seed=4, epoch=1)
    for j in range(4):
        alone = pipe.sample_params(sizes[j : j + 1], idx[j : j + 1], seed=4, epoch=1)
        assert batch[j].tobytes() == alone[0].tobytes()


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(4, 400),
    w=st.integers(4, 400),
    index=st.integers(0, 10**9),
    seed=st.integers(0, 2**32),
    lo=st.floats(0.05, 1.0),
    ratio=st.floats(1.0, 3.0),
)
def test_random_resized_crop_stays_in_range(h, w, index, seed, lo, ratio):
    op = T.RandomResizedCrop(8, scale=(lo, 1.0), ratio=(1 / ratio, ratio))
    rects, _ = op.frames(np.array([[h, w]]), np.array([index]), seed, 0, 0)
    x0, y0, cw, ch = rects[0, 0]
    assert 0 <= x0 and x0 + cw <= w and 0 <= y0 and y0 + ch <= h and cw >= 1 and ch >= 1


@settings(max_examples=25, deadline=None)
@given(
    index=st.integers(0, 10**9),
    seed=st.integers(0, 2**32),
    x=st.floats(0.0, 0.9),
    r=st.floats(0.0, 45.0),
    k=st.floats(0.0, 0.3),
)
def test_drawn_factors_stay_in_range(index, seed, x, r, k):
    idx = np.array([index, index + 1])
    f = T.ColorJitter(x, x, x).color(idx, seed, 0, 0)[0]
    b = np.linalg.det(f) ** (1 / 3)  # overall gain of the colour matrix
    assert np.all(b >= (1 - x) ** 3 - 1e-6) and np.all(b <= (1 + x) ** 3 + 1e-6)
    lens = T.LensDistortion(k).coefficients(idx, seed, 0, 0)
    assert np.all(np.abs(lens) <= k + 1e-12)
    m = T.Affine(rotate=r).matrices(idx, seed, 0, 0, (10, 10))
    angle = np.degrees(np.abs(np.arctan2(m[:, 1, 0], m[:, 0, 0])))
    assert np.all(angle <= r + 1e-6)
    rec = sample_params([T.ScaleJitter(8, (10, 30))], np.array([[40, 60]] * 2), idx, seed, 0)
    scale = rec["A2"][:, 0, 0, 0]  # source pixels per output pixel = 40 / L
    assert np.all(scale >= 40 / 30 - 1e-9) and np.all(scale <= 40 / 10 + 1e-9)
