"""LensDistortion: radial barrel (k > 0) / pincushion (k < 0) distortion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.ops.base import Op, interval, probability, uniform_in

K_MIN = -0.3  # below -1/3 the map folds over at the corners (d/dr r(1 + k r^2) < 0)


@dataclass(frozen=True)
class LensDistortion(Op):
    """Output pixel at normalised radius r (r = 1 at the corners) samples the input at radius
    r (1 + k r^2), k uniform in ``k`` (x means [-x, x]); k > 0 bends straight lines outwards
    (barrel), k < 0 inwards (pincushion); k = 0 is the identity. At most one per pipeline.

    >>> Compose([RandomResizedCrop(224), LensDistortion(k=(-0.2, 0.2))])
    """

    k: float | tuple[float, float] = (-0.2, 0.2)
    p: float = 1.0
    kind: ClassVar[str] = "lens"

    def __post_init__(self):
        interval("LensDistortion.k", self.k, K_MIN, 1.0, symmetric_about=0.0)
        probability("LensDistortion.p", self.p)

    def coefficients(self, indices, seed: int, epoch: int, pos: int) -> np.ndarray:
        lo, hi = interval("k", self.k, symmetric_about=0.0)
        k = uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, 0), lo, hi)
        if self.p < 1:
            k = np.where(rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 1), self.p), k, 0.0)
        return k
