"""Enhance and filter ops on the output tile: Sharpness, GaussianBlur, Grayscale.

>>> Compose([RandomResizedCrop(224), Sharpness(2.0, p=0.5), GaussianBlur(5), Grayscale(p=0.1)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, interval, number, positive_int, probability, uniform_in
from augpipe.ops.pixel import program as P
from augpipe.ops.pixel.lut import drawn


@dataclass(frozen=True)
class Sharpness(Op):
    """Blend with the 3x3-smoothed image (kernel [[1,1,1],[1,5,1],[1,1,1]] / 13, one-pixel
    border ring unfiltered): ``factor`` 0 blurs, 1 keeps, 2 sharpens (PIL's
    ImageEnhance.Sharpness; torchvision's RandomAdjustSharpness). A (low, high) pair draws the
    factor per sample.

    >>> Sharpness(2.0, p=0.5)
    """

    factor: float | tuple[float, float] = 2.0
    p: float = 1.0
    kind: ClassVar[str] = "pixel"

    def __post_init__(self):
        self._range()
        probability("Sharpness.p", self.p)

    def _range(self) -> tuple[float, float]:
        if isinstance(self.factor, (tuple, list)):
            return interval("Sharpness.factor", self.factor, 0.0, 100.0)
        f = number("Sharpness.factor", self.factor, 0.0, 100.0)
        return f, f

    def steps(self, indices, seed: int, epoch: int, pos: int):
        lo, hi = self._range()
        f = uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, 1), lo, hi)
        return P.single(P.SHARPNESS, drawn(self.p, indices, seed, epoch, pos), f)


@dataclass(frozen=True)
class GaussianBlur(Op):
    """Gaussian blur with an odd ``kernel_size`` and sigma drawn uniformly from ``sigma`` (a
    number or a (low, high) pair), reflected border: torchvision's GaussianBlur (with p).

    >>> GaussianBlur(5, sigma=(0.1, 2.0), p=0.5)
    """

    kernel_size: int = 5
    sigma: float | tuple[float, float] = (0.1, 2.0)
    p: float = 1.0
    kind: ClassVar[str] = "pixel"

    def __post_init__(self):
        k = positive_int("GaussianBlur.kernel_size", self.kernel_size)
        if k % 2 == 0:
            raise bad_param("GaussianBlur.kernel_size", "an odd integer", k, f"use {k + 1}")
        self._sigma()
        probability("GaussianBlur.p", self.p)

    def _sigma(self):
        if isinstance(self.sigma, (tuple, list)):
            lo, hi = interval("GaussianBlur.sigma", self.sigma, 0.0, 100.0)
        else:
            lo = hi = number("GaussianBlur.sigma", self.sigma, 0.0, 100.0)
        if lo <= 0:
            raise bad_param("GaussianBlur.sigma", "sigma > 0", self.sigma, "e.g. (0.1, 2.0)")
        return lo, hi

    def steps(self, indices, seed: int, epoch: int, pos: int):
        s = uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, 1), *self._sigma())
        on = drawn(self.p, indices, seed, epoch, pos)
        return P.single(P.BLUR, on, s, self.kernel_size // 2)


@dataclass(frozen=True)
class Grayscale(Op):
    """Replace RGB by its luma L = (299 R + 587 G + 114 B) / 1000 (PIL's convert("L"), as
    three channels), with probability ``p``: RandomGrayscale is ``Grayscale(p=0.1)``.

    >>> Grayscale(p=0.1)
    """

    p: float = 1.0
    kind: ClassVar[str] = "pixel"

    def __post_init__(self):
        probability("Grayscale.p", self.p)

    def steps(self, indices, seed: int, epoch: int, pos: int):
        return P.single(P.GRAYSCALE, drawn(self.p, indices, seed, epoch, pos))
