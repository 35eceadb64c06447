"""Synthetic detection data with exactly known targets, in the formats augpipe packs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def draw(h: int, w: int, boxes, seed: int) -> np.ndarray:
    """A grey image with each box (xyxy, integer edges) filled in its own colour."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 90, np.uint8)
    for x0, y0, x1, y1 in np.asarray(boxes, int).reshape(-1, 4):
        img[y0:y1, x0:x1] = rng.integers(120, 255, 3)
    return img


def coco_dataset(root: Path, n: int = 4, size=(48, 64), keypoints: bool = True) -> Path:
    """images/ + instances.json: per image 0..2 boxes (category ids 5 and 9), a polygon, a crowd
    RLE (compressed, via pycocotools when given), keypoints on category 9."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    h, w = size
    images, anns = [], []
    aid = 1
    for i in range(n):
        boxes = [] if i == n - 1 else [[4 + i, 6, 24 + i, 30], [30, 10 + i, 50, 40]]
        cv2.imwrite(str(root / "images" / f"im{i}.png"), draw(h, w, boxes, i))
        images.append({"id": 100 + i, "file_name": f"im{i}.png", "height": h, "width": w})
        for j, (x0, y0, x1, y1) in enumerate(boxes):
            a = {"id": aid, "image_id": 100 + i, "category_id": 9 if j == 0 else 5,
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0, "area": 1.0,
                 "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}  # fmt: skip
            if j == 0 and keypoints:
                a["keypoints"] = [x0 + 2, y0 + 3, 2, x1 - 2, y0 + 3, 2, 0, 0, 0]
            anns.append(a)
            aid += 1
    cats = [{"id": 9, "name": "person", "keypoints": ["left_eye", "right_eye", "nose"],
             "skeleton": [[1, 2], [2, 3]]}, {"id": 5, "name": "car"}]  # fmt: skip
    if not keypoints:
        cats[0].pop("keypoints")
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def add_crowd_rle(json_path: Path, image_index: int, mask: np.ndarray) -> None:
    """Append an iscrowd annotation with ``mask`` as a compressed RLE (pycocotools)."""
    from pycocotools import mask as mask_utils

    data = json.loads(json_path.read_text())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    im = sorted(data["images"], key=lambda m: m["id"])[image_index]
    data["annotations"].append({"id": 999, "image_id": im["id"], "category_id": 5, "iscrowd": 1,
                                "bbox": [x, y, w, h], "segmentation": rle})  # fmt: skip
    json_path.write_text(json.dumps(data))
