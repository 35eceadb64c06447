"""Letterbox: the long side to ``size``, the rest padded (YOLO's input layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe.errors import bad_param
from augpipe.ops.base import Op, size_hw


def check_fill(name: str, value) -> None:
    """A pad colour: an integer grey level 0..255."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise bad_param(name, "an integer in 0..255", value, "114 is YOLO's")


@dataclass(frozen=True)
class Letterbox(Op):
    """Resize so the image fits ``size`` (int or (height, width)) with its aspect kept, centre
    it and pad the rest with ``fill`` (grey 114 as ultralytics; ``Compose`` takes its fill from
    here unless given one). ``scaleup=False`` only shrinks. The padding split is ultralytics':
    ``top = round(dh / 2 - 0.1)``, ``left = round(dw / 2 - 0.1)``.

    >>> Compose([Letterbox(640), HorizontalFlip()])
    """

    size: int | tuple[int, int] = 640
    fill: int = 114
    scaleup: bool = True
    kind: ClassVar[str] = "size"
    n_crops = 1

    def __post_init__(self):
        size_hw("Letterbox.size", self.size)
        check_fill("Letterbox.fill", self.fill)

    @property
    def out_hw(self) -> tuple[int, int]:
        return size_hw("size", self.size)

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        H = sizes[:, 0].astype(np.float64)
        W = sizes[:, 1].astype(np.float64)
        Ho, Wo = self.out_hw
        r = np.minimum(Ho / H, Wo / W)
        if not self.scaleup:
            r = np.minimum(r, 1.0)
        nh = np.maximum(np.round(H * r), 1)
        nw = np.maximum(np.round(W * r), 1)
        top = np.round((Ho - nh) / 2 - 0.1)
        left = np.round((Wo - nw) / 2 - 0.1)
        sx, sy = W / nw, H / nh  # source pixels per output pixel, per axis
        rects = np.stack([-left * sx, -top * sy, Wo * sx, Ho * sy], axis=1)[:, None, :]
        return rects, np.zeros((len(indices), 1), dtype=bool)
