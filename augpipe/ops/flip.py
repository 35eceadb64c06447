"""HorizontalFlip: mirror left-right with probability p (exact: no resampling when alone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.ops.base import Op, probability


@dataclass(frozen=True)
class HorizontalFlip(Op):
    """Mirror the image left-right with probability ``p``.

    >>> Compose([RandomResizedCrop(224), HorizontalFlip(p=0.5)])
    """

    p: float = 0.5
    kind: ClassVar[str] = "geometry"

    def __post_init__(self):
        probability("HorizontalFlip.p", self.p)

    def matrices(self, indices, seed: int, epoch: int, pos: int, out_hw) -> np.ndarray:
        n = len(indices)
        m = np.tile(np.eye(3), (n, 1, 1))
        if self.p > 0:
            flip = rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 0), self.p)
            m[flip, 0, 0] = -1.0  # centred coordinates: x -> -x
        return m
