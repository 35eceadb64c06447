"""ColorJitter: brightness, contrast and saturation factors, composed into one colour matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.ops.base import Op, interval, uniform_in
from augpipe.ops.pixel import program as P

GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class ColorJitter(Op):
    """Factors b, c, s drawn from [max(0, 1 - x), 1 + x] (or a (low, high) pair), applied in this
    fixed order, without clipping in between (one rounding at the end):

    - brightness: ``x -> b x``
    - contrast:   ``x -> c x + (1 - c) m``, m the grey mean of the image so far
    - saturation: ``x -> s x + (1 - s) grey(x)``
    - hue: a shift h drawn from [-x, x] (x <= 0.5, or a pair), applied after the rest on the
      output tile in HSV (torchvision's adjust_hue); not part of the colour matrix

    The mean m is estimated on a grid of at most 32 x 32 pixels of the source crop.

    >>> Compose([RandomResizedCrop(224), ColorJitter(0.4, 0.4, 0.4)])
    """

    brightness: float | tuple[float, float] = 0.0
    contrast: float | tuple[float, float] = 0.0
    saturation: float | tuple[float, float] = 0.0
    hue: float | tuple[float, float] = 0.0
    kind: ClassVar[str] = "color"

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            interval(f"ColorJitter.{name}", getattr(self, name), 0.0, 100.0, symmetric_about=1.0)
        interval("ColorJitter.hue", self.hue, -0.5, 0.5, symmetric_about=0.0)

    def steps(self, indices, seed: int, epoch: int, pos: int):
        """The hue step (none when hue is 0)."""
        lo, hi = interval("hue", self.hue, -0.5, 0.5, symmetric_about=0.0)
        if lo == hi == 0.0:
            return P.steps(len(indices), 0)
        h = uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, 3), lo, hi)
        return P.single(P.HUE, np.ones(len(indices), dtype=bool), h)

    def color(self, indices, seed: int, epoch: int, pos: int):
        n = len(indices)
        f = [
            uniform_in(
                rng,
                seed,
                epoch,
                indices,
                rng.stream_id(pos, slot),
                *interval(name, getattr(self, name), 0.0, None, symmetric_about=1.0),
            )
            for slot, name in enumerate(("brightness", "contrast", "saturation"))
        ]
        b, c, s = (x[:, None, None] for x in f)
        eye = np.eye(3)[None]
        grey = np.ones((3, 1)) @ GREY[None, :]  # row i of grey(x) * 1: every channel gets luma
        M = b * eye
        N = (1 - c) * grey[None] @ M  # contrast's mean term, m = grey(M mu)
        M = c * M
        S = s * eye + (1 - s) * grey[None]
        return S @ M, np.zeros((n, 3)), S @ N
