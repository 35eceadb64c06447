"""Drawing targets on images (``augpipe preview``): boxes with class names, keypoints with the
skeleton, semantic masks and instance maps as translucent colour."""

from __future__ import annotations

import numpy as np

_PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
                     [250, 190, 212], [0, 128, 128], [170, 110, 40]], np.uint8)  # fmt: skip


def colour(k: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in _PALETTE[int(k) % len(_PALETTE)])


def _overlay(img: np.ndarray, index_map: np.ndarray, skip: set) -> None:
    ids = np.unique(index_map)
    for v in ids:
        if int(v) in skip:
            continue
        sel = index_map == v
        img[sel] = (0.55 * img[sel] + 0.45 * _PALETTE[int(v) % len(_PALETTE)]).astype(np.uint8)


def draw(img: np.ndarray, t: dict, b: int, classes: list[str], skeleton=None) -> np.ndarray:
    """A copy of ``img`` (H, W, 3 RGB) with image ``b`` of the batch targets ``t`` drawn on."""
    import cv2

    out = np.ascontiguousarray(img).copy()
    if "masks" in t:
        _overlay(out, np.asarray(t["masks"][b]), {0, 255})
    if "instance_map" in t:
        _overlay(out, np.asarray(t["instance_map"][b]), {0})
    lo, hi = int(t["offsets"][b]), int(t["offsets"][b + 1])
    for j in range(lo, hi):
        x0, y0, x1, y1 = (float(v) for v in t["boxes"][j])
        c = colour(int(t["labels"][j]))
        # box edges are pixel edges: the rectangle is drawn on the pixels just inside them
        cv2.rectangle(out, (int(round(x0)), int(round(y0))),
                      (max(int(round(x1)) - 1, 0), max(int(round(y1)) - 1, 0)), c, 1)  # fmt: skip
        name = classes[int(t["labels"][j])] if int(t["labels"][j]) < len(classes) else "?"
        cv2.putText(out, name, (int(x0) + 1, max(int(y0) + 9, 9)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.3, c, 1, cv2.LINE_AA)  # fmt: skip
        if "keypoints" in t:
            kp = np.asarray(t["keypoints"][j])
            for a, bb in skeleton or []:
                if kp[a, 2] > 0 and kp[bb, 2] > 0:
                    cv2.line(out, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[bb, 0]), int(kp[bb, 1])),
                             c, 1, cv2.LINE_AA)  # fmt: skip
            for x, y, v in kp:
                if v > 0:
                    cv2.circle(out, (int(x), int(y)), 2, (255, 255, 255), -1)
    return out


def draw_grid_tiles(dataset, pipe, indices, seed: int, epoch: int):
    """(augmented images with their targets drawn, per-image target counts) for preview."""
    from augpipe.targets.batch import TargetPipeline

    tp = TargetPipeline(pipe, dataset)
    images, t = tp.sample(dataset, np.asarray(indices, np.int64), seed, epoch)
    skeleton = dataset.target_info.get("skeleton")
    drawn = np.stack([draw(images[b], t, b, dataset.classes, skeleton)
                      for b in range(len(images))])  # fmt: skip
    return drawn, np.diff(t["offsets"])
