"""Lookup-table ops: each draws, per sample, whether it applies (``p``) and writes one program
step; the kernel builds the 256-entry table per channel (equalize and autocontrast from the
tile's own histogram) and applies it to the output tile.

>>> Compose([RandomResizedCrop(224), Solarize(128, p=0.2), Equalize(p=0.5)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, number, probability
from augpipe.ops.pixel import program as P


def drawn(p: float, indices, seed: int, epoch: int, pos: int, slot: int = 0) -> np.ndarray:
    """Whether each sample applies an op of probability p (no draws for p = 0 or 1)."""
    if p >= 1.0:
        return np.ones(len(indices), dtype=bool)
    if p <= 0.0:
        return np.zeros(len(indices), dtype=bool)
    return rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, slot), p)


class _LutOp:
    """What the LUT ops share (a mixin, not an Op: the op registry lists Op subclasses)."""

    kind: ClassVar[str] = "pixel"
    code: ClassVar[int] = P.NOP
    p: float

    def __post_init__(self):
        probability(f"{type(self).__name__}.p", self.p)

    def _args(self) -> tuple:
        return ()

    def steps(self, indices, seed: int, epoch: int, pos: int):
        return P.single(self.code, drawn(self.p, indices, seed, epoch, pos), *self._args())


@dataclass(frozen=True)
class Solarize(_LutOp, Op):
    """Invert every channel value >= ``threshold`` (PIL's ImageOps.solarize; torchvision's
    RandomSolarize with p). ``threshold`` 0..256 (256: no change).

    >>> Solarize(128, p=0.5)
    """

    threshold: float = 128.0
    p: float = 1.0
    code: ClassVar[int] = P.SOLARIZE

    def __post_init__(self):
        number("Solarize.threshold", self.threshold, 0.0, 256.0)
        probability("Solarize.p", self.p)

    def _args(self):
        return (self.threshold,)


@dataclass(frozen=True)
class SolarizeAdd(_LutOp, Op):
    """Add ``add`` (clamped at 255) to every value below ``threshold`` (timm's solarize_add).

    >>> SolarizeAdd(add=30, threshold=128)
    """

    add: int = 30
    threshold: float = 128.0
    p: float = 1.0
    code: ClassVar[int] = P.SOLARIZE_ADD

    def __post_init__(self):
        number("SolarizeAdd.add", self.add, 0.0, 255.0)
        number("SolarizeAdd.threshold", self.threshold, 0.0, 256.0)
        probability("SolarizeAdd.p", self.p)

    def _args(self):
        return (int(self.add), self.threshold)


@dataclass(frozen=True)
class Posterize(_LutOp, Op):
    """Keep the ``bits`` most significant bits of each channel (PIL's ImageOps.posterize;
    torchvision's RandomPosterize with p). ``bits`` 0..8.

    >>> Posterize(4, p=0.5)
    """

    bits: int = 4
    p: float = 1.0
    code: ClassVar[int] = P.POSTERIZE

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
            raise bad_param("Posterize.bits", "an integer 0..8", self.bits)
        number("Posterize.bits", self.bits, 0, 8)
        probability("Posterize.p", self.p)

    def _args(self):
        return (int(self.bits),)


@dataclass(frozen=True)
class Invert(_LutOp, Op):
    """255 - x on every channel (PIL's ImageOps.invert; torchvision's RandomInvert).

    >>> Invert(p=0.5)
    """

    p: float = 1.0
    code: ClassVar[int] = P.INVERT


@dataclass(frozen=True)
class Equalize(_LutOp, Op):
    """Histogram equalisation per channel, PIL's rule (torchvision's equalize is the same):
    computed from the sample's own output tile, only for the samples that draw it.

    >>> Equalize(p=0.5)
    """

    p: float = 1.0
    code: ClassVar[int] = P.EQUALIZE


@dataclass(frozen=True)
class AutoContrast(_LutOp, Op):
    """Stretch each channel's [min, max] to [0, 255] (PIL's ImageOps.autocontrast, cutoff 0).

    >>> AutoContrast(p=0.5)
    """

    p: float = 1.0
    code: ClassVar[int] = P.AUTOCONTRAST
