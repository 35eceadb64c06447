"""Synthetic, learnable image folders for tests, ``augpipe demo`` and trainer checks.

Each class is a distinct hue and a distinct shape (circle, square, triangle, ...), drawn at a
random position and size on a random low-saturation gradient background, with pixel noise. A
small CNN separates the classes well above chance within a few epochs; nothing about a single
pixel gives the class away, so augmentation and training code is exercised for real.

Everything is a pure function of (seed, class, image number): the same call writes the same
bytes.

Example::

    from augpipe.synth import make_image_folder
    root = make_image_folder("/tmp/toy", n_classes=4, per_class=16)
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from augpipe.errors import bad_param

SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross", "hstripes", "vstripes")


def _mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float):
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":  # apex up: inside when below the apex and within the widening edges
        t = (dy + r) / (2 * r)
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if shape == "ring":
        d2 = dy * dy + dx * dx
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        w = r * 0.3
        box = (np.abs(dy) <= r) & (np.abs(dx) <= r)
        return box & ((np.abs(dy) <= w) | (np.abs(dx) <= w))
    period = max(2.0, r / 2.5)
    box = (np.abs(dy) <= r) & (np.abs(dx) <= r)
    coord = dy if shape == "hstripes" else dx
    return box & (np.floor(coord / period) % 2 == 0)


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def make_image(cls: int, n_classes: int, height: int, width: int, rng: np.random.Generator):
    """One HWC uint8 image of class ``cls``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Background: a gentle gradient between two greyish colours.
    c0 = _rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.8))
    c1 = _rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.8))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    img = c0 + (c1 - c0) * ramp[..., None]
    # The object: the class's hue and shape, random place and size, kept mostly inside.
    side = min(height, width)
    r = rng.uniform(0.22, 0.38) * side
    cy = rng.uniform(r * 0.8, height - r * 0.8)
    cx = rng.uniform(r * 0.8, width - r * 0.8)
    hue = cls / n_classes + rng.uniform(-0.25, 0.25) / n_classes
    colour = _rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0))
    mask = _mask(SHAPES[cls % len(SHAPES)], yy, xx, cy, cx, r)
    img[mask] = colour
    img += rng.normal(0.0, 6.0, size=img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def make_image_folder(
    root,
    n_classes: int = 4,
    per_class: int = 16,
    min_side: int = 48,
    max_side: int = 96,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write ``root/classNN/imgNNNN.jpg`` for each class and image; returns ``root``.

    Heights and widths are drawn independently from [min_side, max_side], so images have
    mixed sizes and aspect ratios.
    """
    if not isinstance(n_classes, int) or n_classes < 1:
        raise bad_param("n_classes", "an integer >= 1", n_classes)
    if not isinstance(per_class, int) or per_class < 1:
        raise bad_param("per_class", "an integer >= 1", per_class)
    if not (isinstance(min_side, int) and isinstance(max_side, int) and 8 <= min_side <= max_side):
        raise bad_param(
            "min_side/max_side", "integers with 8 <= min_side <= max_side", (min_side, max_side)
        )
    root = Path(root)
    for cls in range(n_classes):
        folder = root / f"class{cls:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed & 0xFFFFFFFF, cls, i])
            h = int(rng.integers(min_side, max_side + 1))
            w = int(rng.integers(min_side, max_side + 1))
            pixels = make_image(cls, n_classes, h, w, rng)
            Image.fromarray(pixels).save(folder / f"img{i:04d}.jpg", quality=quality)
    return root
