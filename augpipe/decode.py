"""Crop-aware decoding: a JPEG is decoded only as large as the sample's crop needs.

The crop is decided from the stored size (``dataset.sizes[i]``) before any pixel is decoded;
then the JPEG is decoded at the smallest DCT scale 1/d (d in 8, 4, 2) that still gives the crop
at least one source pixel per output pixel. libjpeg's scaled decode makes a ceil(h/d) x ceil(w/d)
image whose pixel j covers full-size pixels [j d, (j + 1) d), so full-size edge coordinates map
to reduced ones by exactly 1/d (the ceil only shortens the last, partial pixel).

Backends (measured in bench/augment_speed.py on the photo corpus, one core):
full-size decodes use simplejpeg (libjpeg-turbo, fast IDCT and upsampling, RGB out) when it is
installed (``pip install augpipe[fast]``), ~20% faster than cv2.imdecode; reduced decodes use
cv2.imdecode's ``IMREAD_REDUCED_COLOR_{2,4,8}``, faster than simplejpeg's scaled decode and
than PIL's ``draft()``. OpenCV's BGR output is not converted: the kernels read it as RGB.
Raw records are reshaped in place (zero copy).
"""

from __future__ import annotations

import cv2
import numpy as np

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


def dct_factor(scale: float) -> int:
    """The largest d in (8, 4, 2, 1) with ``scale / d >= 1``: ``scale`` is the smallest number of
    full-size source pixels per output pixel over the sample's crops."""
    for d in (8, 4, 2):
        if scale >= d:
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


def load(dataset, i: int, scale: float = 1.0, fast: bool = True):
    """Record ``i`` as (image, is_bgr, (sy, sx)): (sy, sx) = full-size / returned coordinates."""
    h, w = (int(v) for v in dataset.sizes[i])
    if dataset.encoding == "raw":
        img = np.asarray(dataset.raw(i)).reshape(h, w, -1)
        if img.shape[2] != 3:
            raise DecodeError(f"raw record has {img.shape[2]} channels, expected 3")
        return img, False, (1.0, 1.0)
    d = dct_factor(scale)
    img, bgr = decode_jpeg(dataset.raw(i), d, fast)
    dh, dw = img.shape[:2]
    if (dh, dw) == (-(-h // d), -(-w // d)):
        return img, bgr, (float(d), float(d))
    return img, bgr, (h / dh, w / dw)  # a decoder that rounds differently: scale by the sizes
