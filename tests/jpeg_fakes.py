"""Helpers for the decode tests: photo-like synthetic images and in-memory JPEG datasets."""

from __future__ import annotations

import cv2
import numpy as np


def photo(h, w, seed=0):
    """Smooth random colours (16-pixel blocks, cubic) plus +-16 noise: photo-like detail."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(img + rng.integers(-16, 16, img.shape), 0, 255).astype(np.uint8)


class Jpegs:
    """The slice of ShardDataset that run_batch uses, over in-memory JPEGs."""

    encoding = "jpeg"
    stats: dict = {}

    def __init__(self, bufs, sizes):
        self.payloads = [np.frombuffer(b, np.uint8) for b in bufs]
        self.sizes = np.array(sizes, dtype=np.int32)

    def raw(self, i):
        return self.payloads[i]
