"""CenterCrop: the evaluation crop, optionally after resizing the short side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe.ops.base import Op, positive_int, size_hw


def resized_dims(H: np.ndarray, W: np.ndarray, short: np.ndarray | int):
    """Integer (height, width) after resizing the short side to ``short`` (aspect kept)."""
    H = np.asarray(H, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    s = short / np.minimum(H, W)
    nh = np.where(H <= W, short, np.maximum(1, np.round(H * s)))
    nw = np.where(W < H, short, np.maximum(1, np.round(W * s)))
    return nh.astype(np.float64), nw.astype(np.float64)


def fit_dims(H: np.ndarray, W: np.ndarray, short_side: int | None, min_hw: tuple[int, int]):
    """Resized dims for a ``min_hw`` crop: the short side rule, then upscale if still too small."""
    if short_side:
        nh, nw = resized_dims(H, W, short_side)
    else:
        nh, nw = np.asarray(H, np.float64), np.asarray(W, np.float64)
    small = (nh < min_hw[0]) | (nw < min_hw[1])
    if np.any(small):  # too small for the crop: upscale so that it fits (never pads)
        need = np.maximum(min_hw[0] / nh, min_hw[1] / nw)
        nh2, nw2 = np.ceil(nh * need - 1e-9), np.ceil(nw * need - 1e-9)
        nh = np.where(small, np.maximum(nh2, min_hw[0]), nh)
        nw = np.where(small, np.maximum(nw2, min_hw[1]), nw)
    return nh, nw


def crop_rects(H, W, nh, nw, top, left, hw) -> np.ndarray:
    """Source rectangles (x0, y0, w, h) of a ``hw`` crop at (top, left) of the image resized to
    (nh, nw): per-axis scale = source / resized, exactly as cv2.resize maps pixels."""
    sy = np.asarray(H, np.float64) / nh
    sx = np.asarray(W, np.float64) / nw
    return np.stack([left * sx, top * sy, hw[1] * sx, hw[0] * sy], axis=-1)


@dataclass(frozen=True)
class CenterCrop(Op):
    """Centre ``size`` crop (int or (h, w)); with ``short_side`` the image is first resized so its
    short side is that long. An image smaller than the crop is upscaled to fit (never padded).

    >>> Compose([CenterCrop(224, short_side=256)])(image)
    """

    size: int | tuple[int, int] = 224
    short_side: int | None = None
    kind: ClassVar[str] = "size"
    n_crops = 1

    def __post_init__(self):
        size_hw("CenterCrop.size", self.size)
        if self.short_side is not None:
            positive_int("CenterCrop.short_side", self.short_side)

    @property
    def out_hw(self) -> tuple[int, int]:
        return size_hw("size", self.size)

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        H, W = sizes[:, 0], sizes[:, 1]
        hw = self.out_hw
        nh, nw = fit_dims(H, W, self.short_side, hw)
        top = np.round((nh - hw[0]) / 2.0)
        left = np.round((nw - hw[1]) / 2.0)
        rects = crop_rects(H, W, nh, nw, top, left, hw)[:, None, :]
        return rects, np.zeros((len(indices), 1), dtype=bool)
