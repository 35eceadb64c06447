"""Test doubles for the loader tests: a dataset and a pipeline with the real interfaces.

Importable by spawned workers (pytest puts tests/ on sys.path and spawn passes sys.path on).
FakePipeline writes a deterministic function of (seed, epoch, index) into each image, with the
dataset index in the first pixel, so tests can check order and content without decoding.
"""

from __future__ import annotations

import math
import os
import signal
import time

import numpy as np

from augpipe import rng


class FakeDataset:
    def __init__(self, n: int, n_classes: int = 5, shard_sizes: list[int] | None = None):
        self.n = n
        self.labels = (np.arange(n, dtype=np.int64) * 7) % n_classes
        self.shard_sizes = shard_sizes
        self.stats = {
            "mean": np.array([0.5, 0.4, 0.3]),
            "std": np.array([0.25, 0.2, 0.1]),
        }

    def __len__(self) -> int:
        return self.n


def fake_image(shape, seed: int, epoch: int, index: int) -> np.ndarray:
    size = math.prod(shape)
    words = rng.bits(seed, epoch, index * 4096 + np.arange(-(-size // 8), dtype=np.int64), 7)
    img = np.frombuffer(words.tobytes(), np.uint8)[:size].reshape(shape).copy()
    img.reshape(-1)[:3] = [index & 255, (index >> 8) & 255, (index >> 16) & 255]
    return img


def index_of(images: np.ndarray) -> np.ndarray:
    """The dataset indices of NHWC fake images (from their first pixel)."""
    p = images.reshape(len(images), -1)[:, :3].astype(np.int64)
    return p[:, 0] | (p[:, 1] << 8) | (p[:, 2] << 16)


class FakePipeline:
    def __init__(
        self,
        shape=(6, 5, 3),
        fail_on: int | None = None,
        sleep: float = 0.0,
        kill_on: int | None = None,
    ):
        self.output_shape = tuple(shape)
        self.fail_on = fail_on
        self.sleep = sleep
        self.kill_on = kill_on
        self.bound = False

    def bind(self, dataset):
        bound = FakePipeline(self.output_shape, self.fail_on, self.sleep, self.kill_on)
        bound.bound = True
        return bound

    def run_batch(self, dataset, indices, seed, epoch, out) -> None:
        assert self.bound, "run_batch before bind"
        if self.sleep:
            time.sleep(self.sleep)
        for k, idx in enumerate(indices):
            if idx == self.fail_on:
                raise ValueError(f"cannot augment record {idx}")
            if idx == self.kill_on:
                os.kill(os.getpid(), signal.SIGKILL)
            out[k] = fake_image(self.output_shape, seed, epoch, int(idx))
