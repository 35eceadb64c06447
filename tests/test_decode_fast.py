"""The decode that does less: restart-marker row skipping and the fast decoder arithmetic.

- JPEGs with one restart interval per MCU row (what ``pack(..., restart_rows=True)`` wrote
  before segment intervals, tests/test_decode_segments.py): a region decode skips the entropy
  decoding of the rows above and returns exactly the pixels it returns without the skip, which
  equal the whole-image decode's;
- ``fast_decode=True`` (the default) decodes regions with the fast IDCT and merged upsampling,
  simplejpeg's arithmetic: the same pixels as the whole-image path, and within the documented
  PSNR bound of the accurate decode for every kind of pipeline.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from jpeg_fakes import Jpegs, photo

from augpipe import decode
from augpipe import transforms as T
from augpipe.format.restart import interval_mcus
from augpipe.format.workers import encode_pixels

R = pytest.importorskip(
    "augpipe._jpegregion",
    reason="augpipe._jpegregion is not built (needs libjpeg headers: apt-get install "
    "libjpeg-dev, then pip install -e .)",
)
# dB, augmented outputs, fast vs accurate decode (docs/transforms.md): these synthetic images
# (saturated colour blocks + noise, the worst case for chroma upsampling) measure 35-55 dB by
# pipeline, the photo corpora 44-45 dB; a wrong offset, scale or channel order gives < 25 dB
PSNR_BOUND = 34.0


def _rst_jpeg(img, sub="420"):
    """One restart interval per MCU row (the packs made before segment intervals)."""
    mcu = {"420": 16, "444": 8, "422": 16}[sub]
    factor = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
              "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
              "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422}[sub]  # fmt: skip
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor,
              cv2.IMWRITE_JPEG_RST_INTERVAL, -(-img.shape[1] // mcu)]  # fmt: skip
    return cv2.imencode(".jpg", img[..., ::-1], params)[1].tobytes()


def _region(buf, box, d, fast, restart):
    data, oy, ox, h, w = R.decode_region(buf, *box, d, None, fast, not fast, restart)
    return np.frombuffer(data, np.uint8, h * w * 3).reshape(h, w, 3), oy, ox


def _markers(buf):
    """(restart interval, number of RST markers) of a baseline JPEG."""
    i = buf.index(b"\xff\xdd")
    interval = int.from_bytes(buf[i + 4 : i + 6], "big")
    return interval, sum(buf.count(bytes([0xFF, 0xD0 + k])) for k in range(8))


@pytest.mark.parametrize("sub", ["420", "422", "444"])
@pytest.mark.parametrize("fast", [True, False])
def test_restart_rows_region_equals_region_without_skip_and_whole_decode(sub, fast):
    img = photo(203, 317, seed=3)
    buf = _rst_jpeg(img, sub)
    mcu_h = 16 if sub == "420" else 8  # 4:2:2's MCU is 16 x 8
    assert _markers(buf) == (-(-317 // (8 if sub == "444" else 16)), -(-203 // mcu_h) - 1)
    rng = np.random.default_rng(0)
    for d in (1, 2, 4, 8):
        H, W = -(-203 // d), -(-317 // d)
        whole, _, _ = _region(buf, (0, H, 0, W), d, fast, True)
        boxes = [(H - 1, H, 0, W), (H // 2, H, W // 3, W), (1, 2, 0, 3), (mcu_h // d + 1, H, 0, 5)]
        for _ in range(12):
            y0, y1 = sorted(int(v) for v in rng.integers(0, H + 1, 2))
            x0, x1 = sorted(int(v) for v in rng.integers(0, W + 1, 2))
            if y1 > y0 and x1 > x0:
                boxes.append((y0, y1, x0, x1))
        for box in boxes:
            a, oy, ox = _region(buf, box, d, fast, True)
            b, oy2, ox2 = _region(buf, box, d, fast, False)
            assert (oy, ox) == (oy2, ox2) == (box[0], ox) and a.shape[0] == box[1] - box[0]
            np.testing.assert_array_equal(a, b)
            h, w = a.shape[:2]
            # fast (merged upsampling): a region is the whole decode's, edge columns included
            lo = 0 if fast or ox == 0 else 1
            hi = w if fast or ox + w == W else w - 1
            np.testing.assert_array_equal(a[:, lo:hi], whole[oy : oy + h, ox + lo : ox + hi])


def test_restart_rows_skip_the_entropy_decoding_above_the_region():
    # bytes inserted before the first restart marker: a decode that entropy-decodes the first
    # MCU row meets them (libjpeg: "extraneous bytes", an error here); one that skips it does not
    img = photo(160, 96, seed=1)
    buf = _rst_jpeg(img)
    first = buf.index(b"\xff\xd0")
    damaged = buf[:first] + bytes(40) + buf[first:]
    box = (40, 160, 0, 96)  # starts in MCU row 2: the cut is made at row 16
    good, _, _ = _region(buf, box, 1, True, True)
    np.testing.assert_array_equal(_region(damaged, box, 1, True, True)[0], good)
    with pytest.raises(ValueError, match="JPEG decode failed"):
        _region(damaged, box, 1, True, False)
    with pytest.raises(ValueError, match="JPEG decode failed"):  # the first rows need it
        _region(damaged, (5, 160, 0, 96), 1, True, True)


def test_fast_region_decode_equals_the_whole_image_path():
    # decode.load (simplejpeg, fastdct + fastupsample) and load_region give the same pixels
    if decode.simplejpeg is None:
        pytest.skip("simplejpeg is not installed")
    img = photo(190, 250, seed=2)
    bufs = [_rst_jpeg(img), encode_pixels(img, "jpeg", 90, restart_rows=True),
            cv2.imencode(".jpg", img)[1].tobytes()]  # fmt: skip
    ds = Jpegs(bufs, [(190, 250)] * 3)
    for i in range(3):
        whole, bgr, _ = decode.load(ds, i, 1.0)
        assert not bgr
        reg, bgr, sc, off = decode.load_region(ds, i, 1.0, (60.3, 170.2, 31.0, 199.5))
        oy, ox = int(off[0]), int(off[1])
        assert not bgr and sc == (1.0, 1.0) and oy > 0
        h, w = reg.shape[:2]
        np.testing.assert_array_equal(reg, whole[oy : oy + h, ox : ox + w])


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize(
    "ops",
    [
        [T.RandomResizedCrop(224), T.HorizontalFlip()],
        [T.RandomResizedCrop(32, scale=(0.3, 1.0))],  # DCT-scaled region decodes
        [T.CenterCrop(64, short_side=80)],
        [T.TenCrop(48)],
        [T.ScaleJitter(96, short_side=(100, 200)), T.Affine(rotate=20, shear=5, translate=0.1)],
        [T.RandomResizedCrop(64), T.LensDistortion((-0.2, 0.2)), T.ColorJitter(0.4, 0.4, 0.4)],
    ],
    ids=["rrc224", "rrc32", "center", "tencrop", "jitter-affine", "lens-colour"],
)
def test_fast_decode_stays_within_the_psnr_bound_for_every_pipeline(ops):
    sizes = [(365, 401), (240, 320), (180, 260), (300, 280)]
    bufs = [_rst_jpeg(photo(h, w, seed=i)) if i % 2 else
            cv2.imencode(".jpg", photo(h, w, seed=i))[1].tobytes()
            for i, (h, w) in enumerate(sizes)]  # fmt: skip
    ds = Jpegs(bufs, sizes)
    idx = np.arange(len(sizes))
    fast, exact = T.Compose(ops), T.Compose(ops, fast_decode=False)
    assert fast.output_shape == exact.output_shape
    a = np.empty((len(idx), *fast.output_shape), np.uint8)
    b, c = np.empty_like(a), np.empty_like(a)
    for seed in range(2):
        fast.run_batch(ds, idx, seed, 0, a)
        exact.run_batch(ds, idx, seed, 0, b)
        assert _psnr(a, b) >= PSNR_BOUND
        fast.run_batch(ds, idx[::-1], seed, 0, c)  # per sample: order and batch make no change
        np.testing.assert_array_equal(c[::-1], a)


def _pack_src(tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i, (h, w) in enumerate([(70, 90), (64, 33), (131, 97), (80, 250)]):
        cv2.imwrite(str(src / f"{i}.png"), photo(h, w, seed=i))
    return tmp_path / "src"


def test_pack_restart_rows_by_default_recorded_and_written(tmp_path):
    from augpipe.format.dataset import ShardDataset
    from augpipe.format.pack import pack

    src = _pack_src(tmp_path)
    pack(src, tmp_path / "rst", progress=False)  # the default
    pack(src, tmp_path / "plain", restart_rows=False, progress=False)
    pack(src, tmp_path / "raw", format="raw", progress=False)
    for name, on in (("rst", True), ("plain", False), ("raw", False)):
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["options"]["restart_rows"] is on
    rst, plain = ShardDataset(tmp_path / "rst"), ShardDataset(tmp_path / "plain")
    for i in range(len(rst)):
        h, w = (int(v) for v in rst.sizes[i])
        buf = bytes(rst.raw(i))
        k = interval_mcus(w, 16)  # segments of k MCUs, rows holding whole segments
        assert _markers(buf) == (k, -(-h // 16) * (-(-w // 16) // k) - 1)
        assert b"\xff\xdd" not in bytes(plain.raw(i))
        # the markers change the bit stream, not the coefficients: the same pixels
        np.testing.assert_array_equal(decode.load(rst, i)[0], decode.load(plain, i)[0])


def test_pack_cli_restart_rows_flags(tmp_path, capsys):
    from augpipe.cli.main import main

    src = _pack_src(tmp_path)
    runs = {"default": [], "on": ["--restart-rows"], "off": ["--no-restart-rows"]}
    for name, flags in runs.items():
        assert main(["pack", str(src), str(tmp_path / name), "--no-progress", *flags]) == 0
    capsys.readouterr()
    got = {name: json.loads((tmp_path / name / "manifest.json").read_text())["options"]
           ["restart_rows"] for name in runs}  # fmt: skip
    assert got == {"default": True, "on": True, "off": False}
    same = [(tmp_path / n / "manifest.json").read_bytes() for n in ("default", "on")]
    assert same[0] == same[1]


@pytest.mark.parametrize("region", [True, False])
def test_datasets_without_restart_markers_or_key_give_the_same_batches(tmp_path, monkeypatch,
                                                                       region):  # fmt: skip
    """A dataset packed before restart rows were the default (plain JPEGs, no ``restart_rows``
    in its manifest) still reads, and every pipeline kind gives bit for bit the batches of the
    same images packed with the markers, through the region and the whole-image paths."""
    from augpipe.format.dataset import ShardDataset
    from augpipe.format.pack import pack

    src = _pack_src(tmp_path)
    pack(src, tmp_path / "rst", progress=False)
    pack(src, tmp_path / "old", restart_rows=False, progress=False)
    mpath = tmp_path / "old" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    del manifest["options"]["restart_rows"]
    mpath.write_text(json.dumps(manifest))
    monkeypatch.setattr(decode, "REGION_DECODE", region)
    rst, old = ShardDataset(tmp_path / "rst"), ShardDataset(tmp_path / "old")
    idx = np.arange(len(rst))
    for ops in (
        [T.RandomResizedCrop(48), T.HorizontalFlip()],
        [T.RandomResizedCrop(24, scale=(0.02, 0.1))],
        [T.RandomResizedCrop(40), T.Affine(rotate=20), T.ColorJitter(0.3, 0.3, 0.3)],
    ):
        pipe = T.Compose(ops)
        a = np.empty((len(idx), *pipe.output_shape), np.uint8)
        b = np.empty_like(a)
        for seed in range(3):
            pipe.run_batch(rst, idx, seed, 0, a)
            pipe.run_batch(old, idx, seed, 0, b)
            np.testing.assert_array_equal(a, b)
