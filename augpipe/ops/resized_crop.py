"""RandomResizedCrop: Inception-style crop of random area and aspect ratio, resized to size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, interval, size_hw

_ATTEMPTS = 10  # like torchvision: try 10 (area, ratio) draws, then fall back to a centre crop


@dataclass(frozen=True)
class RandomResizedCrop(Op):
    """Crop a random area fraction in ``scale`` with aspect ratio (w/h) in ``ratio`` (log-uniform),
    resize it to ``size`` (int or (height, width)).

    >>> Compose([RandomResizedCrop(224), HorizontalFlip()])(image, index=0, seed=0)
    """

    size: int | tuple[int, int] = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    kind: ClassVar[str] = "size"

    def __post_init__(self):
        size_hw("RandomResizedCrop.size", self.size)
        interval("RandomResizedCrop.scale", self.scale, 1e-6, 1.0)
        lo, hi = interval("RandomResizedCrop.ratio", self.ratio, 1e-3, 1e3)
        if lo <= 0:
            raise bad_param("RandomResizedCrop.ratio", "positive ratios", self.ratio)

    @property
    def out_hw(self) -> tuple[int, int]:
        return size_hw("size", self.size)

    n_crops = 1

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        H = sizes[:, 0].astype(np.float64)
        W = sizes[:, 1].astype(np.float64)
        area = H * W
        s_lo, s_hi = self.scale
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        n = len(indices)
        cw = np.zeros(n)
        ch = np.zeros(n)
        found = np.zeros(n, dtype=bool)
        # every stream's uniforms in one vectorised pass (rng.uniforms: rng.uniform's values,
        # then low + (high - low) * u as rng.uniform computes it): ~0.9 us/sample less than up
        # to 22 rng.uniform calls (batches of 64); unused draws (all found early) cost ~nothing
        streams = [rng.stream_id(pos, k) for k in range(2 * _ATTEMPTS + 2)]
        u = rng.uniforms(seed, epoch, indices, streams)
        for t in range(_ATTEMPTS):
            target = area * (s_lo + (s_hi - s_lo) * u[2 * t])
            r = np.exp(log_r[0] + (log_r[1] - log_r[0]) * u[2 * t + 1])
            w = np.round(np.sqrt(target * r))
            h = np.round(np.sqrt(target / r))
            ok = ~found & (w > 0) & (h > 0) & (w <= W) & (h <= H)
            cw[ok] = w[ok]
            ch[ok] = h[ok]
            found |= ok
            if found.all():  # later attempts could not change any sample: skip drawing them
                break
        # fallback: the largest centre crop whose ratio is clamped into the range
        miss = ~found
        in_r = W / H
        w_fb = np.where(
            in_r < self.ratio[0], W, np.where(in_r > self.ratio[1], np.round(H * self.ratio[1]), W)
        )
        h_fb = np.where(in_r < self.ratio[0], np.round(W / self.ratio[0]), H)
        cw[miss] = w_fb[miss]
        ch[miss] = h_fb[miss]
        uy, ux = u[2 * _ATTEMPTS], u[2 * _ATTEMPTS + 1]
        y0 = np.floor(uy * (H - ch + 1))
        x0 = np.floor(ux * (W - cw + 1))
        y0[miss] = np.floor((H - ch)[miss] / 2)
        x0[miss] = np.floor((W - cw)[miss] / 2)
        rects = np.stack([x0, y0, cw, ch], axis=1)[:, None, :]
        return rects, np.zeros((n, 1), dtype=bool)
