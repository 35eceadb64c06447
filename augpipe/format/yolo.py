"""YOLO txt folders as a pack source (``augpipe pack --yolo DIR OUT``).

Layout (ultralytics): ``DIR/images/**/NAME.jpg`` with ``DIR/labels/**/NAME.txt`` (or the images
and .txt files side by side in DIR). Each line ``class cx cy w h`` (normalised to [0, 1]) is a
box; a line ``class x1 y1 x2 y2 ... xn yn`` (n >= 3) is a polygon, its box the polygon's bounds.
Class names from ``DIR/classes.txt`` (one per line), else "0".."max class". An image without a
.txt file is a background image; a malformed line is dropped and listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from augpipe.errors import UserError
from augpipe.format.imageio import has_image_extension
from augpipe.targets.source import RawAnnotation, TargetSource


def read_names(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [n for n in names if n]


def find_images(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "labels")
        found += [os.path.join(dirpath, f) for f in filenames
                  if not f.startswith(".") and has_image_extension(f)]  # fmt: skip
    return sorted(found)


def _label_path(image: str, root: Path) -> Path:
    rel = Path(image).relative_to(root)
    parts = list(rel.parts)
    if parts and parts[0] == "images":
        parts[0] = "labels"
    return (root / Path(*parts)).with_suffix(".txt")


def parse_line(values: list[str]):
    """(class, box xyxy normalised, polygon or None); ValueError when malformed."""
    nums = [float(v) for v in values[1:]]
    cls = int(values[0])
    if cls < 0 or str(cls) != values[0].lstrip("+"):
        raise ValueError(f"class {values[0]!r} is not a non-negative integer")
    if len(nums) == 4:
        cx, cy, w, h = nums
        return cls, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], None
    if len(nums) >= 6 and len(nums) % 2 == 0:
        poly = np.asarray(nums).reshape(-1, 2)
        return cls, [*poly.min(axis=0), *poly.max(axis=0)], poly
    raise ValueError(f"expected 5 values or a class and >= 3 points, got {len(values)} values")


def yolo_source(folder) -> TargetSource:
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"--yolo: expected a folder with images/ and labels/, got {str(root)!r}")
    img_root = root / "images" if (root / "images").is_dir() else root
    images = find_images(img_root)
    if not images:
        raise UserError(f"--yolo {str(root)!r}: no images found under {str(img_root)!r}")
    names = read_names(root / "classes.txt")
    items, anns, problems, seen = [], [], [], 0
    for image in images:
        rel = os.path.relpath(image, root)
        boxes, labels, polys = [], [], []
        lp = _label_path(image, root)
        lines = lp.read_text(encoding="utf-8").splitlines() if lp.is_file() else []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                cls, box, poly = parse_line(line.split())
            except ValueError as exc:
                problems.append((rel, f"{lp.name} line {n}: {exc}: dropped"))
                continue
            if names is not None and cls >= len(names):
                problems.append((rel, f"{lp.name} line {n}: unknown class {cls} "
                                      f"(classes.txt has {len(names)}): dropped"))  # fmt: skip
                continue
            seen = max(seen, cls + 1)
            boxes.append(box)
            labels.append(cls)
            polys.append([poly] if poly is not None else [])
        items.append((image, -1))
        anns.append(RawAnnotation(None, np.asarray(boxes).reshape(-1, 4), np.asarray(labels),
                                  polygons=polys))  # fmt: skip
    classes = names if names is not None else [str(k) for k in range(max(seen, 1))]
    src = TargetSource(items, classes, str(root), anns, {"source": "yolo"})
    src.problems.extend(problems)
    return src
