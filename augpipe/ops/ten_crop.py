"""TenCrop / MultiScaleTenCrop: the test-time crops (4 corners + centre, + their mirror images).

Order of the K crops (the stack the pipeline returns): scales outer (in the order given), then
top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe.errors import bad_param
from augpipe.ops.base import Op, positive_int, size_hw
from augpipe.ops.center_crop import crop_rects, fit_dims


def _ten(H, W, nh, nw, hw):
    ch, cw = hw
    tops = [0 * nh, 0 * nh, nh - ch, nh - ch, np.round((nh - ch) / 2.0)]
    lefts = [0 * nw, nw - cw, 0 * nw, nw - cw, np.round((nw - cw) / 2.0)]
    five = [crop_rects(H, W, nh, nw, t, l, hw) for t, l in zip(tops, lefts)]
    rects = np.stack(five + five, axis=1)  # (N, 10, 4)
    flips = np.zeros((len(H), 10), dtype=bool)
    flips[:, 5:] = True
    return rects, flips


@dataclass(frozen=True)
class TenCrop(Op):
    """Ten ``size`` crops of the image (after resizing its short side to ``short_side`` if given).

    >>> Compose([TenCrop(224, short_side=256)])(image).shape
    (10, 224, 224, 3)
    """

    size: int | tuple[int, int] = 224
    short_side: int | None = None
    kind: ClassVar[str] = "size"
    n_crops = 10

    def __post_init__(self):
        size_hw("TenCrop.size", self.size)
        if self.short_side is not None:
            positive_int("TenCrop.short_side", self.short_side)

    @property
    def out_hw(self) -> tuple[int, int]:
        return size_hw("size", self.size)

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
        nh, nw = fit_dims(H, W, self.short_side, self.out_hw)
        return _ten(H, W, nh, nw, self.out_hw)


@dataclass(frozen=True)
class MultiScaleTenCrop(Op):
    """ResNet's test-time crops: for each short side L in ``scales``, ten ``size`` crops.

    >>> Compose([MultiScaleTenCrop(224, scales=(256, 384))])(image).shape
    (20, 224, 224, 3)
    """

    size: int = 224
    scales: tuple[int, ...] = (224, 256, 384, 480, 640)
    kind: ClassVar[str] = "size"

    def __post_init__(self):
        positive_int("MultiScaleTenCrop.size", self.size)
        if not isinstance(self.scales, (tuple, list)) or not self.scales:
            raise bad_param("MultiScaleTenCrop.scales", "a non-empty tuple of ints", self.scales)
        for i, s in enumerate(self.scales):
            if positive_int(f"MultiScaleTenCrop.scales[{i}]", s) < self.size:
                raise bad_param(
                    f"MultiScaleTenCrop.scales[{i}]",
                    f"a short side >= size ({self.size})",
                    s,
                    "drop it or lower size",
                )

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def n_crops(self) -> int:
        return 10 * len(self.scales)

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
        parts = [_ten(H, W, *fit_dims(H, W, L, self.out_hw), self.out_hw) for L in self.scales]
        return (
            np.concatenate([p[0] for p in parts], axis=1),
            np.concatenate([p[1] for p in parts], axis=1),
        )
