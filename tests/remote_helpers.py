"""Helpers for the remote-dataset tests: a multi-shard packed dataset and a pipeline that reads
each record's stored bytes (no decode, no Numba) so that the tests see what the shards hold.

Importable by spawned workers (pytest puts tests/ on sys.path and spawn passes sys.path on).
"""

from __future__ import annotations

import zlib

import numpy as np

SHAPE = (2, 4, 3)


def pack_small(root, name="ds", n_classes=3, per_class=12, shard_kb=4.0):
    """A JPEG dataset of tiny images over many small shards (about 3 records each)."""
    from augpipe.format.pack import pack
    from augpipe.synth import make_image_folder

    images = make_image_folder(root / f"{name}-images", n_classes=n_classes,
                               per_class=per_class, min_side=24, max_side=40, seed=1)  # fmt: skip
    out = root / name
    pack(images, out, format="jpeg", quality=80, shard_size_mb=shard_kb / 1024, progress=False)
    return out


class BytesPipeline:
    """Writes each record's index (first 3 bytes) and the CRC32 of its stored payload."""

    output_shape = SHAPE

    def bind(self, dataset):
        return self

    def to_dict(self) -> dict:  # fresh loader workers rebuild it from this
        return {}

    @classmethod
    def from_dict(cls, d: dict):
        return cls()

    def run_batch(self, dataset, indices, seed, epoch, out) -> None:
        for k, idx in enumerate(indices):
            crc = zlib.crc32(bytes(dataset.raw(int(idx))))
            flat = out[k].reshape(-1)
            flat[:] = 0
            flat[:3] = [idx & 255, (idx >> 8) & 255, (idx >> 16) & 255]
            flat[3:7] = list(crc.to_bytes(4, "little"))


def decode(images: np.ndarray) -> list[tuple[int, int]]:
    """(index, payload CRC32) of each sample of a BytesPipeline batch."""
    flat = images.reshape(len(images), -1).astype(np.int64)
    idx = flat[:, 0] | (flat[:, 1] << 8) | (flat[:, 2] << 16)
    crc = flat[:, 3] | (flat[:, 4] << 8) | (flat[:, 5] << 16) | (flat[:, 6] << 24)
    return list(zip(idx.tolist(), crc.tolist()))


def epoch(loader) -> list[list[tuple[int, int]]]:
    """One epoch of a loader with output='numpy' and a BytesPipeline, batch by batch."""
    return [decode(images) for images, _ in loader]


def stop_fsspec_io() -> None:
    """Stop fsspec's IO thread and forget its filesystems (they hold sessions on its loop), so
    that the tests after these run without extra threads: a Loader then forks its workers, as
    it would in a fresh process."""
    import sys

    asyn = sys.modules.get("fsspec.asyn")
    if asyn is None or asyn.loop[0] is None:
        return
    from fsspec.spec import AbstractFileSystem

    loop, thread = asyn.loop[0], asyn.iothread[0]
    stack = [AbstractFileSystem]
    while stack:
        cls = stack.pop()
        for fs in list(cls._cache.values()):
            session = getattr(fs, "_session", None)  # the http filesystem's aiohttp session
            if session is not None and not session.closed:
                asyn.sync(loop, session.close)
            client = getattr(fs, "_s3", None)  # s3fs's aiobotocore client
            if client is not None:
                asyn.sync(loop, client.__aexit__, None, None, None)
        cls.clear_instance_cache()
        stack.extend(cls.__subclasses__())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    if loop._default_executor is not None:
        loop._default_executor.shutdown(wait=True)
    loop.close()
    asyn.reset_lock()
