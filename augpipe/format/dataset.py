"""``ShardDataset``: random access to a packed dataset, zero-copy, safe across processes.

Example::

    ds = ShardDataset("photos.packed")
    len(ds), ds.classes, ds.labels[:5], ds.sizes[0], ds.stats["mean"]
    jpeg = ds.raw(0)          # read-only uint8 view of the stored bytes, no copy
    img = ds.image(0)         # HWC uint8 RGB

The manifest and index are read and checked when the dataset is constructed (cheap); the LMDB
environments are opened lazily on the first record access **in each process** (the owner pid
is remembered, so a forked child opens its own), read-only, ``lock=False`` (readers never
write, so no lock file or reader table is needed, and read-only media work), with
``readahead=False`` because training reads records in random order and kernel readahead would
fill the page cache with neighbours nobody asked for; pass ``readahead=True`` for a sequential
scan. Datasets of one process share each shard's environment (LMDB allows one per file and
process; the first opener's ``readahead`` applies). Each dataset keeps one long-lived read
transaction per shard with ``buffers=True``, so ``raw(i)`` is a view into the memory map. In a
forked child the inherited environments are closed and reopened on first use (views taken
before the fork are not valid there). Pickling keeps only the path and options.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right
from pathlib import Path

import lmdb
import numpy as np

from augpipe.errors import DatasetError
from augpipe.format import manifest as mf
from augpipe.format import record

# LMDB refuses to open one file twice in a process, so environments are shared by every
# dataset (and ``inspect``) of this process: realpath -> [pid, env, users].
_ENVS: dict[str, list] = {}
_KEY = struct.Struct(">Q").pack  # record.key without the call overhead
_QUICK = struct.Struct("<4s13xB6xII")  # magic, encoding, payload length, index


def acquire_env(file: str, readahead: bool = False) -> lmdb.Environment:
    """This process's read-only environment for a shard file (opened on first use)."""
    key = os.path.realpath(file)
    entry = _ENVS.get(key)
    if entry is not None and entry[0] != os.getpid():
        # Inherited through fork. py-lmdb still counts it as open here and would refuse a new
        # open, so close the child's copy: with lock=False and readonly there is no lock file
        # or reader slot, and unmapping the child's mapping leaves the parent's untouched.
        del _ENVS[key]
        try:
            entry[1].close()
        except lmdb.Error:
            pass
        entry = None
    if entry is None:
        env = lmdb.open(
            key, subdir=False, readonly=True, lock=False, readahead=readahead, max_dbs=0
        )
        entry = _ENVS[key] = [os.getpid(), env, 0]
    entry[2] += 1
    return entry[1]


def release_env(file: str) -> None:
    """Drop one use of a shard file's environment; the last user closes it."""
    key = os.path.realpath(file)
    entry = _ENVS.get(key)
    if entry is None or entry[0] != os.getpid():
        return
    entry[2] -= 1
    if entry[2] <= 0:
        del _ENVS[key]
        entry[1].close()


class ShardDataset:
    """A packed dataset (see docs/format.md). ``ShardDataset(path)``; ``len``, ``labels``,
    ``classes``, ``encoding``, ``sizes``, ``manifest``, ``stats``, ``raw(i)``, ``image(i)``."""

    def __init__(self, path, readahead: bool = False):
        self.path = str(path)
        self.readahead = bool(readahead)
        self.manifest, index = mf.load(self.path)
        self.labels = index[:, 0].astype(np.int64)
        self.sizes = np.ascontiguousarray(index[:, 1:3])
        self.labels.flags.writeable = False
        self.sizes.flags.writeable = False
        self.classes: list[str] = list(self.manifest["classes"])
        self.encoding: str = self.manifest["encoding"]
        self._encoding_code = record.ENCODINGS[self.encoding]
        try:
            self.stats = mf.stats_arrays(self.manifest)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{self.path!r}: manifest.json statistics are invalid ({exc})"
            ) from None
        shards = self.manifest["shards"]
        self._names = [s["name"] for s in shards]
        self._first_list = [int(s["first"]) for s in shards]
        self._n = len(self.labels)
        self._pid = -1
        self._envs: list = []
        self._txns: list = []

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"ShardDataset({self.path!r}: {len(self)} records, {len(self.classes)} classes, "
            f"{self.encoding}, {len(self._names)} shard(s))"
        )

    def __getstate__(self) -> dict:
        return {"path": self.path, "readahead": self.readahead}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], readahead=state.get("readahead", False))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> None:
        # Handles inherited from another process are not ours to abort: drop them (py-lmdb skips
        # them on deallocation after fork); acquire_env closes the inherited environments.
        self._envs, self._txns = [], []
        for name in self._names:
            file = os.path.join(self.path, name)
            try:
                env = acquire_env(file, self.readahead)
            except lmdb.Error as exc:
                self._close_handles()
                raise DatasetError(
                    f"{self.path!r}: shard {name!r} cannot be opened ({exc}); "
                    "re-create the dataset with 'augpipe pack'"
                ) from None
            self._envs.append(file)
            self._txns.append(env.begin(buffers=True))
        self._pid = os.getpid()

    def value(self, i: int):
        """The stored value (header + payload) of record ``i`` as a buffer into the map."""
        i = int(i)
        n = self._n
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record index {i} out of range for a dataset of {n} records")
        if self._pid != os.getpid():
            self._open()
        s = bisect_right(self._first_list, i) - 1
        buf = self._txns[s].get(_KEY(i))
        if buf is None:
            raise DatasetError(
                f"{self.path!r}: record {i} is missing from shard {self._names[s]!r}; "
                "the dataset is damaged, run 'augpipe inspect --verify' and re-pack"
            )
        return buf

    def raw(self, i: int) -> np.ndarray:
        """Zero-copy read-only uint8 view of record ``i``'s payload (JPEG bytes or HWC pixels);
        valid until ``close()``."""
        buf = self.value(i)
        # Hot path: check magic, encoding, length and index without building a namedtuple.
        if len(buf) >= record.HEADER_SIZE:
            magic, enc, length, index = _QUICK.unpack_from(buf, 0)
            if (
                magic == record.MAGIC
                and enc == self._encoding_code
                and length == len(buf) - record.HEADER_SIZE
                and index == int(i) % self._n
            ):
                return np.frombuffer(buf, dtype=np.uint8, offset=record.HEADER_SIZE)
        raise DatasetError(
            f"{self.path!r}: record {i} is damaged (header does not match the manifest); "
            "run 'augpipe inspect --verify' and re-pack the dataset"
        )

    def image(self, i: int) -> np.ndarray:
        """Record ``i`` fully decoded: a new HWC uint8 RGB array."""
        payload = self.raw(i)
        h, w = (int(v) for v in self.sizes[i])
        if self.encoding == "raw":
            if payload.size != h * w * 3:
                raise DatasetError(f"{self.path!r}: record {i} has {payload.size} bytes, "
                                   f"expected {h}x{w}x3")  # fmt: skip
            return payload.reshape(h, w, 3).copy()
        import cv2

        bgr = cv2.imdecode(payload, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None or bgr.shape[:2] != (h, w):
            raise DatasetError(f"{self.path!r}: record {i}'s JPEG does not decode to {h}x{w}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.image(i), int(self.labels[i])

    def _close_handles(self) -> None:
        for txn in self._txns:
            txn.abort()
        for file in self._envs:
            release_env(file)
        self._envs, self._txns = [], []

    def close(self) -> None:
        """Close this process's handles; views from ``raw`` become invalid. Reopens on use."""
        if self._pid == os.getpid():
            self._close_handles()
        self._pid = -1
        self._envs, self._txns = [], []

    def shard_files(self) -> list[Path]:
        return [Path(self.path) / n for n in self._names]
