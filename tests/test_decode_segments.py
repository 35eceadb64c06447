"""Region decode of JPEGs whose restart interval is k MCUs, k dividing the MCU row
(``augpipe.format.restart.interval_mcus``): ``_jpegregion`` decodes a smaller JPEG made of only
the segments that cover the region (rows above and below, columns beside it left out) and
returns exactly the pixels of the same rectangle of a whole decode; damage in a segment the
region needs is an error, damage elsewhere is never read.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from jpeg_fakes import photo

from augpipe.format.restart import interval_mcus

R = pytest.importorskip(
    "augpipe._jpegregion",
    reason="augpipe._jpegregion is not built (needs libjpeg headers: apt-get install "
    "libjpeg-dev, then pip install -e .)",
)
# (OpenCV's sampling option, MCU width, MCU height)
SAMPLING = {"420": (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 16, 16),
            "422": (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, 16, 8),
            "444": (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, 8, 8)}  # fmt: skip


def _jpeg(img, sub="420", interval=None, quality=90):
    """``img`` encoded with a restart marker every ``interval`` MCUs (default: the pack rule)."""
    factor, mcu, _ = SAMPLING[sub]
    k = interval_mcus(img.shape[1], mcu) if interval is None else interval
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor]
    if k:
        params += [cv2.IMWRITE_JPEG_RST_INTERVAL, k]
    return cv2.imencode(".jpg", img[..., ::-1], params)[1].tobytes()


def _region(buf, box, d=1, fast=True, restart=True):
    data, oy, ox, h, w = R.decode_region(buf, *box, d, None, fast, not fast, restart)
    return np.frombuffer(data, np.uint8, h * w * 3).reshape(h, w, 3), oy, ox


def _segments(buf):
    """(interval, [start of each entropy-coded segment], end of the last) of a baseline JPEG."""
    i = buf.index(b"\xff\xdd")
    interval = int.from_bytes(buf[i + 4 : i + 6], "big")
    sos = buf.index(b"\xff\xda")
    p = sos + 2 + int.from_bytes(buf[sos + 2 : sos + 4], "big")
    starts = [p]
    while True:
        p = buf.index(b"\xff", p)
        if buf[p + 1] == 0xD9:
            return interval, starts, p
        if 0xD0 <= buf[p + 1] <= 0xD7:
            starts.append(p + 2)
        p += 2 if buf[p + 1] != 0xFF else 1


def _boxes(H, W, rng, n=25):
    """Random regions plus ones touching each edge and corner, a single pixel, the whole."""
    boxes = [(0, H, 0, W), (0, 1, 0, 1), (H - 1, H, W - 1, W), (0, H, W - 1, W),
             (0, H, 0, 1), (H // 3, H, W // 2, W), (0, H // 2, W // 3, W),
             (H // 2, H // 2 + 1, 0, W)]  # fmt: skip
    while len(boxes) < n:
        y0, y1 = sorted(int(v) for v in rng.integers(0, H + 1, 2))
        x0, x1 = sorted(int(v) for v in rng.integers(0, W + 1, 2))
        if y1 > y0 and x1 > x0:
            boxes.append((y0, y1, x0, x1))
    return boxes


# widths: MCU rows of 26 = 2 x 13 MCUs (k = 2), 37 (prime, long: k = 1), 7 (prime, short: the
# whole row), 30 (k = 5), 24 (k = 4), 23 (k = 1, the last MCU 3 pixels wide: libjpeg upsamples
# a sub-image with <= 2 chroma samples per row without its fancy filter, so the cut widens it);
# at 4:2:0 no width or height is a multiple of the MCU (4:4:4: half the width, the same MCUs)
@pytest.mark.parametrize("sub", ["420", "422", "444"])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("h, w", [(203, 413), (91, 16 * 37 - 5), (77, 16 * 7 - 3),
                                  (150, 16 * 30 - 9), (61, 16 * 24 - 1),
                                  (57, 16 * 23 - 13)])  # fmt: skip
def test_segment_region_equals_the_whole_decode(sub, fast, h, w):
    img = photo(h, w, seed=h + w)
    if sub == "444":
        img = img[:, : (w + 1) // 2]  # 8-pixel MCUs: the same MCU counts per row
    H0, W0 = img.shape[:2]
    buf = _jpeg(img, sub)
    k, starts, _ = _segments(buf)
    _, mcu, mcu_h = SAMPLING[sub]
    mcux, mcuy = -(-W0 // mcu), -(-H0 // mcu_h)
    assert k == interval_mcus(W0, mcu) and mcux % k == 0 and len(starts) == mcuy * mcux // k
    rng = np.random.default_rng(h)
    for d in (1, 2, 4, 8):
        H, W = -(-H0 // d), -(-W0 // d)
        whole, _, _ = _region(buf, (0, H, 0, W), d, fast, restart=False)
        assert whole.shape == (H, W, 3)
        for box in _boxes(H, W, rng):
            a, oy, ox = _region(buf, box, d, fast)
            b, oy2, ox2 = _region(buf, box, d, fast, restart=False)  # the same crop, no cut
            rh, rw = a.shape[:2]
            assert (oy, ox, a.shape) == (oy2, ox2, b.shape), (box, d)
            assert oy == box[0] and rh == box[1] - box[0] and ox <= box[2] and ox + rw >= box[3]
            # fancy upsampling (fast=False): a band's first and last column see a cut edge,
            # as without the segments (decode.py: one extra column each side, never sampled)
            lo = 0 if fast or ox == 0 else 1
            hi = rw if fast or ox + rw == W else rw - 1
            np.testing.assert_array_equal(a[:, lo:hi], whole[oy : oy + rh, ox + lo : ox + hi])


def test_one_row_and_no_interval_jpegs_decode_as_before():
    img = photo(150, 250, seed=5)
    W = 250
    for k in (0, -(-W // 16)):  # no markers; one interval per MCU row (older packs)
        buf = _jpeg(img, interval=k)
        whole, _, _ = _region(buf, (0, 150, 0, W), restart=False)
        for box in _boxes(150, W, np.random.default_rng(k)):
            a, oy, ox = _region(buf, box)
            rh, rw = a.shape[:2]
            np.testing.assert_array_equal(a, whole[oy : oy + rh, ox : ox + rw])


def _damaged(buf, segment, how):
    """``buf`` with entropy-coded segment ``segment`` lengthened, shortened or garbled."""
    _, starts, end = _segments(buf)
    s = starts[segment]
    e = (starts[segment + 1] - 2) if segment + 1 < len(starts) else end
    if how == "extra":
        return buf[:e] + bytes(7) + buf[e:]
    if how == "short":
        return buf[: s + (e - s) // 3] + buf[e:]
    rng = np.random.default_rng(segment)  # "garbled": a renumbered marker, then the data
    junk = bytes(int(v) for v in rng.integers(0, 255, e - s)).replace(b"\xff", b"\x00")
    return buf[:s] + junk + buf[e:]


def test_segments_beside_and_above_the_region_are_never_read():
    img = photo(96, 413, seed=7)  # 26 MCUs per row: k = 2, 13 segments per row of 32 px
    buf = _jpeg(img)
    k, starts, _ = _segments(buf)
    assert k == 2 and len(starts) == 6 * 13
    box = (40, 60, 200, 260)  # MCU rows 2..3, segments 6..8 of each
    good, _, _ = _region(buf, box)
    for seg in (0, 13 * 2 + 2, 13 * 3 + 11, 13 * 5 + 7):  # above, left, right, below
        for how in ("extra", "short"):
            bad = _damaged(buf, seg, how)
            np.testing.assert_array_equal(_region(bad, box)[0], good)
            with pytest.raises(ValueError, match="JPEG decode failed"):  # without the cut
                _region(bad, (0, 96, 0, 413), restart=False)


@pytest.mark.parametrize("how", ["extra", "short", "garbled"])
def test_damage_in_a_needed_segment_is_an_error(how):
    img = photo(96, 413, seed=8)
    buf = _jpeg(img)
    box = (40, 60, 200, 260)
    for seg in (13 * 2 + 6, 13 * 3 + 7):  # inside the region's rows and columns
        bad = _damaged(buf, seg, how)
        with pytest.raises(ValueError, match="JPEG decode failed"):
            _region(bad, box)
    with pytest.raises(ValueError, match="JPEG decode failed"):  # truncated in the region
        _region(buf[: _segments(buf)[1][13 * 3 + 7] + 5], box)


def test_markers_out_of_sequence_keep_the_whole_jpeg():
    # a marker renumbered: the segment table does not hold, so the JPEG is decoded whole and
    # libjpeg's own resynchronisation is reported where the region needs it
    img = photo(96, 413, seed=9)
    buf = _jpeg(img)
    _, starts, _ = _segments(buf)
    p = starts[13 * 3 + 7] - 1
    bad = buf[:p] + bytes([0xD0 + (buf[p] - 0xD0 + 3) % 8]) + buf[p + 1 :]
    with pytest.raises(ValueError, match="JPEG decode failed"):
        _region(bad, (40, 60, 200, 260))
