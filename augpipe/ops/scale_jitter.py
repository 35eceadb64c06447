"""ScaleJitter (ResNet): short side resized to L ~ U{lo..hi}, then a random size x size patch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, positive_int
from augpipe.ops.center_crop import crop_rects, resized_dims


@dataclass(frozen=True)
class ScaleJitter(Op):
    """Resize the short side to an integer L drawn uniformly from ``short_side`` (inclusive), then
    take a random ``size`` x ``size`` patch.

    >>> Compose([ScaleJitter(224, short_side=(256, 480)), HorizontalFlip()])
    """

    size: int = 224
    short_side: tuple[int, int] = (256, 480)
    kind: ClassVar[str] = "size"
    n_crops = 1

    def __post_init__(self):
        s = positive_int("ScaleJitter.size", self.size)
        if not isinstance(self.short_side, (tuple, list)) or len(self.short_side) != 2:
            raise bad_param("ScaleJitter.short_side", "a (low, high) pair of ints", self.short_side)
        lo = positive_int("ScaleJitter.short_side[0]", self.short_side[0])
        hi = positive_int("ScaleJitter.short_side[1]", self.short_side[1])
        if lo > hi:
            raise bad_param("ScaleJitter.short_side", "low <= high", self.short_side)
        if lo < s:
            raise bad_param(
                "ScaleJitter.short_side",
                f"low >= size ({s})",
                self.short_side,
                f"use short_side=({s}, {max(hi, s)}) or a smaller size",
            )

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.size, self.size

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        lo, hi = self.short_side
        u = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 0))
        L = lo + np.floor(u * (hi - lo + 1))
        H, W = sizes[:, 0], sizes[:, 1]
        hw = self.out_hw
        nh, nw = _dims(H, W, L, hw)
        uy = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 1))
        ux = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 2))
        top = np.floor(uy * (nh - hw[0] + 1))
        left = np.floor(ux * (nw - hw[1] + 1))
        rects = crop_rects(H, W, nh, nw, top, left, hw)[:, None, :]
        return rects, np.zeros((len(indices), 1), dtype=bool)


def _dims(H, W, L, hw):
    nh, nw = resized_dims(H, W, L)
    return np.maximum(nh, hw[0]), np.maximum(nw, hw[1])
