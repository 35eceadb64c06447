"""Crop-aware decoding: a JPEG is decoded only as large, and only as much, as its crop needs.

The crop is decided from the stored size (``dataset.sizes[i]``) before any pixel is decoded;
then the JPEG is decoded at the smallest DCT scale 1/d (d in 8, 4, 2) that still gives the crop
at least one source pixel per output pixel. libjpeg's scaled decode makes a ceil(h/d) x ceil(w/d)
image whose pixel j covers full-size pixels [j d, (j + 1) d), so full-size edge coordinates map
to reduced ones by exactly 1/d (the ceil only shortens the last, partial pixel).

Backends (measured in bench/augment_speed.py on the photo corpus, one core):
full-size decodes use simplejpeg (libjpeg-turbo, fast IDCT and upsampling, RGB out) when it is
installed (a dependency of augpipe), ~20% faster than cv2.imdecode; reduced decodes use
cv2.imdecode's ``IMREAD_REDUCED_COLOR_{2,4,8}``, faster than simplejpeg's scaled decode and
than PIL's ``draft()``. OpenCV's BGR output is not converted: the kernels read it as RGB.
Raw records are reshaped in place (zero copy).

Region decode (``load_region``, when the optional C extension ``augpipe._jpegregion`` is built:
it needs the libjpeg headers at install time, ``apt-get install libjpeg-dev``; ``REGION_DECODE``
says whether it is active): only the rows and columns of the sample's source bounding box are
decoded, at the same DCT scale. libjpeg-turbo skips the IDCT, upsampling and colour conversion
of the rows above (``jpeg_skip_scanlines``) and of the columns outside (``jpeg_crop_scanline``),
and never reads the rows below. Records packed with restart markers (``augpipe pack``'s default,
``--restart-rows``: a restart interval of k MCUs dividing the MCU row, ``format/restart.py``)
skip even the entropy decoding of the rows above and below and of the columns beside the crop:
only the segments covering it are decoded (``_jpegregion``'s docstring); entropy decoding is
half of a decode's time at q90. The same pixels as without the markers; records with one
interval per MCU row (packed before) skip the rows above only.

Which decoder arithmetic (``fast``, Compose's ``fast_decode``): by default the region decode uses
libjpeg's fast integer IDCT and merged (box) chroma upsampling, the arithmetic of the whole-image
path's simplejpeg decode (``fastdct``, ``fastupsample``): the two give the same pixels bit for
bit, and a region equals the same part of a whole decode, edge columns included. Measured on
the standard crops of both benchmark corpora (one core, per-image minimum of 5): 25% less
decode time than libjpeg's defaults (accurate IDCT, fancy upsampling; 225 -> 169 us on the q90
corpus, 377 -> 314 us on the q95 one) for decoded pixels at a PSNR of 43-45 dB against them
(the augmented outputs: see docs/transforms.md for the bound the tests hold). ``fast=False``
keeps libjpeg's defaults, which equal cv2.imdecode bit for bit; their band's first and last
column differ from a whole decode (the fancy upsampler sees them as image edges), so one extra
column is decoded on each side and never sampled. A record the extension cannot decode (CMYK,
12-bit, corrupt data: libjpeg's warnings count as errors there) goes through ``load`` instead.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

try:  # optional C extension: region decode (setup.py builds it when libjpeg headers exist)
    from augpipe import _jpegregion
except ImportError:  # pragma: no cover - depends on the build
    _jpegregion = None

REGION_DECODE = _jpegregion is not None  # tests and users may set it False to force full decodes

try:  # optional, faster full-size decode
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

_REDUCED = {
    1: cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION,
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION,
}


class DecodeError(Exception):
    """A payload that does not decode; the caller names the record."""


def dct_factor(scale: float, slack: float = 1.0) -> int:
    """The largest d in (8, 4, 2, 1) with ``scale / d >= slack``: ``scale`` is the smallest
    number of full-size source pixels per output pixel over the sample's crops. ``slack`` < 1
    (``Compose(dct_slack=...)``, 0.5..1) lets the decoded crop be up to 1/slack times smaller
    than the output (the fused kernel then upsamples it a little; docs/transforms.md: the
    measured cost in PSNR)."""
    for d in (8, 4, 2):
        if scale >= d * slack:
            return d
    return 1


def decode_jpeg(buf, factor: int = 1, fast: bool = True) -> tuple[np.ndarray, bool]:
    """(image, is_bgr): HWC uint8, C-contiguous, decoded at scale 1/``factor``."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    if factor == 1 and fast and simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(arr, "RGB", fastdct=True, fastupsample=True), False
        except ValueError:
            pass  # unusual JPEG (CMYK, 12-bit ...): OpenCV decides
    img = cv2.imdecode(arr, _REDUCED[factor])
    if img is None:
        raise DecodeError("not a decodable JPEG")
    return img, True


def load(dataset, i: int, scale: float = 1.0, fast: bool = True, slack: float = 1.0):
    """Record ``i`` as (image, is_bgr, (sy, sx)): (sy, sx) = full-size / returned coordinates."""
    h, w = (int(v) for v in dataset.sizes[i])
    if dataset.encoding == "raw":
        img = np.asarray(dataset.raw(i)).reshape(h, w, -1)
        if img.shape[2] != 3:
            raise DecodeError(f"raw record has {img.shape[2]} channels, expected 3")
        return img, False, (1.0, 1.0)
    d = dct_factor(scale, slack)
    img, bgr = decode_jpeg(dataset.raw(i), d, fast)
    dh, dw = img.shape[:2]
    if (dh, dw) == (-(-h // d), -(-w // d)):
        return img, bgr, (float(d), float(d))
    return img, bgr, (h / dh, w / dw)  # a decoder that rounds differently: scale by the sizes


# decoded pixels for ``load_region(..., reuse=True)``: one grow-only buffer per thread
_scratch = threading.local()


def _buffer(nbytes: int) -> bytearray:
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < nbytes:
        buf = _scratch.buf = bytearray(max(nbytes, 1 << 20))
    return buf


def load_region(dataset, i: int, scale: float, box, step: float = 1.0, fast: bool = True,
                reuse: bool = False, slack: float = 1.0):  # fmt: skip
    """Record ``i`` as (image, is_bgr, (sy, sx), (oy, ox)): only the part inside ``box``.

    ``box`` = (y0, y1, x0, x1): the source bounding box of the sample's maps in full-size edge
    coordinates; ``step``: the most full-size pixels per output pixel along any axis (it sizes
    the margin that bilinear sampling and the anti-aliasing box filter read beyond the box).
    The returned image holds the decoded pixels whose edge coordinates start at (oy, ox), so a
    full-size edge coordinate c maps to c / s - o. Without the extension, or for raw records
    and JPEGs the extension rejects, this is ``load`` with offset (0, 0). ``reuse``: decode
    into a per-thread buffer that the next ``reuse`` call overwrites (no allocation per image).
    ``slack``: ``dct_factor``'s (with slack >= 0.5 the warp kernel's padding in ``box``, sized
    for the factor without it, still covers what it reads: at most 2 ``step`` >= 1 decoded pixel
    where it would read 1).
    """
    if not REGION_DECODE or dataset.encoding != "jpeg":
        return (*load(dataset, i, scale, fast, slack), (0.0, 0.0))
    sizes = np.asarray(dataset.sizes)
    h, w = sizes.item(i, 0), sizes.item(i, 1)  # Python ints, no NumPy scalars
    d = dct_factor(scale, slack)
    hd, wd = -(-h // d), -(-w // d)
    # box-filter blocks (factor f) overhang the box by f - 1 pixels, bilinear sampling reads 1
    # pixel past the box's edge pixels, and with fancy upsampling (fast=False) a cropped band's
    # edge columns differ from a full decode's (+ 1 each side, never sampled); the warp kernel's
    # own padding is already in the box (augpipe.ops.fused.source_boxes)
    f = int(step / d) if step / d > 2.0 else 1
    m = f + 1
    box = box.tolist() if isinstance(box, np.ndarray) else box  # Python floats: cheaper math
    y0 = max(int(math.floor(box[0] / d)) - m, 0)
    y1 = min(int(math.ceil(box[1] / d)) + m, hd)
    x0 = max(int(math.floor(box[2] / d)) - m, 0)
    x1 = min(int(math.ceil(box[3] / d)) + m, wd)
    if y1 <= y0 or x1 <= x0:  # the map lies outside the image: any pixel will do (all fill)
        y0, y1, x0, x1 = 0, 1, 0, 1
    out = _buffer(hd * wd * 3) if reuse else None
    try:
        data, oy, ox, rh, rw = _jpegregion.decode_region(
            dataset.raw(i), y0, y1, x0, x1, d, out, fast, not fast
        )
    except ValueError:  # CMYK, 12-bit, damaged data ...: the full decoders decide
        return (*load(dataset, i, scale, fast, slack), (0.0, 0.0))
    if oy != y0 or rh != y1 - y0 or ox > x0 or ox + rw < x1:
        # the JPEG is smaller than its stored size says: decode it whole, map by the sizes
        return (*load(dataset, i, scale, fast, slack), (0.0, 0.0))
    img = np.frombuffer(data, np.uint8, rh * rw * 3).reshape(rh, rw, 3)
    return img, False, (float(d), float(d)), (float(oy), float(ox))
