"""RandomResizedCrop draws all its streams in one rng.uniforms pass: the same rectangles as
drawing each stream with rng.uniform (the reference below), bit for bit."""

import math

import numpy as np

from augpipe import rng
from augpipe.ops.resized_crop import _ATTEMPTS, RandomResizedCrop


def _reference_rects(op, sizes, indices, seed, epoch, pos):
    H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    log_r = (math.log(op.ratio[0]), math.log(op.ratio[1]))
    n = len(indices)
    cw, ch, found = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for t in range(_ATTEMPTS):
        s = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 2 * t), *op.scale)
        r = np.exp(rng.uniform(seed, epoch, indices, rng.stream_id(pos, 2 * t + 1), *log_r))
        w, h = np.round(np.sqrt(H * W * s * r)), np.round(np.sqrt(H * W * s / r))
        ok = ~found & (w > 0) & (h > 0) & (w <= W) & (h <= H)
        cw[ok], ch[ok] = w[ok], h[ok]
        found |= ok
    return cw, ch, found


def test_rects_equal_per_stream_draws():
    op = RandomResizedCrop(32, scale=(0.05, 1.0), ratio=(0.2, 5.0))  # some samples miss
    gen = np.random.default_rng(3)
    sizes = gen.integers(8, 400, (300, 2))
    indices = gen.integers(0, 10**9, 300)
    rects, _ = op.frames(sizes, indices, 11, 2, 1)
    cw, ch, found = _reference_rects(op, sizes, indices, 11, 2, 1)
    assert not found.all() and found.any()
    np.testing.assert_array_equal(rects[found, 0, 2], cw[found])
    np.testing.assert_array_equal(rects[found, 0, 3], ch[found])
    uy = rng.uniform(11, 2, indices, rng.stream_id(1, 2 * _ATTEMPTS))
    ux = rng.uniform(11, 2, indices, rng.stream_id(1, 2 * _ATTEMPTS + 1))
    H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    np.testing.assert_array_equal(rects[found, 0, 1], np.floor(uy * (H - ch + 1))[found])
    np.testing.assert_array_equal(rects[found, 0, 0], np.floor(ux * (W - cw + 1))[found])
