"""User ops for tests/test_user_ops.py, importable by path (and by spawned loader workers)."""

from __future__ import annotations

import numpy as np


class Cutout:
    """Zero a random size x size square (a typical user op)."""

    def __init__(self, size: int = 4, value: int = 0):
        self.size, self.value = size, value

    def __call__(self, image: np.ndarray, rng) -> np.ndarray:
        h, w = image.shape[:2]
        y = rng.integers(0, max(1, h - self.size + 1))
        x = rng.integers(0, max(1, w - self.size + 1))
        image[y : y + self.size, x : x + self.size] = self.value
        return image


def noise(image: np.ndarray, rng, amount: int = 20) -> np.ndarray:
    """A new array (not in place), drawn from several calls to the stream."""
    d = rng.integers(-amount, amount + 1, size=image.shape)
    return np.clip(image.astype(np.int64) + d, 0, 255).astype(np.uint8)


def fails_on_odd(image: np.ndarray, rng) -> np.ndarray:
    if int(image.sum()) % 2:
        raise RuntimeError("odd pixel sum")
    return image


def boom(image: np.ndarray, rng) -> np.ndarray:
    raise RuntimeError("boom")


def returns_float(image: np.ndarray, rng):
    return image.astype(np.float32)


def invert_host(images: np.ndarray, labels: np.ndarray, rng):
    """Host stage: uint8 NHWC batch; labels shifted by a draw from the batch's stream."""
    return 255 - images, labels + 100 * rng.integers(1, 10)


def scale_device(images, labels, rng, factor: float = 2.0):
    return images * factor, labels


def batch_boom(images, labels, rng):
    raise ValueError("batch boom")


def flip_rows_host(images: np.ndarray, labels: np.ndarray, rng):
    """Host stage, labels kept: upside down (CutMix's boxes do not commute with it)."""
    return np.ascontiguousarray(images[:, ::-1]), labels
