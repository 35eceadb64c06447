"""RandomIoUCrop: SSD's crop that keeps objects (MinIoURandomCrop / torchvision's RandomIoUCrop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import ConfigError, bad_param
from augpipe.ops.base import Op, interval, positive_int, size_hw

_ROUNDS = 10  # option draws before falling back to the whole image (torchvision: unbounded)


def _iou(boxes: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """(T, M): IoU of each crop (T, 4) with each box (M, 4), all xyxy."""
    x0 = np.maximum(crop[:, None, 0], boxes[None, :, 0])
    y0 = np.maximum(crop[:, None, 1], boxes[None, :, 1])
    x1 = np.minimum(crop[:, None, 2], boxes[None, :, 2])
    y1 = np.minimum(crop[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_c = (crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area_c[:, None] + area_b[None] - inter, 1e-12)


@dataclass(frozen=True)
class RandomIoUCrop(Op):
    """Pick a minimum IoU from ``options`` (1.0: keep the whole image), then up to ``trials``
    crops with sides ``min_scale``..``max_scale`` of the image and aspect (w/h)
    ``min_aspect``..``max_aspect``; the first crop that contains some box centre and overlaps
    one such box by at least that IoU is resized to ``size``. After ``_ROUNDS`` failed option
    draws (or for an image without boxes) the whole image is used. It needs the boxes, so it
    runs only where targets are carried; boxes whose area leaves the crop are then handled by
    the ``TargetOptions`` filters (torchvision drops boxes whose centre leaves it).

    >>> Compose([RandomIoUCrop(300), HorizontalFlip()])
    """

    size: int | tuple[int, int] = 300
    min_scale: float = 0.3
    max_scale: float = 1.0
    min_aspect: float = 0.5
    max_aspect: float = 2.0
    options: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    trials: int = 40
    kind: ClassVar[str] = "size"
    n_crops = 1
    needs_boxes: ClassVar[bool] = True

    def __post_init__(self):
        size_hw("RandomIoUCrop.size", self.size)
        interval("RandomIoUCrop.scale", (self.min_scale, self.max_scale), 1e-3, 1.0)
        interval("RandomIoUCrop.aspect", (self.min_aspect, self.max_aspect), 1e-3, 1e3)
        positive_int("RandomIoUCrop.trials", self.trials)
        opts = self.options
        if (
            not isinstance(opts, (tuple, list))
            or not opts
            or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1
                for v in opts
            )
        ):
            raise bad_param("RandomIoUCrop.options", "a non-empty list of IoUs in [0, 1]", opts)

    @property
    def out_hw(self) -> tuple[int, int]:
        return size_hw("size", self.size)

    def bind(self, dataset) -> RandomIoUCrop:
        if not getattr(dataset, "has_targets", False):
            raise ConfigError("RandomIoUCrop: chooses its crop from the boxes, so it runs only "
                              "on a dataset packed with targets (--coco/--yolo/--voc)")  # fmt: skip
        return self

    def frames(self, sizes: np.ndarray, indices: np.ndarray, seed: int, epoch: int, pos: int):
        from augpipe.targets.context import boxes_for

        n = len(indices)
        rects = np.zeros((n, 1, 4))
        for j, i in enumerate(np.asarray(indices, np.int64)):
            H, W = (float(v) for v in sizes[j])
            rects[j, 0] = (0.0, 0.0, W, H)
            boxes = boxes_for(i)
            if boxes is None:
                raise ConfigError(
                    "RandomIoUCrop: no boxes for this sample: it runs only where targets are "
                    "carried (a Loader on a dataset with targets)"
                )
            if len(boxes) == 0:
                continue
            s = rng.Stream(seed, epoch, int(i), rng.stream_id(pos, 0))
            picks = s.integers(0, len(self.options), size=_ROUNDS)
            u = s.random(size=(_ROUNDS, self.trials, 4))
            b = np.asarray(boxes, np.float64)
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            for r in range(_ROUNDS):
                need = float(self.options[picks[r]])
                if need >= 1.0:
                    break
                sc = self.min_scale + (self.max_scale - self.min_scale) * u[r, :, :2]
                w, h = W * sc[:, 0], H * sc[:, 1]
                left, top = (W - w) * u[r, :, 2], (H - h) * u[r, :, 3]
                crop = np.stack([left, top, left + w, top + h], axis=1)
                ok = (w / h >= self.min_aspect) & (w / h <= self.max_aspect) & (w >= 1) & (h >= 1)
                inside = ((crop[:, None, 0] < cx) & (cx < crop[:, None, 2])
                          & (crop[:, None, 1] < cy) & (cy < crop[:, None, 3]))  # fmt: skip
                iou = np.where(inside, _iou(b, crop), -1.0)
                ok &= inside.any(axis=1) & (iou.max(axis=1) >= need)
                if ok.any():
                    t = int(np.argmax(ok))
                    rects[j, 0] = (left[t], top[t], w[t], h[t])
                    break
        return rects, np.zeros((n, 1), dtype=bool)
