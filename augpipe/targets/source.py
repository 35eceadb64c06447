"""What the COCO / YOLO / VOC / mask-folder readers hand to ``pack``: images plus annotations,
and the bad-annotation rule applied when each record is written.

Each reader (``augpipe.format.coco`` ...) builds a ``TargetSource``: the images in packing order
(label -1: a detection record has no image label) and one ``RawAnnotation`` per image, in the
annotation file's own pixel coordinates. ``pack`` calls ``block(pos, h, w)`` once the image is
decoded at its stored size (h, w); it scales the annotations to that size, applies the rule
below and returns the record's targets block. The rule (docs/targets.md, "Bad annotations"):

- unknown category: the annotation is dropped (found by the reader);
- a box partly outside the image is clipped to it; a box with no area left is dropped;
- a polygon ring with fewer than 3 vertices or no area is dropped (the instance keeps its box);
- a keypoint with v > 0 outside the image gets v = 0;
- an image without annotations is kept as a background image (empty targets);
- an image whose decoded size disagrees with the size the annotations were made for is skipped.

Every case is one line of ``OUT/annotations.tsv`` (``path<TAB>problem``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from augpipe.errors import UserError
from augpipe.format.imageio import BadImage
from augpipe.targets import layout
from augpipe.targets.core import IGNORE, Targets, rle_decode, rle_encode

PROBLEMS = "annotations.tsv"


@dataclass
class RawAnnotation:
    size: tuple[int, int] | None  # (H, W) the coordinates refer to; None: normalised (YOLO)
    boxes: np.ndarray  # (M, 4) xyxy
    labels: np.ndarray  # (M,)
    iscrowd: np.ndarray | None = None
    keypoints: np.ndarray | None = None  # (M, K, 3)
    polygons: list | None = None  # per instance: list of (P, 2) rings
    rle: list | None = None  # per instance: counts at ``size``, or None
    semantic: str | None = None  # path of a mask image


@dataclass
class TargetSource:
    items: list[tuple[str, int]]  # (absolute path, -1)
    classes: list[str]
    root: str
    annotations: list[RawAnnotation]
    info: dict  # manifest "targets" entries the reader knows (source, categories, skeleton ...)
    n_keypoints: int = 0
    palette: dict | None = None  # semantic masks: RGB colour -> class value
    problems: list[tuple[str, str]] = field(default_factory=list)
    max_instances: int = 0
    background: int = 0
    _box_counts: np.ndarray = None
    _mask_counts: np.ndarray = None
    _point_counts: np.ndarray = None
    _pixel_counts: np.ndarray = None

    def __post_init__(self):
        self._pos = {path: k for k, (path, _) in enumerate(self.items)}
        n = len(self.classes)
        self._box_counts = np.zeros(n, np.int64)
        self._mask_counts = np.zeros(n, np.int64)
        self._point_counts = np.zeros(n, np.int64)
        self._pixel_counts = np.zeros(256, np.int64)

    def relative(self, path: str) -> str:
        try:
            return os.path.relpath(path, self.root)
        except ValueError:
            return path

    def _note(self, pos: int, problem: str) -> None:
        self.problems.append((self.relative(self.items[pos][0]), problem))

    def block(self, path: str, h: int, w: int) -> bytes:
        """The targets block of the image at ``path`` (one of ``items``) stored at (h, w);
        BadImage when it must be skipped (its size disagrees with the annotations')."""
        pos = self._pos[path]
        a = self.annotations[pos]
        if a.size is None:
            sy, sx = float(h), float(w)
        else:
            H, W = a.size
            sy, sx = h / H, w / W
            if abs(sy - sx) * max(H, W) > 1.5:
                raise BadImage(f"image decodes to {h}x{w} (HxW) but its annotations are for "
                               f"{H}x{W}")  # fmt: skip
        t = self._scaled(a, pos, h, w, sy, sx)
        t = self._clean(t, pos)
        m = len(t)
        if m == 0 and t.semantic is None:
            self.background += 1
            self._note(pos, "no annotations (kept as a background image)")
        self.max_instances = max(self.max_instances, m)
        np.add.at(self._box_counts, t.labels, 1)
        has_mask = t.has_polygon() | np.array([c is not None for c in t.rle], bool)
        np.add.at(self._mask_counts, t.labels[has_mask], 1)
        if t.keypoints is not None:
            np.add.at(self._point_counts, t.labels, (t.keypoints[..., 2] > 0).sum(axis=1))
        if t.semantic is not None:
            self._pixel_counts += np.bincount(t.semantic.reshape(-1), minlength=256)
        return layout.encode(t)

    def _scaled(self, a: RawAnnotation, pos: int, h: int, w: int, sy: float, sx: float):
        scale = np.array([sx, sy, sx, sy])
        boxes = np.asarray(a.boxes, np.float64).reshape(-1, 4) * scale
        m = len(boxes)
        kp = None
        if self.n_keypoints:
            kp = np.zeros((m, self.n_keypoints, 3), np.float64)
            if a.keypoints is not None and m:
                kp[:] = np.asarray(a.keypoints, np.float64).reshape(m, self.n_keypoints, 3)
                kp[..., 0] *= sx
                kp[..., 1] *= sy
        polys = [[np.asarray(r, np.float64).reshape(-1, 2) * (sx, sy) for r in rings]
                 for rings in (a.polygons or [[] for _ in range(m)])]  # fmt: skip
        rle = list(a.rle) if a.rle is not None else [None] * m
        for j, c in enumerate(rle):
            if c is not None and (a.size is None or tuple(a.size) != (h, w)):
                rle[j] = rle_encode(_nearest_resize(rle_decode(c, a.size), h, w))
        sem = self._semantic(a.semantic, pos, h, w, a.size) if a.semantic else None
        t = Targets(boxes, a.labels, (h, w), iscrowd=a.iscrowd, keypoints=kp, rle=rle,
                    semantic=sem)  # fmt: skip
        return t.with_polygons(polys)

    def _semantic(self, path: str, pos: int, h: int, w: int, size) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.load()
                # indexed PNGs (VOC's SegmentationClass) keep their indices; grey stays grey
                m = np.asarray(img if img.mode in ("P", "L") else img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise BadImage(f"mask {self.relative(path)!r} does not decode ({exc})") from None
        if m.ndim == 3:
            m = _palette_to_index(m, self.palette, path)
        if m.dtype != np.uint8:
            raise BadImage(f"mask {self.relative(path)!r} is {m.dtype}, expected 8-bit")
        if size is not None and m.shape != tuple(size):
            raise BadImage(f"mask is {m.shape[0]}x{m.shape[1]}, image {size[0]}x{size[1]}")
        H, W = m.shape
        if abs(h / H - w / W) * max(H, W) > 1.5:
            raise BadImage(f"mask is {H}x{W} (HxW), image decodes to {h}x{w}")
        out = _nearest_resize(m, h, w) if (H, W) != (h, w) else m
        bad = (out != IGNORE) & (out >= len(self.classes))
        if bad.any():
            self._note(pos, f"mask values {sorted(set(np.unique(out[bad]).tolist()))[:5]} are "
                       "not classes: set to 255 (ignore)")  # fmt: skip
            out = np.where(bad, IGNORE, out).astype(np.uint8)
        return np.ascontiguousarray(out)

    def _clean(self, t: Targets, pos: int) -> Targets:
        h, w = t.size
        b = t.boxes.astype(np.float64)
        c = b.copy()
        c[:, 0::2] = np.clip(c[:, 0::2], 0, w)
        c[:, 1::2] = np.clip(c[:, 1::2], 0, h)
        keep = (c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])
        for j in np.flatnonzero(~keep):
            self._note(pos, f"box {np.round(b[j], 2).tolist()} has no area inside the "
                       f"{w}x{h} image: dropped")  # fmt: skip
        for j in np.flatnonzero(keep & np.any(c != b, axis=1)):
            self._note(pos, f"box {np.round(b[j], 2).tolist()} clipped to the image")
        polys = [t.rings(j) for j in range(len(t))]
        for j, rings in enumerate(polys):
            good = [r for r in rings if len(r) >= 3 and abs(_area(r)) > 1e-9]
            if len(good) < len(rings):
                self._note(pos, f"instance {j}: {len(rings) - len(good)} degenerate polygon "
                           "ring(s) dropped (fewer than 3 vertices or no area)")  # fmt: skip
            polys[j] = good
        kp = t.keypoints
        if kp is not None:
            kp = kp.copy()
            out = (kp[..., 2] > 0) & ((kp[..., 0] < 0) | (kp[..., 0] > w) | (kp[..., 1] < 0)
                                      | (kp[..., 1] > h))  # fmt: skip
            if out.any():
                self._note(pos, f"{int(out.sum())} keypoint(s) outside the image: v set to 0")
                kp[out] = 0
            kp = kp[keep]
        idx = np.flatnonzero(keep)
        new = Targets(c[keep], t.labels[keep], t.size, iscrowd=t.iscrowd[keep], keypoints=kp,
                      rle=[t.rle[j] for j in idx], semantic=t.semantic)  # fmt: skip
        if t.n_keypoints and new.keypoints is None:
            new.keypoints = np.zeros((0, t.n_keypoints, 3), np.float32)
        return new.with_polygons([polys[j] for j in idx])

    def finish(self, tmp) -> dict:
        """Write ``annotations.tsv`` into the dataset directory; the manifest's "targets"."""
        with open(os.path.join(tmp, PROBLEMS), "w", encoding="utf-8") as f:
            f.write("path\tproblem\n")
            for path, problem in self.problems:
                f.write(f"{path}\t{problem}\n")
        info = dict(self.info)
        info.update(
            {
                "layout": layout.MAGIC.decode(),
                "coordinates": "edge: pixel i covers [i, i + 1); boxes xyxy absolute pixels",
                "max_instances": int(self.max_instances),
                "keypoints": int(self.n_keypoints),
                "counts": {
                    "boxes": self._box_counts.tolist(),
                    "masks": self._mask_counts.tolist(),
                    "points": self._point_counts.tolist(),
                },
                "background_images": int(self.background),
                "problems": len(self.problems),
                "problems_file": PROBLEMS,
            }
        )
        info.setdefault("ignore_index", IGNORE)
        if info.get("semantic"):
            info["counts"]["pixels"] = self._pixel_counts[: len(self.classes)].tolist()
        return info


def _area(r: np.ndarray) -> float:
    x, y = r[:, 0], r[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _nearest_resize(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest neighbour on pixel centres: output pixel i takes source pixel floor((i+.5) H/h)."""
    H, W = m.shape[:2]
    ys = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.int64), H - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.int64), W - 1)
    return np.ascontiguousarray(m[ys[:, None], xs[None, :]])


def _palette_to_index(rgb: np.ndarray, palette: dict | None, path: str) -> np.ndarray:
    if not palette:
        raise BadImage(f"mask {path!r} is a colour image: give the palette (--palette FILE) or "
                       "store masks as grey/indexed PNGs")  # fmt: skip
    out = np.full(rgb.shape[:2], IGNORE, np.uint8)
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    for colour, value in palette.items():
        r, g, b = colour
        out[code == ((r << 16) | (g << 8) | b)] = value
    return out


def open_source(coco=None, yolo=None, voc=None, masks=None, root=None) -> TargetSource | None:
    """The target-carrying source ``pack`` was asked for (at most one), or None."""
    given = {k: v for k, v in (("coco", coco), ("yolo", yolo), ("voc", voc), ("masks", masks))
             if v is not None}  # fmt: skip
    if not given:
        return None
    if len(given) > 1:
        raise UserError(f"pack: give one annotation source, got {', '.join(sorted(given))}")
    if coco is not None:
        from augpipe.format.coco import coco_source

        return coco_source(coco, root)
    if yolo is not None:
        from augpipe.format.yolo import yolo_source

        return yolo_source(yolo)
    if voc is not None:
        from augpipe.format.voc import voc_source

        return voc_source(voc)
    from augpipe.format.maskfolder import mask_source

    return mask_source(masks)
