"""``Compose(dct_slack=s)``: DCT-scaled decode while the crop keeps >= s decoded pixels per
output pixel (docs/transforms.md). The rule, its validation and JSON round trip, the PSNR bound
against the exact rule for every pipeline kind, region == whole-image decode under it, and
nothing changes without it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from jpeg_fakes import Jpegs, photo

from augpipe import decode
from augpipe import transforms as T
from augpipe.errors import ConfigError
from augpipe.ops.params import min_scales

# dB, augmented outputs of the samples the slack moves to a coarser factor, against the exact
# rule (docs/transforms.md): the corpora measure a minimum of 32-36 dB and a median of 44-47 dB
# at slack 0.8-0.9; these synthetic images (noise on colour blocks) are harder
PSNR_BOUND = 30.0

OPS = [
    [T.RandomResizedCrop(64), T.HorizontalFlip()],
    [T.RandomResizedCrop(24, scale=(0.3, 1.0))],
    [T.CenterCrop(40, short_side=56)],
    [T.TenCrop(48)],
    [T.ScaleJitter(48, short_side=(60, 120)), T.Affine(rotate=20, shear=5, translate=0.1)],
    [T.RandomResizedCrop(40), T.LensDistortion((-0.2, 0.2)), T.ColorJitter(0.4, 0.4, 0.4)],
    [T.ScaleJitter(40, short_side=(50, 100)), T.RandomPerspective(0.3, p=1.0)],
]
IDS = ["rrc64", "rrc24", "center", "tencrop", "jitter-affine", "lens-colour", "perspective"]


def _dataset():
    sizes = [(365, 401), (240, 320), (180, 260), (300, 280), (97, 131)]
    bufs = [cv2.imencode(".jpg", photo(h, w, seed=i))[1].tobytes()
            for i, (h, w) in enumerate(sizes)]  # fmt: skip
    return Jpegs(bufs, sizes)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_the_rule():
    assert [decode.dct_factor(s) for s in (0.5, 1.9, 2.0, 3.9, 4.0, 8.5)] == [1, 1, 2, 2, 4, 8]
    assert [decode.dct_factor(s, 0.8) for s in (1.59, 1.6, 3.2, 6.4)] == [1, 2, 4, 8]
    assert decode.dct_factor(1.0, 0.5) == 2 and decode.dct_factor(0.99, 0.5) == 1


@pytest.mark.parametrize("bad", [0.4, 1.01, True, "0.8", None])
def test_bad_slack_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match="dct_slack"):
        T.Compose([T.RandomResizedCrop(32)], dct_slack=bad)
    d = T.Compose([T.RandomResizedCrop(32)]).to_dict() | {"dct_slack": bad}
    if bad is not None:
        with pytest.raises(ConfigError, match="dct_slack"):
            T.Compose.from_dict(d)


def test_json_round_trip_and_unchanged_json_without_it():
    plain = T.Compose([T.RandomResizedCrop(32)])
    assert "dct_slack" not in plain.to_dict() and plain.dct_slack == 1.0
    pipe = T.Compose([T.RandomResizedCrop(32)], dct_slack=0.8)
    back = T.Compose.from_dict(pipe.to_dict())
    assert back.dct_slack == 0.8 and back.to_dict() == pipe.to_dict()
    ds = _dataset()
    assert pipe.bind(ds).dct_slack == 0.8


@pytest.mark.parametrize("ops", OPS, ids=IDS)
def test_slack_moves_samples_within_the_bound_and_region_equals_whole(ops, monkeypatch):
    ds = _dataset()
    idx = np.arange(len(ds.sizes))
    exact, slack = T.Compose(ops), T.Compose(ops, dct_slack=0.8)
    # libjpeg's exact arithmetic: reduced whole-image decodes (cv2) give the same pixels
    accurate = T.Compose(ops, fast_decode=False, dct_slack=0.8)
    a = np.empty((len(idx), *exact.output_shape), np.uint8)
    b, c, e = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    moved = 0
    for seed in range(6):
        recs = exact.sample_params(ds.sizes[idx], idx, seed, 0)
        scales = min_scales(recs, exact.output_shape[-3:-1])  # as the decode picks them
        rows = [decode.dct_factor(s, 0.8) != decode.dct_factor(s) for s in scales]
        moved += sum(rows)
        exact.run_batch(ds, idx, seed, 0, a)
        slack.run_batch(ds, idx, seed, 0, b)
        same = ~np.array(rows)
        np.testing.assert_array_equal(a[same], b[same])  # only the moved samples change
        if any(rows):
            assert _psnr(a[~same], b[~same]) >= PSNR_BOUND
        accurate.run_batch(ds, idx, seed, 0, e)
        monkeypatch.setattr(decode, "REGION_DECODE", False)  # whole-image decodes, same rule
        accurate.run_batch(ds, idx, seed, 0, c)
        monkeypatch.setattr(decode, "REGION_DECODE", True)
        diff = np.abs(e.astype(int) - c)  # as tests/test_decode_region.py: rounding only
        assert diff.max() <= 1 and (diff > 0).mean() < 5e-3
    if ops[0].__class__ is not T.TenCrop:  # (ten crops of one image: rarely a scale to move)
        assert moved > 0


def test_repeats_share_a_decode_under_the_slack_with_the_same_bits(tmp_path, monkeypatch):
    """RepeatDataset: the repeats of a record in a batch share one decode, grouped by the
    factor the slack picks, with the bits of one decode per sample."""
    import augpipe.transforms as transforms_mod
    from augpipe import pack
    from augpipe.format.dataset import ShardDataset
    from augpipe.loader import repeat
    from augpipe.synth import make_image_folder

    make_image_folder(tmp_path / "img", n_classes=2, per_class=5, min_side=120, max_side=260,
                      seed=4)  # fmt: skip
    pack(tmp_path / "img", tmp_path / "img.packed", progress=False)
    ds = repeat.RepeatDataset(ShardDataset(tmp_path / "img.packed"), 3)
    pipe = T.Compose([T.RandomResizedCrop(40), T.HorizontalFlip()], dct_slack=0.6).bind(ds)
    order = repeat.repeat_order(ds.n_base, 3, 1, 0, True, 0, 1)
    shared, alone = (np.empty((len(order), 40, 40, 3), np.uint8) for _ in range(2))
    for epoch in range(3):
        pipe.run_batch(ds, order, 1, epoch, shared)
        monkeypatch.setattr(transforms_mod, "decode_groups",
                            lambda d, i, s, b, slack=1.0: [([j], s[j], b[j, :4], b[j, 4])
                                                           for j in range(len(i))])  # fmt: skip
        pipe.run_batch(ds, order, 1, epoch, alone)
        monkeypatch.setattr(transforms_mod, "decode_groups", repeat.decode_groups)
        np.testing.assert_array_equal(shared, alone)
