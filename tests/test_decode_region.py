"""Region JPEG decode (the optional C extension ``augpipe._jpegregion``) and its use by run_batch.

Measured property these tests pin down: a region decode equals the same rectangle of a full
decode exactly, except the first and last column of a band cut out of the middle of the image
(libjpeg's chroma upsampler treats them as image edges); ``load_region`` decodes one extra
column on each side so that those columns are never sampled.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from jpeg_fakes import Jpegs, photo

from augpipe import decode
from augpipe import transforms as T

R = pytest.importorskip(
    "augpipe._jpegregion",
    reason="augpipe._jpegregion is not built (needs libjpeg headers: apt-get install "
    "libjpeg-dev, then pip install -e .)",
)

SUB = {
    "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
}
REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def _jpeg(img, sub="420"):
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    if img.ndim == 3:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SUB[sub]]
    return cv2.imencode(".jpg", img, params)[1].tobytes()


def _decode(buf, y0, y1, x0, x1, d=1, out=None):
    data, oy, ox, h, w = R.decode_region(buf, y0, y1, x0, x1, d, out)
    return np.frombuffer(data, np.uint8, h * w * 3).reshape(h, w, 3), oy, ox


def _crops(H, W, rng, n=25):
    fixed = [(0, H, 0, W), (0, 1, 0, 1), (H - 1, H, W - 1, W), (0, H, W // 2, W), (H // 3, H, 0, 5)]
    for _ in range(n):
        y0, y1 = sorted(rng.integers(0, H + 1, 2))
        x0, x1 = sorted(rng.integers(0, W + 1, 2))
        if y1 > y0 and x1 > x0:
            fixed.append((int(y0), int(y1), int(x0), int(x1)))
    return fixed


@pytest.mark.parametrize("sub", ["420", "422", "444", "gray"])
@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_region_equals_full_decode_but_cut_edge_columns(sub, d):
    img = photo(203, 317, seed=d)
    buf = _jpeg(img[..., 0] if sub == "gray" else img, "420" if sub == "gray" else sub)
    full, oy, ox = _decode(buf, 0, 10**6, 0, 10**6, d)
    H, W = -(-203 // d), -(-317 // d)
    assert full.shape == (H, W, 3) and (oy, ox) == (0, 0)
    # the full decode is cv2.imdecode's (same libjpeg-turbo settings: ISLOW, fancy upsampling)
    if sub == "gray":
        ref = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_GRAYSCALE)
        if d > 1:
            ref = cv2.imdecode(np.frombuffer(buf, np.uint8), REDUCED[d])[..., 0]
        assert np.array_equal(full[..., 0], full[..., 1]) and np.array_equal(full[..., 0], ref)
    else:
        ref = cv2.imdecode(np.frombuffer(buf, np.uint8), REDUCED[d])[..., ::-1]
        assert np.abs(full.astype(int) - ref).max() <= 1
    for y0, y1, x0, x1 in _crops(H, W, np.random.default_rng(d)):
        reg, oy, ox = _decode(buf, y0, y1, x0, x1, d)
        h, w = reg.shape[:2]
        # rows exactly as asked; columns widened (left edge down to an iMCU boundary)
        assert oy == y0 and h == y1 - y0 and ox <= x0 and ox + w >= x1 and ox + w <= W
        a = 1 if ox > 0 else 0
        b = w - 1 if ox + w < W else w
        np.testing.assert_array_equal(reg[:, a:b], full[oy : oy + h, ox + a : ox + b])


def test_out_buffer_is_filled_and_returned():
    buf = _jpeg(photo(64, 80))
    full, _, _ = _decode(buf, 0, 64, 0, 80)
    out = bytearray(64 * 80 * 3)
    data, oy, ox, h, w = R.decode_region(buf, 10, 30, 16, 48, 1, out)
    assert data is out and (oy, h) == (10, 20)
    reg = np.frombuffer(out, np.uint8, h * w * 3).reshape(h, w, 3)
    np.testing.assert_array_equal(reg[:, 1:-1], full[10:30, ox + 1 : ox + w - 1])
    arr = np.zeros(64 * 80 * 3, np.uint8)  # any writable buffer, e.g. a NumPy array
    assert R.decode_region(buf, 0, 64, 0, 80, 1, arr)[0] is arr
    assert np.array_equal(arr.reshape(64, 80, 3), full)
    with pytest.raises(ValueError, match="out: expected at least"):
        R.decode_region(buf, 0, 64, 0, 80, 1, bytearray(10))
    with pytest.raises(BufferError):
        R.decode_region(buf, 0, 64, 0, 80, 1, bytes(64 * 80 * 3))  # read-only


@pytest.mark.parametrize(
    "payload",
    [
        b"not a jpeg at all",
        b"",
        "truncated",
        "garbage body",
    ],
)
def test_bad_input_raises_and_prints_nothing(payload, capfd):
    buf = _jpeg(photo(96, 96))
    if payload == "truncated":
        payload = buf[: len(buf) // 2]
    elif payload == "garbage body":
        noise = np.random.default_rng(0).integers(0, 256, len(buf) - 400, dtype=np.uint8)
        payload = buf[:400] + noise.tobytes()
    with pytest.raises(ValueError, match="JPEG decode failed"):
        R.decode_region(payload, 0, 96, 0, 96, 1)
    assert capfd.readouterr().err == ""


def test_bad_arguments_raise():
    buf = _jpeg(photo(32, 32))
    with pytest.raises(ValueError, match="denom"):
        R.decode_region(buf, 0, 32, 0, 32, 3)
    with pytest.raises(ValueError, match="empty region"):
        R.decode_region(buf, 40, 50, 0, 32, 1)
    with pytest.raises(TypeError):
        R.decode_region("a string", 0, 32, 0, 32, 1)


def test_threads_decode_concurrently_and_correctly():
    buf = _jpeg(photo(120, 160))
    ref, _, _ = _decode(buf, 0, 120, 0, 160)
    results = []

    def work():
        for _ in range(20):
            results.append(np.array_equal(_decode(buf, 0, 120, 0, 160)[0], ref))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and all(results)


def _dataset():
    bufs, sizes = [], []
    for i, (h, w) in enumerate([(365, 401), (240, 320), (97, 131), (400, 300), (180, 260)]):
        img = photo(h, w, seed=i)
        src = img[..., 0] if i == 4 else img  # one grayscale JPEG
        bufs.append(_jpeg(src, ["420", "444", "422", "420", "420"][i]))
        sizes.append((h, w))
    return Jpegs(bufs, sizes)


@pytest.mark.parametrize(
    "ops",
    [
        [T.RandomResizedCrop(224), T.HorizontalFlip()],
        [T.RandomResizedCrop(24, scale=(0.3, 1.0))],  # DCT-scaled region decodes
        [T.CenterCrop(64, short_side=80)],
        [T.TenCrop(48)],
        [T.ScaleJitter(96, short_side=(100, 200)), T.Affine(rotate=20, shear=5, translate=0.1)],
        [T.RandomResizedCrop(64), T.LensDistortion((-0.2, 0.2)), T.ColorJitter(0.4, 0.4, 0.4)],
    ],
    ids=["rrc224", "rrc24", "center", "tencrop", "jitter-affine", "lens-colour"],
)
def test_pipeline_output_is_the_same_with_and_without_region_decode(ops, monkeypatch):
    ds = _dataset()
    idx = np.arange(len(ds.sizes))
    pipe = T.Compose(ops, fast_decode=False)  # full decodes with cv2: the same pixels as libjpeg
    a = np.empty((len(idx), *pipe.output_shape), np.uint8)
    b = np.empty_like(a)
    for seed in range(3):
        monkeypatch.setattr(decode, "REGION_DECODE", True)
        pipe.run_batch(ds, idx, seed, 0, a)
        monkeypatch.setattr(decode, "REGION_DECODE", False)
        pipe.run_batch(ds, idx, seed, 0, b)
        # same pixels in, same kernels: equal up to float rounding of shifted coordinates (at a
        # 24 px output every value comes from a box-reduced block, so a rounding flip weighs more
        # than at 224: measured 24 of 8,640 values off by one)
        diff = np.abs(a.astype(int) - b)
        assert diff.max() <= 1 and (diff > 0).mean() < 5e-3


def test_load_region_maps_coordinates_and_falls_back(monkeypatch):
    ds = _dataset()
    img, bgr, sc, off = decode.load_region(ds, 0, 1.0, (100.2, 180.7, 50.5, 250.0))
    assert not bgr and sc == (1.0, 1.0) and off[0] > 0 and img.shape[0] < 365
    assert off[0] <= 100 and off[0] + img.shape[0] >= 181 and off[1] <= 50
    img, bgr, sc, off = decode.load_region(ds, 0, 4.0, (100.0, 180.0, 50.0, 250.0))
    assert sc == (4.0, 4.0) and off[0] <= 25 and off[0] + img.shape[0] >= 45
    # a disabled extension: today's full decode, offset 0
    monkeypatch.setattr(decode, "REGION_DECODE", False)
    img, bgr, sc, off = decode.load_region(ds, 0, 1.0, (100.0, 180.0, 50.0, 250.0))
    assert img.shape == (365, 401, 3) and off == (0.0, 0.0)


def test_truncated_record_fails_only_when_the_crop_reaches_the_damage():
    # rows above the damage decode (the rest is never read); a crop that needs the damaged rows
    # falls back to the full decoders, which reject the record: a DatasetError naming it
    from augpipe.errors import DatasetError

    buf = _jpeg(photo(256, 64))
    ds = Jpegs([buf[: len(buf) // 2]], [(256, 64)])
    img, _, _, off = decode.load_region(ds, 0, 1.0, (0.0, 16.0, 0.0, 64.0), fast=False)
    full, _, _ = _decode(buf, 0, 256, 0, 64)
    np.testing.assert_array_equal(img, full[: img.shape[0]])
    with pytest.raises(DatasetError, match="record 0"):
        T.Compose([T.CenterCrop(64)]).run_batch(ds, [0], 0, 0, np.empty((1, 64, 64, 3), np.uint8))


def test_region_margin_is_tight_for_axis_maps_and_padded_for_warps():
    from augpipe.ops.fused import fields, source_boxes
    from augpipe.ops.params import min_scales

    ds = _dataset()
    H = 365  # record 0: 365 x 401, 4:2:0
    crop_op = T.CenterCrop(64, short_side=300)
    for ops, axis in (([crop_op], True), ([crop_op, T.Affine(rotate=10)], False)):
        pipe = T.Compose(ops)
        recs = pipe.sample_params(ds.sizes[:1], [0], 0, 0)
        box = source_boxes(fields(recs), (64, 64))[0]
        A = recs[0]["A2"][0]
        crop = (A[1, 2] - 32 * abs(A[1, 1]), A[1, 2] + 32 * abs(A[1, 1]))
        if axis:  # the box is the crop; bilinear + the decoder's edge row/column: 2 pixels
            np.testing.assert_allclose(box[:2], crop, atol=1e-9)
        else:  # the warp kernel's padding is in the box
            assert box[0] < crop[0] - 2 and box[1] > crop[1] + 2
        img, _, sc, off = decode.load_region(ds, 0, float(min_scales(recs)[0]), box[:4], box[4])
        assert sc == (1.0, 1.0)
        y0, y1 = off[0], off[0] + img.shape[0]
        if axis:
            assert (y0, y1) == (np.floor(crop[0]) - 2, min(np.ceil(crop[1]) + 2, H))
        assert y0 <= np.floor(box[0]) and y1 >= min(np.ceil(box[1]), H)
