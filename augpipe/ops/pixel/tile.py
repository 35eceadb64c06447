"""Numba kernels of the post-resample stages, run on one sample's HWC uint8 output tile.

``run_program`` executes the step codes of ``program.py`` in order, rounding and clamping to
uint8 after each step as the references do (PIL ImageOps/ImageEnhance, torchvision's
functional): the lookup-table steps (``tables.py``: solarize, posterize, invert as arithmetic;
autocontrast from the tile's min/max and equalize from its histogram, computed only when a
sample draws them), enhance blends (truncating like PIL's ``Image.blend``), the 3x3 sharpness
filter and a separable Gaussian blur (``filters.py``). ``clip_canvas`` fills the pixels whose
position under a policy's geometric map falls outside the crop canvas; ``erase`` writes
RandomErasing's box; ``mix_into`` accumulates AugMix chains.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numba import njit

from augpipe.ops.pixel import filters as F
from augpipe.ops.pixel import program as P
from augpipe.ops.pixel import tables as T
from augpipe.ops.pixel.filters import blend_u8, copy_into
from augpipe.ops.pixel.tables import autocontrast_lut, equalize_lut  # noqa: F401 (tests)

# fastmath=False explicitly: a kernel without the option inherits its caller's (``_render`` is
# fastmath), and a contracted multiply-add rounds differently from the reference formulas
_K = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False, fastmath=False)


@njit(**_K)
def _grey(r, g, b):  # PIL's RGB -> L: ITU-R 601 in 16-bit fixed point, rounded
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


@njit(**_K)
def _blend_const(flat, d, f):
    f = np.float32(f)
    for i in range(flat.shape[0]):
        flat[i] = blend_u8(d, flat[i], f)


@njit(**_K)
def _blend_grey(flat, f):
    """Blend with L (``_grey``), L computed in float32: every product and partial sum of its
    fixed-point formula is an integer below 2^24, so exact, and the loop vectorises."""
    f = np.float32(f)
    k0, k1, k2 = np.float32(19595), np.float32(38470), np.float32(7471)
    rnd, shift = np.float32(0x8000), np.float32(1.0 / 65536)
    for i in range(flat.shape[0] // 3):
        r, g, b = flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]
        L = np.floor((np.float32(r) * k0 + np.float32(g) * k1 + np.float32(b) * k2 + rnd) * shift)
        flat[3 * i] = blend_u8(L, r, f)
        flat[3 * i + 1] = blend_u8(L, g, f)
        flat[3 * i + 2] = blend_u8(L, b, f)


@njit(**_K)
def _contrast(flat, f, tv):
    n = flat.shape[0] // 3
    s = 0  # the per-pixel greys are integers: an integer sum is exact and vectorises
    for i in range(n):
        if tv:  # torchvision: floor of 0.2989 r + 0.587 g + 0.114 b, mean in float
            s += np.int64(math.floor(0.2989 * flat[3 * i] + 0.587 * flat[3 * i + 1]
                                     + 0.114 * flat[3 * i + 2]))  # fmt: skip
        else:
            s += _grey(np.int64(flat[3 * i]), np.int64(flat[3 * i + 1]), np.int64(flat[3 * i + 2]))
    m = s / max(n, 1)
    d = np.float32(m) if tv else np.float32(int(m + 0.5))
    _blend_const(flat, d, f)


@njit(**_K)
def _hue(flat, shift):
    """RGB -> HSV, h += shift (mod 1), -> RGB, in float like torchvision's adjust_hue."""
    for i in range(flat.shape[0] // 3):
        r = flat[3 * i] / 255.0
        g = flat[3 * i + 1] / 255.0
        b = flat[3 * i + 2] / 255.0
        mx = max(r, g, b)
        mn = min(r, g, b)
        d = mx - mn
        if d == 0.0:
            continue  # grey: hue has no effect
        if mx == r:
            h = ((g - b) / d) % 6.0
        elif mx == g:
            h = (b - r) / d + 2.0
        else:
            h = (r - g) / d + 4.0
        h = (h / 6.0 + shift) % 1.0
        s = d / mx
        v = mx
        h6 = h * 6.0
        j = int(h6) % 6
        fr = h6 - math.floor(h6)
        p = v * (1.0 - s)
        q = v * (1.0 - s * fr)
        t = v * (1.0 - s * (1.0 - fr))
        if j == 0:
            r, g, b = v, t, p
        elif j == 1:
            r, g, b = q, v, p
        elif j == 2:
            r, g, b = p, v, t
        elif j == 3:
            r, g, b = p, q, v
        elif j == 4:
            r, g, b = t, p, v
        else:
            r, g, b = v, p, q
        flat[3 * i] = np.uint8(min(max(r * 255.0 + 0.5, 0.0), 255.0))
        flat[3 * i + 1] = np.uint8(min(max(g * 255.0 + 0.5, 0.0), 255.0))
        flat[3 * i + 2] = np.uint8(min(max(b * 255.0 + 0.5, 0.0), 255.0))


@njit(**_K)
def run_program(tile, codes, args):
    """Run the steps ``codes`` (S,) with ``args`` (S, 4) on ``tile`` (H, W, 3) uint8, in place."""
    flat = tile.reshape(-1)
    lut = np.empty((3, 256), np.uint8)
    for s in range(codes.shape[0]):
        code = codes[s]
        a0, a1 = args[s, 0], args[s, 1]
        if code == P.NOP:
            continue
        if code <= P.INVERT:
            T.static_step(flat, code, a0, a1)
        elif code == P.EQUALIZE:
            T.equalize_lut(T.histogram(flat), lut)
            T.apply_lut(flat, lut)
        elif code == P.AUTOCONTRAST:
            T.autocontrast(flat)
        elif code == P.BRIGHTNESS:
            _blend_const(flat, np.float32(0.0), a0)
        elif code == P.COLOR:
            _blend_grey(flat, a0)
        elif code == P.CONTRAST:
            _contrast(flat, a0, a1 != 0)
        elif code == P.SHARPNESS:
            F.sharpness(tile, a0)
        elif code == P.GRAYSCALE:
            _blend_grey(flat, 0.0)
        elif code == P.BLUR:
            F.blur(tile, a0, a1)
        elif code == P.HUE:
            _hue(flat, a0)


@njit(**_K)
def _outside(G, x, y, hx, hy):
    X = x + 0.5 - hx
    Y = y + 0.5 - hy
    u = G[0, 0] * X + G[0, 1] * Y + G[0, 2]
    v = G[1, 0] * X + G[1, 1] * Y + G[1, 2]
    return u < -hx or u >= hx or v < -hy or v >= hy


@njit(**_K)
def clip_canvas(tile, G, fill):
    """Fill output pixels whose centre maps (by G, centred output frame -> centred crop frame)
    outside the crop canvas: a policy's rotate/shear/translate never shows pixels beyond the
    crop, as when the reference transforms the already-cropped image. The map is affine and
    the canvas convex, so each row's inside pixels are one run: found from the row's two
    linear constraints, then checked pixel-exactly at its ends."""
    H, W = tile.shape[0], tile.shape[1]
    hx, hy = W / 2.0, H / 2.0
    rows = tile.reshape(H, 3 * W)
    pattern = np.empty(3 * W, np.uint8)  # the fill colour, one row of it
    for x in range(W):
        pattern[3 * x] = np.uint8(fill[0])
        pattern[3 * x + 1] = np.uint8(fill[1])
        pattern[3 * x + 2] = np.uint8(fill[2])
    for y in range(H):
        Y = y + 0.5 - hy
        lo, hi = -np.inf, np.inf  # X range inside, from u and v in [-h, h)
        for row, h in ((0, hx), (1, hy)):
            a = G[row, 0]
            b = G[row, 1] * Y + G[row, 2]
            if a == 0.0:
                if b < -h or b >= h:
                    lo, hi = np.inf, -np.inf
            else:
                t0, t1 = (-h - b) / a, (h - b) / a
                lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
        x0, x1 = W, -1  # inside run [x0, x1]
        if lo <= hi:
            x0 = int(max(min(math.floor(lo + hx - 0.5), W), -1))
            x1 = int(max(min(math.ceil(hi + hx - 0.5), W), -1))
            while x0 < W and (x0 < 0 or _outside(G, x0, y, hx, hy)):
                x0 += 1
            while x0 > 0 and not _outside(G, x0 - 1, y, hx, hy):
                x0 -= 1
            while x1 >= x0 and (x1 >= W or _outside(G, x1, y, hx, hy)):
                x1 -= 1
            while x1 < W - 1 and x1 >= x0 and not _outside(G, x1 + 1, y, hx, hy):
                x1 += 1
        if x1 < x0:
            x0, x1 = W, W - 1  # nothing inside: fill the whole row
        copy_into(rows[y, : 3 * x0], pattern[: 3 * x0])  # contiguous copies of the fill row
        copy_into(rows[y, 3 * (x1 + 1) :], pattern[3 * (x1 + 1) :])


@njit(**_K)
def _hash(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# N(0, 1) at the centres of 4096 equal-probability bins: per-pixel erase noise is one hash per
# pixel and three table lookups (12 bits each)
_NORMAL = np.array([NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096)], np.float32)


@njit(**_K)
def erase(tile, box, mode, colour, std, key):
    """RandomErasing's box (y0, x0, h, w): mode 1 writes ``colour``; mode 2 ``colour`` too (drawn
    per sample by the op); mode 3 per-pixel noise colour + std * N(0, 1) from ``key``. Row by
    row: the colour as three precomputed bytes, or the row's hashes in one loop, then the
    table lookups."""
    y0, x0, h, w = box[0], box[1], box[2], box[3]
    if mode == 0 or h <= 0 or w <= 0:
        return
    W = tile.shape[1]
    rows = tile.reshape(tile.shape[0], 3 * W)
    half, lo, hi = np.float32(0.5), np.float32(0.0), np.float32(255.0)
    p0 = np.uint8(min(max(colour[0] + half, lo), hi))
    p1 = np.uint8(min(max(colour[1] + half, lo), hi))
    p2 = np.uint8(min(max(colour[2] + half, lo), hi))
    z = np.empty(w, np.uint64)
    for y in range(y0, y0 + h):
        r = rows[y, 3 * x0 : 3 * (x0 + w)]
        if mode != 3:
            for x in range(w):
                r[3 * x] = p0
                r[3 * x + 1] = p1
                r[3 * x + 2] = p2
            continue
        base = np.uint64(y * W + x0)
        for x in range(w):  # pixel (y, x0 + x) hashes key ^ ((y W + x0 + x) 2 + 1)
            z[x] = _hash(key ^ ((base + np.uint64(x)) * np.uint64(2) + np.uint64(1)))
        for x in range(w):
            for c in range(3):
                g = _NORMAL[(z[x] >> np.uint64(12 * c)) & np.uint64(4095)]
                r[3 * x + c] = np.uint8(min(max(colour[c] + std[c] * g + half, lo), hi))


@njit(**_K)
def mix_into(acc, tile, w):
    """acc += w * tile (AugMix's weighted sum of chains, in float)."""
    a = acc.reshape(-1)
    t = tile.reshape(-1)
    w = np.float32(w)
    for i in range(a.shape[0]):
        a[i] += w * np.float32(t[i])


@njit(**_K)
def mix_finish(tile, acc, m):
    """tile = blend(tile, uint8(clip(acc)), m): timm's AugMix end (truncations as timm's)."""
    a = acc.reshape(-1)
    t = tile.reshape(-1)
    m = np.float32(m)
    for i in range(a.shape[0]):
        mixed = np.float32(np.uint8(min(max(a[i], np.float32(0.0)), np.float32(255.0))))
        t[i] = blend_u8(t[i], mixed, m)
