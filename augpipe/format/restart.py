"""Restart intervals for packed JPEGs: where the entropy-coded data restarts, so a crop's
decode can start (and stop) at a restart marker instead of reading the whole image.

A baseline JPEG's restart interval counts MCUs (16 x 16 pixels at 4:2:0, 8 x 8 at 4:4:4) in
raster order. With an interval ``k`` that divides the MCU row (``mcux`` MCUs), every MCU row
holds ``mcux / k`` segments, each decodable on its own: its DC predictions restart and it begins
on a byte boundary. ``augpipe._jpegregion`` then builds, for a crop, a smaller JPEG from only the
segments that cover it (rows above and below, columns left and right left out).

    >>> interval_mcus(500, 16)  # 32 MCUs per row: 4 MCUs (64 px) per segment
    4

Source JPEGs that ``augpipe pack --keep-jpeg`` stores as they are get their markers from
``add_restarts``: a lossless transcode (``augpipe._jpegrestart``, libjpeg's
``jpeg_read_coefficients`` -> ``jpeg_write_coefficients``, as ``jpegtran -restart``): the same
DCT coefficients, so every decoder gives the same pixels, with optimised Huffman tables (a
few % more bytes than the source: the markers and their restarted DC predictions) and always
baseline (a progressive source becomes baseline).
The rule when it cannot be done (the extension is not built; libjpeg refuses the file: corrupt
data, any libjpeg warning, CMYK, greyscale, 12-bit; an MCU row too long for the 16-bit
interval): the original bytes are kept, and ``try_add_restarts`` says why.

    >>> data = add_restarts(open("photo.jpg", "rb").read())  # doctest: +SKIP
"""

from __future__ import annotations

try:  # optional C extension (setup.py builds it when the libjpeg headers exist)
    from augpipe import _jpegrestart
except ImportError:  # pragma: no cover - depends on the build
    _jpegrestart = None

TARGET_MCUS = 4  # segment width aimed at (MCUs): ~64 px at 4:2:0
MAX_INTERVAL = 0xFFFF  # DRI is a 16-bit field


def interval_mcus(width: int, mcu_w: int = 16, target: int = TARGET_MCUS) -> int:
    """The restart interval (in MCUs) for an image ``width`` pixels wide with MCUs ``mcu_w``
    pixels wide: the divisor k of the MCU row closest to ``target`` (the larger on a tie), so
    that rows hold whole segments. A row whose only divisors are 1 and itself uses 1 (one
    segment per MCU) when it is longer than twice the target, else the whole row. 0 when no
    interval fits the 16-bit field."""
    if width <= 0 or mcu_w <= 0:
        raise ValueError(f"width and mcu_w must be positive, got {width}, {mcu_w}")
    mcux = -(-width // mcu_w)
    divisors = [k for k in range(2, mcux) if mcux % k == 0]
    if divisors:
        k = min(divisors, key=lambda d: (abs(d - target), -d))
    else:
        k = 1 if mcux > 2 * target else mcux
    return k if k <= MAX_INTERVAL else 0


def marker_segments(data) -> list[tuple[int, int, int]] | None:
    """The marker segments of a JPEG (bytes or memoryview) from after SOI up to the first scan's
    header: (marker, start, end) each, ``data[start:end]`` the segment with its marker (fill
    bytes between segments left out); the last is the SOS. None when SOI is missing, the
    structure is not the expected one, or no scan is reached."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    segs, i = [], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        segs.append((marker, i, end))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return segs
        i = end
    return None


def jpeg_layout(payload) -> tuple[int, int, int, int, int, bool] | None:
    """(width, height, mcu_w, mcu_h, restart interval or 0, progressive) from the frame header
    (SOF: the largest sampling factors times 8 give the MCU) and DRI before the first scan;
    None when the markers are not those of a JPEG with a frame."""
    segs = marker_segments(payload)
    if segs is None:
        return None
    interval, frame = 0, None
    for m, i, end in segs:
        seg = bytes(payload[i + 4 : end])
        if m == 0xDD and len(seg) == 2:
            interval = int.from_bytes(seg, "big")
        elif 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):  # SOFn
            if len(seg) < 6 or len(seg) < 6 + 3 * seg[5]:
                return None
            sampling = [seg[6 + 3 * c + 1] for c in range(seg[5])]
            hmax = max((c >> 4 for c in sampling), default=1) or 1
            vmax = max((c & 15 for c in sampling), default=1) or 1
            height, width = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big")
            frame = (width, height, 8 * hmax, 8 * vmax, m in (0xC2, 0xC6, 0xCA))
    if frame is None:
        return None
    return (*frame[:4], interval, frame[4])


def has_restarts(payload) -> bool:
    """Whether the JPEG ``payload`` declares a restart interval before its first scan."""
    layout = jpeg_layout(payload)
    return bool(layout and layout[4])


def try_add_restarts(payload) -> tuple[bytes, str | None]:
    """(the JPEG with a restart marker every ``interval_mcus(width, mcu_w)`` MCUs, None), or
    (the original bytes, why not). A baseline JPEG that already has that interval is returned
    as it is."""
    data = bytes(payload)
    if _jpegrestart is None:
        return data, "augpipe._jpegrestart is not built (needs the libjpeg headers)"
    layout = jpeg_layout(data)
    if layout is None:
        return data, "not a JPEG with a readable frame header"
    width, _, mcu_w, _, interval, progressive = layout
    if width <= 0:
        return data, "the frame header gives no width"
    k = interval_mcus(width, mcu_w)
    if k == 0:
        return data, f"{width} px is too wide for a 16-bit restart interval"
    if interval == k and not progressive:
        return data, None
    try:
        return _jpegrestart.add_restarts(data, k), None
    except ValueError as exc:
        return data, str(exc)


def add_restarts(payload, width: int | None = None, mcu_w: int | None = None) -> bytes:
    """The JPEG ``payload`` with restart markers (see ``try_add_restarts``), or the original
    bytes when they cannot be added. ``width`` / ``mcu_w`` are read from the JPEG's frame
    header; when given they must agree with it (else the original bytes: a record whose stored
    size disagrees with its JPEG is not rewritten)."""
    if width is not None or mcu_w is not None:
        layout = jpeg_layout(payload)
        if (
            layout is None
            or (width is not None and layout[0] != width)
            or (mcu_w is not None and layout[2] != mcu_w)
        ):
            return bytes(payload)
    return try_add_restarts(payload)[0]
