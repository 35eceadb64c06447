"""RandomScale: zoom about the output centre by a factor drawn per sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, interval, probability, uniform_in


@dataclass(frozen=True)
class RandomScale(Op):
    """With probability ``p``, scale the content by s ~ U(``scale``) about the centre (s > 1
    zooms in; areas that come from outside the source get ``Compose``'s fill).

    >>> Compose([Letterbox(640), RandomScale((0.5, 1.5)), HorizontalFlip()])
    """

    scale: tuple[float, float] = (0.5, 1.5)
    p: float = 1.0
    kind: ClassVar[str] = "geometry"

    def __post_init__(self):
        lo, _ = interval("RandomScale.scale", self.scale, 0.0, 100.0)
        if lo <= 0:
            raise bad_param("RandomScale.scale", "factors > 0", self.scale, "e.g. (0.5, 1.5)")
        probability("RandomScale.p", self.p)

    def matrices(self, indices, seed: int, epoch: int, pos: int, out_hw) -> np.ndarray:
        s = uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, 0), *self.scale)
        if self.p < 1:
            on = rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 1), self.p)
            s = np.where(on, s, 1.0)
        m = np.tile(np.eye(3), (len(indices), 1, 1))
        m[:, 0, 0] = 1.0 / s  # the inverse map: output -> input
        m[:, 1, 1] = 1.0 / s
        return m
