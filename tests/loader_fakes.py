"""Test doubles for the loader tests: a dataset and a pipeline with the real interfaces.

Importable by fresh worker interpreters (pytest puts tests/ on sys.path, the Loader passes sys.path
on, and to_dict/from_dict hand them over as data).
FakePipeline writes a deterministic function of (seed, epoch, index) into each image, with the
dataset index in the first pixel, so tests can check order and content without decoding.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time

import numpy as np

from augpipe import rng


class FakeDataset:
    def __init__(self, n: int, n_classes: int = 5, shard_sizes: list[int] | None = None):
        self.n = n
        self.n_classes = n_classes
        self.labels = (np.arange(n, dtype=np.int64) * 7) % n_classes
        self.shard_sizes = shard_sizes
        self.stats = {
            "mean": np.array([0.5, 0.4, 0.3]),
            "std": np.array([0.25, 0.2, 0.1]),
        }

    def __len__(self) -> int:
        return self.n

    def to_dict(self) -> dict:  # fresh worker interpreters rebuild it from this
        return {"n": self.n, "n_classes": self.n_classes, "shard_sizes": self.shard_sizes}

    @classmethod
    def from_dict(cls, d: dict) -> FakeDataset:
        return cls(d["n"], d["n_classes"], d["shard_sizes"])


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
        log: str | None = None,
    ):
        self.output_shape = tuple(shape)
        self.fail_on = fail_on
        self.sleep = sleep
        self.kill_on = kill_on
        self.log = log  # a directory: one empty file "EPOCH-BATCHSTART" per batch built
        self.bound = False

    def to_dict(self) -> dict:
        return {"shape": list(self.output_shape), "fail_on": self.fail_on, "sleep": self.sleep,
                "kill_on": self.kill_on, "log": self.log, "bound": self.bound}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> FakePipeline:
        pipe = cls(d["shape"], d["fail_on"], d["sleep"], d["kill_on"], d["log"])
        pipe.bound = d["bound"]
        return pipe

    def bind(self, dataset):
        bound = FakePipeline(self.output_shape, self.fail_on, self.sleep, self.kill_on, self.log)
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
        if self.log:
            open(os.path.join(self.log, f"{epoch}-{int(indices[0])}"), "w").close()


class BrokenInWorker(FakeDataset):
    """A dataset that cannot be rebuilt in a fresh worker: ``how`` = "raise" raises there,
    "exit" writes to stderr and exits with status 3."""

    def __init__(self, n: int, how: str = "raise"):
        super().__init__(n)
        self.how = how

    def to_dict(self) -> dict:
        return {"n": self.n, "how": self.how}

    @classmethod
    def from_dict(cls, d: dict):
        if d["how"] == "raise":
            raise RuntimeError("this dataset cannot be opened in a worker")
        sys.stderr.write("dataset setup failed: disk quota exceeded\n")
        sys.stderr.flush()
        os._exit(3)
