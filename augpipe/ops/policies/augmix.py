"""timm's AugMix (``augmix-m5-w4-d2``), fused: the kernel renders the sample's base tile and
each chain's tile (its own geometry composed into the sampling map, its own steps) in the same
Numba call, sums the chains with Dirichlet weights and blends with the base by a Beta draw.

timm's semantics: ``width`` chains, each of ``depth`` ops (``depth`` <= 0: 1..3 per chain)
chosen uniformly with replacement from timm's AugMix list (probability 1), magnitudes
U(0, m) unless ``mstd`` is given (> 100: uniform too); ws ~ Dirichlet(alpha),
m ~ Beta(alpha, alpha); ``out = blend(image, uint8(clip(sum ws_i chain_i)), m)``.

>>> Compose([RandomResizedCrop(224), HorizontalFlip(), AugMix(severity=3, width=3)])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, number, positive_int
from augpipe.ops.policies import vocab as V
from augpipe.ops.policies.timm import TIMM_FILL, apply_ops, check_fill, magnitudes

AUGMIX_TRANSFORMS = ("AutoContrast", "ColorIncreasing", "ContrastIncreasing",
                     "BrightnessIncreasing", "SharpnessIncreasing", "Equalize", "Rotate",
                     "PosterizeIncreasing", "SolarizeIncreasing", "ShearX", "ShearY",
                     "TranslateXRel", "TranslateYRel")  # fmt: skip


@dataclass(frozen=True)
class AugMix(Op):
    """timm's AugMixAugment (see the module docstring); ``severity`` is timm's m.

    >>> AugMix(severity=5, width=4, depth=2)
    """

    severity: float = 3.0
    width: int = 3
    depth: int = -1
    alpha: float = 1.0
    mstd: float | None = None
    fill: tuple[int, int, int] = TIMM_FILL
    kind: ClassVar[str] = "policy"

    def __post_init__(self):
        number("AugMix.severity", self.severity, 0.0, 100.0)
        if positive_int("AugMix.width", self.width) > 16:
            raise bad_param("AugMix.width", "at most 16 chains", self.width)
        if not isinstance(self.depth, int) or self.depth > 8:
            raise bad_param("AugMix.depth", "an integer <= 8 (<= 0: 1..3 per chain)", self.depth)
        number("AugMix.alpha", self.alpha, 1e-3, 100.0)
        if self.mstd is not None:
            number("AugMix.mstd", self.mstd, 0.0)
        check_fill("AugMix.fill", self.fill)

    @property
    def chain_depth(self) -> int:
        return self.depth if self.depth > 0 else 3

    def draw(self, indices, seed: int, epoch: int, pos: int, out_hw):
        """(kinds, values) of shape (n, width, depth), mixing weights (n, width), blend (n,)."""
        n, C, D = len(indices), self.width, self.chain_depth
        mstd = math.inf if self.mstd is None else self.mstd
        base = rng.stream_id(pos, 0) << 20  # a stream space of its own: up to 16 x 8 x 8 draws
        kinds = np.zeros((n, C, D), np.int64)
        values = np.full((n, C, D), np.nan)
        for c in range(C):
            if self.depth > 0:
                d = np.full(n, self.depth)
            else:
                d = 1 + V.choice(seed, epoch, indices, base + 100_000 + c, 3)
            for j in range(D):
                s = lambda k, b=base + 8 * (c * 8 + j): b + k  # noqa: E731
                which = V.choice(seed, epoch, indices, s(0), len(AUGMIX_TRANSFORMS))
                lv = magnitudes(self.severity, mstd, None, seed, epoch, indices, s(1)) / 10
                neg = rng.uniform(seed, epoch, indices, s(3)) > 0.5
                k, v = apply_ops(AUGMIX_TRANSFORMS, which, lv, neg, out_hw)
                on = j < d
                kinds[on, c, j], values[on, c, j] = k[on], v[on]
        g = np.stack([V.gamma(seed, epoch, indices, base + 200_000 + 200 * c, self.alpha)
                      for c in range(C)], axis=1)  # fmt: skip
        ws = (g / g.sum(axis=1, keepdims=True)).astype(np.float32)
        a = V.gamma(seed, epoch, indices, base + 300_000, self.alpha)
        b = V.gamma(seed, epoch, indices, base + 300_500, self.alpha)
        return kinds, values, ws, (a / (a + b)).astype(np.float32)

    def policy(self, indices, seed: int, epoch: int, pos: int, out_hw) -> dict:
        kinds, values, ws, m = self.draw(indices, seed, epoch, pos, out_hw)
        n, C, D = kinds.shape
        flat_k, flat_v = kinds.reshape(n * C, D), values.reshape(n * C, D)
        cgeo = V.geometry(flat_k, flat_v, out_hw).reshape(n, C, 3, 3)
        codes, args = V.steps(flat_k, flat_v)
        return {
            "geo": np.tile(np.eye(3), (n, 1, 1)),
            "clip": np.zeros(n, dtype=bool),
            "fill": self.fill,
            "codes": np.zeros((n, 0), np.int8),
            "args": np.zeros((n, 0, 4), np.float32),
            "chains": codes.reshape(n, C, D),
            "chain_args": args.reshape(n, C, D, 4),
            "cgeo": cgeo,
            "cmix": ws,
            "cm": m,
        }
