"""Mixup/CutMix on a uint8 NHWC batch, in place: the pixel work of ``Mixup`` on the host.

Sample i mixes with its partner j = B-1-i, so the batch splits into pairs (i, j) whose two
outputs depend only on the pair's two inputs: one pass reads both images once and writes both
results over them (no copy of the batch). The blend is timm's and the previous NumPy path's to
the bit: float32 ``a * w + b * (1 - w)`` (``1 - w`` in float32, no fused multiply-add), rounded
half to even, for every sample that mixes; a CutMix box is a slice copy of the partner's
original pixels, taken before anything in the pair is overwritten.

>>> mix_inplace(images, lam, cut, boxes)  # images: (B, H, W, 3) uint8, C-contiguous
"""

from __future__ import annotations

import numpy as np
from numba import njit

# exact float32 arithmetic (fastmath would contract a*w + b into an FMA and change the rounding)
_EXACT = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)
# 1.5 * 2**23: (v + R) - R rounds v half to even (float32, 0 <= v < 2**22), as np.rint does
_ROUND = np.float32(12582912.0)


@njit(**_EXACT)
def _blend_one(x, i, j, w):
    """x[i] = round(x[i] * w + x[j] * (1 - w)); x: (B, N) uint8."""
    w1 = np.float32(1.0) - w
    a, b = x[i], x[j]
    for k in range(a.shape[0]):
        v = np.float32(a[k]) * w + np.float32(b[k]) * w1
        a[k] = np.uint8(min((v + _ROUND) - _ROUND, np.float32(255.0)))


@njit(**_EXACT)
def _blend_both(x, i, j, wi, wj):
    """Both samples of a pair mix: each output from the two original inputs, one pass."""
    wi1 = np.float32(1.0) - wi
    wj1 = np.float32(1.0) - wj
    a, b = x[i], x[j]
    for k in range(a.shape[0]):
        fa = np.float32(a[k])
        fb = np.float32(b[k])
        va = fa * wi + fb * wi1
        vb = fb * wj + fa * wj1
        a[k] = np.uint8(min((va + _ROUND) - _ROUND, np.float32(255.0)))
        b[k] = np.uint8(min((vb + _ROUND) - _ROUND, np.float32(255.0)))


@njit(**_EXACT)
def blend_pairs(x, lam, mix):
    """Blend, in place, every sample i with ``mix[i]`` with its partner B-1-i (x: (B, N))."""
    B = x.shape[0]
    for i in range((B + 1) // 2):
        j = B - 1 - i
        if mix[i] and mix[j] and i != j:
            _blend_both(x, i, j, lam[i], lam[j])
        elif mix[i]:
            _blend_one(x, i, j, lam[i])
        elif mix[j]:
            _blend_one(x, j, i, lam[j])


def mix_inplace(images: np.ndarray, lam, cut, boxes) -> np.ndarray:
    """Mixup/CutMix a C-contiguous uint8 NHWC batch in place (see the module docstring);
    returns ``images``. ``lam``, ``cut``, ``boxes``: ``Mixup.params``."""
    B = images.shape[0]
    lam = np.asarray(lam, np.float32)
    cut = np.asarray(cut, bool)
    mix = (lam < 1.0) & ~cut
    # the partners' box pixels, read before the pair's blends or pastes overwrite them
    pasted = []
    for i in np.flatnonzero(cut):
        y0, y1, x0, x1 = (int(v) for v in boxes[i])
        pasted.append((i, y0, y1, x0, x1, images[B - 1 - i, y0:y1, x0:x1].copy()))
    if mix.any():
        blend_pairs(images.reshape(B, -1), lam, mix)
    for i, y0, y1, x0, x1, patch in pasted:
        images[i, y0:y1, x0:x1] = patch
    return images
