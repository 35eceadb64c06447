"""``Targets``: one image's annotations, in the image's own pixel edge coordinates.

Instances ``j = 0 .. M-1`` each have a box (``boxes[j]`` = x0, y0, x1, y1), a contiguous class
index, an ``iscrowd`` flag, optionally K keypoints ``(x, y, v)`` and an instance shape: polygon
rings (flattened: ring r belongs to instance ``ring_inst[r]`` and holds the vertices
``vertices[ring_start[r]:ring_start[r + 1]]``) and/or a run-length mask (COCO's uncompressed
RLE over the column-major (H, W) mask). A semantic mask (H, W) uint8 (255 = ignore) may stand
beside them. ``size`` is (H, W) of the image the coordinates refer to.

>>> t = Targets.from_boxes([[2, 3, 10, 12]], [0], size=(20, 30))
>>> t.boxes.shape, len(t)
((1, 4), 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE = 255  # semantic mask value meaning "not labelled"
# the ring fields of targets without polygons (read-only: shared)
_NO_RINGS = np.zeros(0, np.int32)
_ONE_START = np.zeros(1, np.int32)
_NO_VERTICES = np.zeros((0, 2), np.float64)
for _a in (_NO_RINGS, _ONE_START, _NO_VERTICES):
    _a.flags.writeable = False


def _f4(a, shape) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32).reshape(shape))


@dataclass
class Targets:
    boxes: np.ndarray  # (M, 4) float32 xyxy
    labels: np.ndarray  # (M,) int64
    size: tuple[int, int]  # (H, W)
    iscrowd: np.ndarray = None  # (M,) bool
    keypoints: np.ndarray | None = None  # (M, K, 3) float32, or None (K = 0)
    ring_inst: np.ndarray = None  # (R,) int32
    ring_start: np.ndarray = None  # (R + 1,) int32
    vertices: np.ndarray = None  # (P, 2) float64 (x, y)
    rle: list = field(default=None)  # per instance: uint32 counts, or None
    semantic: np.ndarray | None = None  # (H, W) uint8 (a dataset's RowRuns with mask_runs)
    masks: list | None = None  # output frame only: per instance a warped (H, W) mask or None

    def __post_init__(self):
        self.boxes = _f4(self.boxes, (-1, 4))
        m = len(self.boxes)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(m)
        self.size = (int(self.size[0]), int(self.size[1]))
        self.iscrowd = (
            np.zeros(m, bool) if self.iscrowd is None else np.asarray(self.iscrowd, bool).reshape(m)
        )
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, dtype=np.float32)
            kp = kp if kp.ndim == 3 else kp.reshape(m, -1, 3)
            self.keypoints = np.ascontiguousarray(kp) if kp.shape[1] else None
        if self.ring_inst is None:
            self.ring_inst = np.zeros(0, np.int32)
            self.ring_start = np.zeros(1, np.int32)
            self.vertices = np.zeros((0, 2), np.float64)
        self.ring_inst = np.asarray(self.ring_inst, np.int32).reshape(-1)
        self.ring_start = np.asarray(self.ring_start, np.int32).reshape(-1)
        self.vertices = np.ascontiguousarray(np.asarray(self.vertices, np.float64).reshape(-1, 2))
        if self.rle is None:
            self.rle = [None] * m

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def n_keypoints(self) -> int:
        return 0 if self.keypoints is None else self.keypoints.shape[1]

    @classmethod
    def from_boxes(cls, boxes, labels, size, **kw) -> Targets:
        return cls(boxes=boxes, labels=labels, size=size, **kw)

    @classmethod
    def plain(cls, boxes: np.ndarray, labels: np.ndarray, size, iscrowd: np.ndarray) -> Targets:
        """Boxes only, from arrays already of the fields' types and shapes ((M, 4) float32
        C-contiguous, (M,) int64, (M,) bool; ``size`` two ints): no conversions (the packed
        reader's path for plain-box records)."""
        t = cls.__new__(cls)
        t.boxes, t.labels, t.size, t.iscrowd = boxes, labels, size, iscrowd
        t.keypoints, t.semantic, t.masks = None, None, None
        t.ring_inst, t.ring_start = _NO_RINGS, _ONE_START
        t.vertices, t.rle = _NO_VERTICES, [None] * len(boxes)
        return t

    @classmethod
    def empty(cls, size, n_keypoints: int = 0) -> Targets:
        kp = np.zeros((0, n_keypoints, 3), np.float32) if n_keypoints else None
        return cls(np.zeros((0, 4)), np.zeros(0), size, keypoints=kp)

    def rings(self, j: int) -> list[np.ndarray]:
        """Instance ``j``'s polygon rings, each (P, 2) float64 (x, y)."""
        rs = np.flatnonzero(self.ring_inst == j)
        return [self.vertices[self.ring_start[r] : self.ring_start[r + 1]] for r in rs]

    def has_polygon(self) -> np.ndarray:
        out = np.zeros(len(self), bool)
        out[self.ring_inst] = True
        return out

    def instance_mask(self, j: int) -> np.ndarray | None:
        """Instance ``j``'s run-length mask decoded to (H, W) uint8 (0/1), or None."""
        if self.rle[j] is None:
            return None
        return rle_decode(self.rle[j], self.size)

    def with_polygons(self, polygons: list[list[np.ndarray]]) -> Targets:
        """Set the rings from a per-instance list of lists of (P, 2) arrays."""
        inst, start, verts = [], [0], []
        for j, rings in enumerate(polygons):
            for ring in rings:
                ring = np.asarray(ring, np.float64).reshape(-1, 2)
                inst.append(j)
                verts.append(ring)
                start.append(start[-1] + len(ring))
        self.ring_inst = np.asarray(inst, np.int32)
        self.ring_start = np.asarray(start, np.int32)
        self.vertices = np.concatenate(verts) if verts else np.zeros((0, 2))
        return self


def rle_encode(mask: np.ndarray) -> np.ndarray:
    """COCO's uncompressed RLE of a (H, W) mask: run lengths over the column-major pixels,
    starting with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    if flat.size == 0:
        return np.zeros(0, np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges)
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def rle_decode(counts, size) -> np.ndarray:
    h, w = size
    counts = np.asarray(counts, np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h}x{w} = {h * w}")
    vals = np.arange(len(counts)) % 2
    flat = np.repeat(vals.astype(np.uint8), counts)
    return np.ascontiguousarray(flat.reshape((w, h)).T)


def rle_from_string(s: str | bytes) -> np.ndarray:
    """COCO's compressed RLE string (``rleFrString`` in pycocotools' maskApi.c) -> counts."""
    if isinstance(s, str):
        s = s.encode("ascii")
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return np.asarray(counts, np.int64)
