"""Affine: random rotation, shear, translation and stretching about the image centre."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from augpipe import rng
from augpipe.errors import bad_param
from augpipe.ops.base import Op, interval, number, probability, uniform_in


@dataclass(frozen=True)
class Affine(Op):
    """With probability ``p``, warp by ``T(translate) R(rotate) Sh(shear) S(stretch)`` about the
    centre. ``rotate`` and ``shear`` are degrees (x means [-x, x], or a (low, high) pair);
    ``translate`` is a fraction of the output size (x means [-x, x] on each axis);
    ``stretch`` is a (low, high) range of scale factors drawn independently for x and y.
    ``perspective`` (ultralytics' ``perspective``, e.g. 0.0005) adds a projective row drawn
    before the rest, ``P = [[1, 0, 0], [0, 1, 0], [px, py, 1]]`` with px, py uniform in
    [-perspective, perspective] per pixel of the frame centred on the output:
    ``T R Sh S P``. Areas that map outside the source are filled with ``Compose(fill=0)``.

    >>> Compose([RandomResizedCrop(224), Affine(rotate=10, shear=5, translate=0.05)])
    >>> Compose([Letterbox(640), Affine(rotate=10, translate=0.1, perspective=0.0005)])
    """

    rotate: float | tuple[float, float] = 0.0
    shear: float | tuple[float, float] = 0.0
    translate: float | tuple[float, float] = 0.0
    stretch: tuple[float, float] = (1.0, 1.0)
    p: float = 1.0
    perspective: float = 0.0
    kind: ClassVar[str] = "geometry"

    def __post_init__(self):
        interval("Affine.rotate", self.rotate, -180.0, 180.0, symmetric_about=0.0)
        interval("Affine.shear", self.shear, -60.0, 60.0, symmetric_about=0.0)
        interval("Affine.translate", self.translate, -1.0, 1.0, symmetric_about=0.0)
        lo, hi = interval("Affine.stretch", self.stretch, 0.0, 10.0)
        if lo < 0.01:  # below, the map is numerically singular (a 100x shrink is already fill)
            raise bad_param(
                "Affine.stretch", "scale factors >= 0.01", self.stretch, "e.g. (0.9, 1.1)"
            )
        probability("Affine.p", self.p)
        number("Affine.perspective", self.perspective, 0.0, 0.01)

    def matrices(self, indices, seed: int, epoch: int, pos: int, out_hw) -> np.ndarray:
        n = len(indices)
        r = interval("rotate", self.rotate, symmetric_about=0.0)
        sh = interval("shear", self.shear, symmetric_about=0.0)
        t = interval("translate", self.translate, symmetric_about=0.0)
        st = interval("stretch", self.stretch)

        def draw(slot, lo, hi):
            return uniform_in(rng, seed, epoch, indices, rng.stream_id(pos, slot), lo, hi)

        a = -np.deg2rad(draw(0, *r))  # positive = counter-clockwise on screen (cv2's convention)
        s = np.tan(np.deg2rad(draw(1, *sh)))
        tx = draw(2, *t) * out_hw[1]
        ty = draw(3, *t) * out_hw[0]
        sx = draw(4, *st)
        sy = draw(5, *st)
        on = (
            np.ones(n, dtype=bool)
            if self.p >= 1
            else rng.bernoulli(seed, epoch, indices, rng.stream_id(pos, 6), self.p)
        )
        px = draw(7, -self.perspective, self.perspective)
        py = draw(8, -self.perspective, self.perspective)
        c, si = np.cos(a), np.sin(a)
        # forward map F = T R Sh S P (input frame -> output frame); sampling needs F^-1
        fwd = np.zeros((n, 3, 3))
        fwd[:, 0, 0] = c * sx
        fwd[:, 0, 1] = (c * s - si) * sy
        fwd[:, 1, 0] = si * sx
        fwd[:, 1, 1] = (si * s + c) * sy
        fwd[:, 0, 2] = tx
        fwd[:, 1, 2] = ty
        fwd[:, 2, 2] = 1.0
        # F P: the columns of F's linear part take px, py times its translation
        fwd[:, :, 0] += fwd[:, :, 2] * px[:, None]
        fwd[:, :, 1] += fwd[:, :, 2] * py[:, None]
        inv = np.linalg.inv(fwd)
        flat = (px == 0) & (py == 0)
        inv[flat, 2] = (0.0, 0.0, 1.0)  # exactly affine: the warp's affine loop
        inv[~on] = np.eye(3)
        # exact identity where nothing was drawn, so Affine() keeps the fast axis-aligned path
        ident = (a == 0) & (s == 0) & (tx == 0) & (ty == 0) & (sx == 1) & (sy == 1) & flat
        inv[ident] = np.eye(3)
        return inv
