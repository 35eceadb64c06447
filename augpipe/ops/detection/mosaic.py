"""Mosaic: four images on a 2S x 2S canvas around a random centre (ultralytics' layout).

Image q (the sample itself and three partners drawn from (seed, epoch, index)) is resized so
its long side is S and placed with one corner on the centre (xc, yc), drawn uniformly in
[S * center[0], S * center[1]] on each axis (ultralytics: [S/2, 3S/2]): the sample top-left
(its bottom-right corner on the centre), then top-right, bottom-left, bottom-right. The
output frame is the S x S window in the middle of the canvas, moved by the geometric ops that
follow (Affine, RandomScale, HorizontalFlip, ...: one map per sample, composed as usual), and
each tile is rendered through its own map (canvas -> its image) in one pass over its part of
the output. Canvas areas no image covers get the fill (114). Boxes are cut at their tile.

Mosaic runs only where targets are carried (a Loader on a dataset with targets, or
``augpipe.targets.batch.TargetPipeline``); it cannot follow a lens.

>>> Compose([Mosaic(640), RandomScale((0.5, 1.5)), HorizontalFlip(), HSVJitter()])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import ConfigError
from augpipe.ops.base import Op, interval, positive_int
from augpipe.ops.detection.letterbox import check_fill


@dataclass(frozen=True)
class Mosaic(Op):
    size: int = 640
    center: tuple[float, float] = (0.5, 1.5)
    fill: int = 114
    kind: ClassVar[str] = "size"
    n_crops = 1

    def __post_init__(self):
        positive_int("Mosaic.size", self.size)
        interval("Mosaic.center", self.center, 0.0, 2.0)
        check_fill("Mosaic.fill", self.fill)

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return 2 * self.size, 2 * self.size

    def bind(self, dataset) -> Mosaic:
        if not getattr(dataset, "has_targets", False):
            raise ConfigError(
                "Mosaic: combines four images, so it runs only where targets are carried (a "
                "Loader on a dataset packed with --coco/--yolo/--voc/--masks)"
            )
        return self

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        if np.any(np.asarray(sizes) != self.canvas_hw):
            raise ConfigError(
                "Mosaic: combines four images, so it runs only where targets are carried (a "
                "Loader on a dataset packed with --coco/--yolo/--voc/--masks)"
            )
        S = self.size
        n = len(indices)
        rects = np.tile(np.array([S / 2, S / 2, S, S], np.float64), (n, 1))[:, None, :]
        return rects, np.zeros((n, 1), dtype=bool)

    def layout(self, indices, n_data: int, seed: int, epoch: int, pos: int):
        """(partners (N, 4) dataset indices, the sample first; centres (N, 2) x, y on the
        canvas)."""
        indices = np.asarray(indices, np.int64)
        parts = [indices]
        for slot in range(3):
            b = rng.bits(seed, epoch, indices, rng.stream_id(pos, 100 + slot))
            parts.append((b % np.uint64(n_data)).astype(np.int64))
        lo, hi = (self.size * c for c in self.center)
        xc = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 110), lo, hi)
        yc = rng.uniform(seed, epoch, indices, rng.stream_id(pos, 111), lo, hi)
        return np.stack(parts, axis=1), np.round(np.stack([xc, yc], axis=1))


def placements(sizes: np.ndarray, centres, S: int) -> np.ndarray:
    """(N, 4, 4): per sample and tile, (x0, y0, x1, y1) of its image resized to long side S
    on the canvas; ``sizes`` (N, 4, 2) the four images' (h, w), ``centres`` (N, 2) (xc, yc)."""
    hw = np.asarray(sizes, np.float64).reshape(-1, 4, 2)
    r = S / hw.max(axis=2)
    nh = np.maximum(np.round(hw[..., 0] * r), 1)  # half to even, as Python's round
    nw = np.maximum(np.round(hw[..., 1] * r), 1)
    c = np.asarray(centres, np.float64).reshape(-1, 2)
    xc, yc = c[:, [0]], c[:, [1]]
    x0 = np.where([True, False, True, False], xc - nw, xc)  # tiles 0, 2 end at xc
    y0 = np.where([True, True, False, False], yc - nh, yc)  # tiles 0, 1 end at yc
    return np.stack([x0, y0, x0 + nw, y0 + nh], axis=2)
