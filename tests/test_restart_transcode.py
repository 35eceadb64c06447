"""Lossless restart markers for kept source JPEGs (``augpipe._jpegrestart`` through
``augpipe.format.restart.add_restarts``): the same pixels, the interval dividing the MCU row,
the original bytes kept (with the reason) when libjpeg refuses the file, and detection packs
with ``keep_jpeg`` storing the transcoded JPEGs."""

from __future__ import annotations

import io
import json
import threading

import cv2
import numpy as np
import pytest
import simplejpeg
from jpeg_fakes import photo
from PIL import Image

from augpipe import ShardDataset
from augpipe.format import restart
from augpipe.format.imageio import strip_jpeg_metadata
from augpipe.format.pack import pack
from augpipe.format.restart import (
    add_restarts,
    has_restarts,
    interval_mcus,
    jpeg_layout,
    try_add_restarts,
)

R = pytest.importorskip(
    "augpipe._jpegrestart",
    reason="augpipe._jpegrestart is not built (needs libjpeg headers: apt-get install "
    "libjpeg-dev, then pip install -e .)",
)

_SUB = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
        "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}  # fmt: skip


def _jpeg(img, sub="420", progressive=False, quality=90):
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _SUB[sub],
              cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]  # fmt: skip
    return cv2.imencode(".jpg", img[..., ::-1], params)[1].tobytes()


def _pixels(buf):
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)


def _rst_count(buf):
    scan = buf[buf.index(b"\xff\xda") :]
    return sum(scan.count(bytes([0xFF, 0xD0 + k])) for k in range(8))


@pytest.mark.parametrize("sub", ["420", "422", "444"])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("hw", [(64, 128), (101, 203), (37, 45), (9, 700)])
def test_transcode_is_lossless_and_intervals_divide_the_mcu_row(sub, progressive, hw):
    h, w = hw
    src = _jpeg(photo(h, w, seed=h + w), sub, progressive)
    out, why = try_add_restarts(src)
    assert why is None
    for decode in (_pixels, lambda b: simplejpeg.decode_jpeg(b, "RGB")):  # two libjpeg builds
        np.testing.assert_array_equal(decode(out), decode(src))
    mcu_w = 8 if sub == "444" else 16
    mcu_h = 16 if sub == "420" else 8
    width, height, mw, mh, k, prog = jpeg_layout(out)
    assert (width, height, mw, mh, prog) == (w, h, mcu_w, mcu_h, False)  # baseline now
    mcux, mcuy = -(-w // mcu_w), -(-h // mcu_h)
    assert k == interval_mcus(w, mcu_w) and mcux % k == 0
    assert _rst_count(out) == mcux * mcuy // k - 1  # one marker between intervals
    assert b"\xff\xc0" in out and b"\xff\xc2" not in out


def test_metadata_is_not_copied_and_pillow_reads_the_same_image():
    img = Image.fromarray(photo(60, 90, seed=5))
    bio = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "a description"
    img.save(bio, "JPEG", quality=85, exif=exif, comment=b"hello")
    src = bio.getvalue()
    out = add_restarts(src)
    assert b"Exif" not in out and b"hello" not in out and has_restarts(out)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))),
                                  np.asarray(Image.open(io.BytesIO(src))))  # fmt: skip


def test_an_image_with_the_interval_already_is_returned_as_it_is():
    out = add_restarts(_jpeg(photo(40, 300)))
    again, why = try_add_restarts(out)
    assert why is None and again == out


def _cmyk_jpeg():
    bio = io.BytesIO()
    Image.fromarray(photo(32, 48)).convert("CMYK").save(bio, "JPEG")
    return bio.getvalue()


def _extraneous_bytes():
    """Junk before a restart marker: libjpeg warns ("extraneous bytes before marker") and
    decodes anyway (cv2 and Pillow accept such a file)."""
    params = [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]  # one interval per MCU row: not the chosen k
    buf = cv2.imencode(".jpg", photo(48, 64), params)[1].tobytes()
    first = buf.index(b"\xff\xd0")
    return buf[:first] + bytes(40) + buf[first:]


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: _jpeg(photo(48, 64))[:900], "Premature end"),  # truncated
        (lambda: b"not a jpeg at all" * 4, "readable frame header"),
        (lambda: cv2.imencode(".jpg", photo(32, 48)[..., 0])[1].tobytes(), "1 components"),
        (_cmyk_jpeg, "4 components"),
        (_extraneous_bytes, "extraneous bytes"),
    ],
)
def test_refused_inputs_keep_their_bytes_and_say_why(make, reason):
    src = make()
    out, why = try_add_restarts(src)
    assert out == src and reason in why
    assert add_restarts(src) == src


def test_the_extension_raises_value_error_on_bad_input_and_intervals():
    with pytest.raises(ValueError, match="JPEG transcode failed"):
        R.add_restarts(b"\xff\xd8\xff\xdb" + bytes(100), 4)
    with pytest.raises(ValueError, match="interval_mcus"):
        R.add_restarts(_jpeg(photo(16, 16)), 0)
    with pytest.raises(ValueError, match="interval_mcus"):
        R.add_restarts(_jpeg(photo(16, 16)), 1 << 16)


def test_width_or_mcu_that_disagree_with_the_jpeg_keep_the_bytes():
    src = _jpeg(photo(32, 80))
    assert add_restarts(src, width=81) == src
    assert add_restarts(src, mcu_w=8) == src
    assert has_restarts(add_restarts(src, width=80, mcu_w=16))


def test_without_the_extension_the_bytes_are_kept(monkeypatch):
    monkeypatch.setattr(restart, "_jpegrestart", None)
    src = _jpeg(photo(32, 80))
    out, why = try_add_restarts(src)
    assert out == src and "not built" in why


def test_threads_give_the_same_bytes():
    src = _jpeg(photo(256, 384, seed=2))
    ref = R.add_restarts(src, 4)
    got = []
    threads = [threading.Thread(target=lambda: got.append(R.add_restarts(src, 4)))
               for _ in range(4)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [ref] * 4


@pytest.mark.parametrize("fast", [True, False])
def test_region_decode_of_the_transcoded_jpeg_equals_the_whole_decode(fast):
    region = pytest.importorskip("augpipe._jpegregion")
    out = add_restarts(_jpeg(photo(203, 317, seed=4)))
    rng = np.random.default_rng(1)
    for d in (1, 2, 4):
        H, W = -(-203 // d), -(-317 // d)
        data, _, _, h, w = region.decode_region(out, 0, H, 0, W, d, None, fast, not fast)
        whole = np.frombuffer(data, np.uint8, h * w * 3).reshape(h, w, 3)
        for _ in range(10):
            y0, y1 = sorted(int(v) for v in rng.integers(0, H + 1, 2))
            x0, x1 = sorted(int(v) for v in rng.integers(0, W + 1, 2))
            if y1 <= y0 or x1 <= x0:
                continue
            data, oy, ox, h, w = region.decode_region(out, y0, y1, x0, x1, d, None, fast, not fast)
            a = np.frombuffer(data, np.uint8, h * w * 3).reshape(h, w, 3)
            lo = 0 if fast or ox == 0 else 1  # fancy upsampling: a band's edge columns differ
            hi = w if fast or ox + w == W else w - 1
            np.testing.assert_array_equal(a[:, lo:hi], whole[oy : oy + h, ox + lo : ox + hi])


def _coco(root, progressive_first=True):
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i, (h, w) in enumerate([(70, 100), (53, 131), (64, 64)]):
        buf = _jpeg(photo(h, w, seed=i), "444" if i == 2 else "420", progressive_first and i == 0)
        (root / "images" / f"im{i}.jpg").write_bytes(buf)
        images.append({"id": i, "file_name": f"im{i}.jpg", "height": h, "width": w})
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                     "bbox": [2, 3, 20, 15]})  # fmt: skip
    js = root / "instances.json"
    js.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": 1, "name": "thing"}]}))  # fmt: skip
    return js


def test_coco_pack_with_keep_jpeg_stores_transcoded_jpegs_with_the_same_pixels(tmp_path):
    js = _coco(tmp_path / "coco")
    rep = pack(None, tmp_path / "out", coco=js, root=tmp_path / "coco" / "images",
               keep_jpeg=True, progress=False)  # fmt: skip
    assert rep.packed == 3 and rep.without_restarts == 0
    ds = ShardDataset(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["options"][
        "restart_rows"] is True  # fmt: skip
    for i in range(3):
        src = (tmp_path / "coco" / "images" / f"im{i}.jpg").read_bytes()
        stored = bytes(ds.raw(i))
        assert has_restarts(stored) and not jpeg_layout(stored)[5]  # baseline, with markers
        np.testing.assert_array_equal(_pixels(stored), _pixels(src))
        assert ds.targets(i).boxes.tolist() == [[2, 3, 22, 18]]
    # without restart rows: baseline sources byte for byte, the progressive one re-encoded
    pack(None, tmp_path / "plain", coco=js, root=tmp_path / "coco" / "images", keep_jpeg=True,
         restart_rows=False, progress=False)  # fmt: skip
    plain = ShardDataset(tmp_path / "plain")
    for i in (1, 2):
        src = (tmp_path / "coco" / "images" / f"im{i}.jpg").read_bytes()
        assert bytes(plain.raw(i)) == strip_jpeg_metadata(src)
    assert not has_restarts(bytes(plain.raw(0)))


def test_yolo_pack_with_keep_jpeg_has_markers_and_reports_refusals(tmp_path, monkeypatch):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(2):
        (root / "images" / f"{i}.jpg").write_bytes(_jpeg(photo(40 + i, 90, seed=i)))
        (root / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    rep = pack(None, tmp_path / "out", yolo=root, keep_jpeg=True, progress=False)
    ds = ShardDataset(tmp_path / "out")
    assert rep.without_restarts == 0
    for i in range(2):
        stored = bytes(ds.raw(i))
        assert has_restarts(stored)
        src = (root / "images" / f"{i}.jpg").read_bytes()
        np.testing.assert_array_equal(_pixels(stored), _pixels(src))
    monkeypatch.setattr(restart, "_jpegrestart", None)  # the pack in this process: no workers
    rep = pack(None, tmp_path / "off", yolo=root, keep_jpeg=True, progress=False)
    assert rep.without_restarts == 2 and "2 JPEG(s) stored without restart markers" in rep.summary()
    off = ShardDataset(tmp_path / "off")
    assert bytes(off.raw(0)) == strip_jpeg_metadata((root / "images" / "0.jpg").read_bytes())


@pytest.mark.parametrize("perspective", [0.0, 0.002])
def test_mosaic_from_transcoded_records_equals_whole_image_decodes(tmp_path, monkeypatch,
                                                                    perspective):  # fmt: skip
    """Mosaic's tiles decode only their region (the restart segments that cover it, from the
    transcoded records): the output equals the one from whole-image decodes, bit for bit."""
    pytest.importorskip("augpipe._jpegregion")
    from augpipe import Affine, Compose, HorizontalFlip, decode
    from augpipe.ops.detection.hsv import HSVJitter
    from augpipe.ops.detection.mosaic import Mosaic
    from augpipe.ops.detection.random_scale import RandomScale
    from augpipe.targets.batch import TargetPipeline

    (tmp_path / "im").mkdir()
    images, anns = [], []
    for i in range(6):
        h, w = 70 + 9 * i, 120 - 7 * i
        (tmp_path / "im" / f"{i}.jpg").write_bytes(_jpeg(photo(h, w, seed=i), "420", i == 1))
        images.append({"id": i, "file_name": f"{i}.jpg", "height": h, "width": w})
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                     "bbox": [5, 6, 30, 20]})  # fmt: skip
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": 1, "name": "x"}]}))  # fmt: skip
    pack(None, tmp_path / "p", coco=js, root=tmp_path / "im", keep_jpeg=True, progress=False)
    ds = ShardDataset(tmp_path / "p")
    assert all(has_restarts(bytes(ds.raw(i))) for i in range(len(ds)))
    pipe = Compose([Mosaic(160), RandomScale((0.5, 1.5)),
                    Affine(rotate=10, translate=0.1, shear=5, perspective=perspective),
                    HorizontalFlip(), HSVJitter()])  # fmt: skip
    calls = []
    real = decode._jpegregion.decode_region

    def counted(*args):
        calls.append(args[1:5])
        return real(*args)

    monkeypatch.setattr(decode._jpegregion, "decode_region", counted)
    runs = []
    for region in (True, False):
        monkeypatch.setattr(decode, "REGION_DECODE", region)
        tp = TargetPipeline(pipe.bind(ds), ds)
        runs.append(tp.sample(ds, np.arange(6), seed=3))
    assert len(calls) >= 6  # the tiles took the region decode
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1]["boxes"], runs[1][1]["boxes"])
