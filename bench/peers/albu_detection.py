"""Albumentations 2.0 on the detection pipeline of bench/detection_speed.py (run in peers/tv).

    python albu_detection.py SPEC.json REPEATS

SPEC.json: {"size": 640, "items": [{"path", "boxes" [[x0, y0, x1, y1], ...], "labels",
"mask" (a PNG path or null)}, ...]}. Each pass decodes every JPEG (cv2.imread) and runs
LongestMaxSize + PadIfNeeded + Affine (scale 0.5-1.5, rotate 10, translate 10%, shear 5) +
HorizontalFlip + HueSaturationValue with min_visibility 0.1, on one core; with masks also the
mask; then "mosaic": Mosaic (2 x 2, cells and output of the size, partners the next three
items, each decoded too) + the same Affine + Perspective + HorizontalFlip +
HueSaturationValue, boxes only. Prints one JSON line: rates (images/s) per pass for "boxes",
"mask" and "mosaic", and versions.
"""

import json
import sys
import time

import albumentations as A
import cv2
import numpy as np

cv2.setNumThreads(1)


def pipeline(size):
    return A.Compose(
        [
            A.LongestMaxSize(max_size=size),
            A.PadIfNeeded(
                min_height=size,
                min_width=size,
                border_mode=cv2.BORDER_CONSTANT,
                fill=114,
                fill_mask=255,
            ),
            A.Affine(
                scale=(0.5, 1.5),
                rotate=(-10, 10),
                translate_percent=(-0.1, 0.1),
                shear=(-5, 5),
                p=1.0,
                fill=114,
                fill_mask=255,
            ),
            A.HorizontalFlip(p=0.5),
            A.HueSaturationValue(p=1.0),
        ],
        bbox_params=A.BboxParams(format="pascal_voc", min_visibility=0.1, label_fields=["labels"]),
        seed=0,
    )


def mosaic_pipeline(size):
    return A.Compose(
        [
            A.Mosaic(
                grid_yx=(2, 2),
                target_size=(size, size),
                cell_shape=(size, size),
                fit_mode="contain",
                fill=114,
                p=1.0,
            ),  # fmt: skip
            A.Affine(
                scale=(0.5, 1.5),
                rotate=(-10, 10),
                translate_percent=(-0.1, 0.1),
                shear=(-5, 5),
                p=1.0,
                fill=114,
            ),  # fmt: skip
            A.Perspective(scale=(0.02, 0.05), fill=114, p=1.0),
            A.HorizontalFlip(p=0.5),
            A.HueSaturationValue(p=1.0),
        ],
        bbox_params=A.BboxParams(format="pascal_voc", min_visibility=0.1, label_fields=["labels"]),
        seed=0,
    )


def _read(it):
    img = cv2.cvtColor(cv2.imread(it["path"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return img, np.asarray(it["boxes"], np.float32).reshape(-1, 4)


def mosaic_pass(pipe, items):
    t0 = time.perf_counter()
    kept = 0
    for i, it in enumerate(items):
        img, boxes = _read(it)
        meta = []
        for j in range(1, 4):
            other = items[(i + j) % len(items)]
            im, bx = _read(other)
            meta.append({"image": im, "bboxes": bx, "labels": other["labels"]})
        out = pipe(image=img, bboxes=boxes, labels=it["labels"], mosaic_metadata=meta)
        kept += len(out["bboxes"])
    return len(items) / (time.perf_counter() - t0), kept


def one_pass(pipe, items, with_mask):
    t0 = time.perf_counter()
    kept = 0
    for it in items:
        img = cv2.cvtColor(cv2.imread(it["path"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        kw = {}
        if with_mask:
            kw["mask"] = cv2.imread(it["mask"], cv2.IMREAD_UNCHANGED)
        out = pipe(
            image=img,
            bboxes=np.asarray(it["boxes"], np.float32).reshape(-1, 4),
            labels=it["labels"],
            **kw,
        )
        kept += len(out["bboxes"])
    return len(items) / (time.perf_counter() - t0), kept


def main():
    spec = json.load(open(sys.argv[1]))
    repeats = int(sys.argv[2])
    pipe = pipeline(spec["size"])
    items = spec["items"]
    res = {"albumentations": A.__version__, "opencv": cv2.__version__}
    for key, with_mask in (("boxes", False), ("mask", True)):
        if with_mask and not all(it.get("mask") for it in items):
            continue
        one_pass(pipe, items[: max(1, len(items) // 5)], with_mask)  # warm-up
        runs = [one_pass(pipe, items, with_mask) for _ in range(repeats)]
        res[key] = [r for r, _ in runs]
        res[key + "_kept_boxes"] = runs[-1][1]
    mosaic = mosaic_pipeline(spec["size"])
    mosaic_pass(mosaic, items[: max(4, len(items) // 5)])  # warm-up
    runs = [mosaic_pass(mosaic, items) for _ in range(repeats)]
    res["mosaic"] = [r for r, _ in runs]
    res["mosaic_kept_boxes"] = runs[-1][1]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
