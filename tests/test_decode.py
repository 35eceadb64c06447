"""Crop-aware decode: DCT scale choice, exact coordinate mapping, raw records in place."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from augpipe import decode
from augpipe import transforms as T


class FakeJpegDataset:
    """The slice of ShardDataset that run_batch uses, over in-memory JPEGs."""

    encoding = "jpeg"
    stats: dict = {}

    def __init__(self, images, quality=95):
        self.payloads = [
            np.frombuffer(
                cv2.imencode(".jpg", im[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[
                    1
                ].tobytes(),
                np.uint8,
            )
            for im in images
        ]
        self.sizes = np.array([im.shape[:2] for im in images], dtype=np.int32)

    def raw(self, i):
        return self.payloads[i]


def _photo(h, w, seed=0):
    # smooth at the scale of the 1/8 decode and of 4:2:0 chroma, like photos at these sizes
    small = np.random.default_rng(seed).integers(
        0, 256, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize(
    "scale, d",
    [(0.5, 1), (1.0, 1), (1.99, 1), (2.0, 2), (3.9, 2), (4.0, 4), (7.99, 4), (8.0, 8), (50.0, 8)],
)
def test_dct_factor_keeps_the_crop_at_least_output_sized(scale, d):
    assert decode.dct_factor(scale) == d


@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_reduced_decode_has_ceil_sizes(d):
    ds = FakeJpegDataset([_photo(203, 317)])
    img, bgr, sc = decode.load(ds, 0, scale=float(d))
    assert img.shape == (-(-203 // d), -(-317 // d), 3)
    assert sc == (float(d), float(d))
    rgb = img[..., ::-1] if bgr else img
    full = np.empty_like(img)  # reference: d x d block means (partial blocks at the far edges)
    from augpipe.ops.kernels import box_reduce

    box_reduce(_photo(203, 317), 0, 0, d, d, full)
    assert np.abs(rgb.astype(float) - full).mean() < 4.0


def test_cropped_reduced_decode_matches_full_decode_reference():
    """A 6x downscale decoded at 1/4: the crop lands on the same pixels as a full decode."""
    img = _photo(256, 384)
    ds = FakeJpegDataset([img])
    pipe = T.Compose([T.CenterCrop(40, short_side=42)])
    out = np.empty((1, 40, 40, 3), np.uint8)
    pipe.run_batch(ds, [0], 0, 0, out)
    ref = cv2.resize(img, (63, 42), interpolation=cv2.INTER_AREA)[1:41, 12:52]
    assert np.abs(out[0].astype(float) - ref).mean() < 3.0
    # a random crop, replayed from the full-size image in memory, agrees too
    pipe = T.Compose([T.RandomResizedCrop(24, scale=(0.3, 1.0)), T.HorizontalFlip()])
    out = np.empty((1, 24, 24, 3), np.uint8)
    for seed in range(4):
        pipe.run_batch(ds, [0], seed, 0, out)
        assert np.abs(out[0].astype(float) - pipe(img, index=0, seed=seed)).mean() < 4.0


def test_works_without_simplejpeg(monkeypatch):
    monkeypatch.setattr(decode, "simplejpeg", None)
    img, bgr, _ = decode.load(FakeJpegDataset([_photo(64, 48)]), 0, scale=1.0)
    assert bgr and img.shape == (64, 48, 3)


def test_undecodable_payload_names_the_record():
    ds = FakeJpegDataset([_photo(32, 32)])
    ds.payloads[0] = np.frombuffer(b"not a jpeg at all", np.uint8)
    from augpipe.errors import DatasetError

    with pytest.raises(DatasetError, match="record 0"):
        T.Compose([T.CenterCrop(8)]).run_batch(ds, [0], 0, 0, np.empty((1, 8, 8, 3), np.uint8))


def test_raw_records_are_read_in_place(tiny_packed_raw):
    from augpipe.format.dataset import ShardDataset

    ds = ShardDataset(tiny_packed_raw)
    img, bgr, sc = decode.load(ds, 3, scale=8.0)
    assert not bgr and sc == (1.0, 1.0)
    assert img.shape == (*ds.sizes[3], 3)
    assert np.shares_memory(img, ds.raw(3)) or img.base is not None
    assert np.array_equal(img, ds.image(3))
