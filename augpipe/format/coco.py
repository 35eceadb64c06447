"""COCO instances / keypoints JSON as a pack source (``augpipe pack --coco FILE --root DIR``).

Categories are sorted by id and renumbered 0..C-1 (the mapping is kept in the manifest's
``targets.categories``); images are packed in ascending id order. Per annotation: ``bbox``
(absolute x, y, w, h -> xyxy), ``iscrowd`` (kept as a flag: ignore regions), ``segmentation``
as polygons or RLE (uncompressed counts or COCO's compressed string), ``keypoints``
``[x, y, v] * K`` with the category's ``keypoints`` names, ``skeleton`` (1-based in COCO, stored
0-based) and ``flip_idx`` (the category's own, else pairing ``left_*`` with ``right_*``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from augpipe.errors import UserError
from augpipe.targets.core import rle_from_string
from augpipe.targets.source import RawAnnotation, TargetSource


def flip_pairs(names: list[str]) -> list[int]:
    """flip_idx from keypoint names: ``left_x`` <-> ``right_x`` (also ``l_``/``r_``)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for i, n in enumerate(names):
        for a, b in (("left", "right"), ("right", "left"), ("l_", "r_"), ("r_", "l_")):
            if n.startswith(a) and n.replace(a, b, 1) in index:
                out.append(index[n.replace(a, b, 1)])
                break
        else:
            out.append(i)
    return out


def _bad(path, what: str) -> UserError:
    return UserError(f"--coco {str(path)!r}: {what}")


def coco_source(json_path, root) -> TargetSource:
    path = Path(json_path)
    if not path.is_file():
        raise UserError(f"--coco: expected a COCO JSON file, got {str(path)!r} (no such file)")
    root = Path(root) if root else path.parent
    if not root.is_dir():
        raise UserError(f"--root: expected the COCO images folder, got {str(root)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise _bad(path, "expected an object with 'images', 'annotations' and 'categories'")
    cats = sorted(data.get("categories") or [], key=lambda c: c["id"])
    if not cats:
        raise _bad(path, "no 'categories'; a COCO instances file lists them")
    cat_index = {c["id"]: k for k, c in enumerate(cats)}
    kp_cat = next((c for c in cats if c.get("keypoints")), None)
    K = max((len(c.get("keypoints") or []) for c in cats), default=0)
    images = sorted(data["images"], key=lambda im: im["id"])
    by_image = defaultdict(list)
    for a in sorted(data.get("annotations") or [], key=lambda a: a.get("id", 0)):
        by_image[a.get("image_id")].append(a)
    items, anns, problems = [], [], []
    for im in images:
        file = str(root / im["file_name"])
        rel = os.path.relpath(file, root)
        H, W = int(im["height"]), int(im["width"])
        boxes, labels, crowd, kps, polys, rles = [], [], [], [], [], []
        for a in by_image.get(im["id"], []):
            if a.get("category_id") not in cat_index:
                problems.append((rel, f"annotation {a.get('id')}: unknown category_id "
                                      f"{a.get('category_id')!r}: dropped"))  # fmt: skip
                continue
            rings, rle = _segmentation(a.get("segmentation"), H, W)
            if "bbox" in a and len(a["bbox"]) == 4:
                x, y, w, h = (float(v) for v in a["bbox"])
                box = [x, y, x + w, y + h]
            elif rings:
                v = np.concatenate(rings)
                box = [*v.min(axis=0), *v.max(axis=0)]
            else:
                problems.append((rel, f"annotation {a.get('id')}: no bbox and no polygon: dropped"))
                continue
            boxes.append(box)
            labels.append(cat_index[a["category_id"]])
            crowd.append(bool(a.get("iscrowd", 0)))
            polys.append(rings)
            rles.append(rle)
            k = np.zeros((K, 3))
            if K and a.get("keypoints"):
                pts = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
                k[: len(pts)] = pts[:K]
            kps.append(k)
        items.append((file, -1))
        anns.append(RawAnnotation(
            size=(H, W), boxes=np.asarray(boxes).reshape(-1, 4), labels=np.asarray(labels),
            iscrowd=np.asarray(crowd, bool),
            keypoints=np.asarray(kps).reshape(len(boxes), K, 3) if K else None,
            polygons=polys, rle=rles))  # fmt: skip
    if not items:
        raise _bad(path, "no images listed")
    info = {
        "source": "coco",
        "categories": [{"index": k, "id": c["id"], "name": c["name"]} for k, c in enumerate(cats)],
    }
    if kp_cat is not None:
        names = list(kp_cat["keypoints"])
        info["keypoint_names"] = names
        info["skeleton"] = [[int(a) - 1, int(b) - 1] for a, b in kp_cat.get("skeleton") or []]
        info["flip_idx"] = [int(v) for v in kp_cat.get("flip_idx") or flip_pairs(names)]
    src = TargetSource(items=items, classes=[c["name"] for c in cats], root=str(root),
                       annotations=anns, info=info, n_keypoints=K)  # fmt: skip
    src.problems.extend(problems)
    return src


def _segmentation(seg, H: int, W: int):
    """(polygon rings, RLE counts or None) of a COCO ``segmentation`` field."""
    if isinstance(seg, list):
        rings = [np.asarray(p, np.float64).reshape(-1, 2) for p in seg if len(p) >= 2]
        return rings, None
    if isinstance(seg, dict) and "counts" in seg:
        h, w = seg.get("size", [H, W])
        counts = seg["counts"]
        counts = rle_from_string(counts) if isinstance(counts, (str, bytes)) else np.asarray(counts)
        if (int(h), int(w)) != (H, W) or int(np.sum(counts)) != H * W:
            return [], None  # an RLE for another size: keep the box only
        return [], counts.astype(np.uint32)
    return [], None
