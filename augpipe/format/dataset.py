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
from augpipe.format.checksum import crc32
from augpipe.format.lmdb_check import check_shard

# LMDB refuses to open one file twice in a process, so environments are shared by every
# dataset (and ``inspect``) of this process: realpath -> [pid, env, users].
_ENVS: dict[str, list] = {}
_KEY = struct.Struct(">Q").pack  # record.key without the call overhead
# Shard files whose LMDB structure this process has checked (inherited by forked workers):
# (realpath, device, inode, size, mtime_ns). A file that changes is checked again.
_CHECKED: set[tuple] = set()


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

    _check_files = True  # False in a remote dataset's local view (shards come on demand)

    def __new__(cls, path=None, *args, **kwargs):
        # ShardDataset("s3://bucket/ds", cache_dir=...) is a remote dataset (augpipe.remote)
        if cls is ShardDataset and isinstance(path, str) and "://" in path:
            from augpipe.remote.dataset import RemoteShardDataset

            return super().__new__(RemoteShardDataset)
        return super().__new__(cls)

    def __init__(self, path, readahead: bool = False):
        self.path = str(path)
        self.readahead = bool(readahead)
        self.manifest, index = mf.load(self.path, check_files=self._check_files)
        self.labels = index[:, 0].astype(np.int64)
        self.sizes = np.ascontiguousarray(index[:, 1:3])
        self.labels.flags.writeable = False
        self.sizes.flags.writeable = False
        self.classes: list[str] = list(self.manifest["classes"])
        self.encoding: str = self.manifest["encoding"]
        self._encoding_code = record.ENCODINGS[self.encoding]
        # detection/segmentation/keypoint datasets (docs/targets.md): records carry targets
        self.target_info: dict | None = self.manifest.get("targets")
        self.has_targets = isinstance(self.target_info, dict)
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

    def to_dict(self) -> dict:
        """Path and options as plain data (how fresh loader workers receive the dataset)."""
        return {"path": self.path, "readahead": self.readahead}

    @classmethod
    def from_dict(cls, d: dict) -> ShardDataset:
        return cls(d["path"], readahead=bool(d.get("readahead", False)))

    def __getstate__(self) -> dict:  # for other libraries' spawned workers (torch DataLoader)
        return {"path": self.path, "readahead": self.readahead}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], readahead=state.get("readahead", False))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def validate(self) -> None:
        """Check every shard file's size and LMDB structure (``format/lmdb_check.py``) so that
        damage is a ``DatasetError`` naming the shard, never a crash inside liblmdb. Cheap (it
        reads only the B-tree pages); runs once per file and process before the first read, and
        the Loader runs it when it is built."""
        for shard in self.manifest["shards"]:
            file = os.path.join(self.path, shard["name"])
            try:
                st = os.stat(file)
            except OSError as exc:
                raise self._damaged(shard["name"], f"cannot be read ({exc.strerror})") from None
            ident = (os.path.realpath(file), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if ident in _CHECKED:
                continue
            expected = shard.get("bytes")
            if isinstance(expected, int) and st.st_size != expected:
                raise self._damaged(shard["name"], f"is {st.st_size} bytes, the manifest says "
                                    f"{expected} (truncated or replaced)")  # fmt: skip
            problem = check_shard(file, shard["first"], shard["count"])
            if problem is not None:
                raise self._damaged(shard["name"], problem)
            _CHECKED.add(ident)

    def _damaged(self, shard: str, problem: str, record_index: int | None = None):
        where = f"shard {shard!r}" + ("" if record_index is None else f" record {record_index}")
        return DatasetError(f"{self.path!r}: {where} is damaged: {problem}; run 'augpipe "
                            "inspect --verify' and re-pack the dataset")  # fmt: skip

    def _open(self) -> None:
        self.validate()
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
        return self._value(i)[0]

    def _value(self, i: int):
        """(value buffer, shard position, record index) of record ``i``."""
        i = int(i)
        n = self._n
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record index {i} out of range for a dataset of {n} records")
        if self._pid != os.getpid():
            self._open()
        s = bisect_right(self._first_list, i) - 1
        try:
            buf = self._txns[s].get(_KEY(i))
        except lmdb.Error as exc:  # e.g. MDB_CORRUPTED: an overflow page of the wrong type
            raise self._damaged(self._names[s], f"LMDB: {exc}", i) from None
        if buf is None:
            raise self._damaged(self._names[s], "the record is missing", i)
        return buf, s, i

    def raw(self, i: int) -> np.ndarray:
        """Zero-copy read-only uint8 view of record ``i``'s payload (JPEG bytes or HWC pixels);
        valid until ``close()``. Every read checks the whole header against the manifest and
        index and the payload's CRC32 (a few microseconds for a 24 kB JPEG), so a damaged
        record is a ``DatasetError`` naming its shard, never a wrong image."""
        buf, s, i = self._value(i)
        # Hot path: one unpack, plain comparisons, no namedtuple.
        if len(buf) >= record.HEADER_SIZE:
            magic, label, h, w, ch, enc, flags, crc, length, index = record.HEADER.unpack_from(buf)
            rest = len(buf) - record.HEADER_SIZE  # a targets block may follow the payload
            sizes = self.sizes  # .item: Python ints, ~4x cheaper than NumPy scalars here
            if (
                magic == record.MAGIC
                and index == i
                and (length == rest or (flags & record.FLAG_TARGETS and length < rest))
                and enc == self._encoding_code
                and ch == 3
                and label == self.labels.item(i)
                and h == sizes.item(i, 0)
                and w == sizes.item(i, 1)
            ):
                payload = memoryview(buf)[record.HEADER_SIZE : record.HEADER_SIZE + length]
                if crc32(payload) == crc:
                    return np.frombuffer(payload, dtype=np.uint8)
                raise self._damaged(self._names[s], "payload CRC32 mismatch", i)
        raise self._damaged(self._names[s], "its header does not match the manifest", i)

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

    def targets(self, i: int, mask_runs: bool = False):
        """Record ``i``'s annotations (``augpipe.targets.Targets``, stored-image pixels);
        DatasetError when the dataset has none or the block is damaged. ``mask_runs``: a
        semantic mask stored as row runs stays so (``augpipe.targets.maskcode.RowRuns``)."""
        from augpipe.targets.layout import TargetsBlockError, decode

        if not self.has_targets:
            raise DatasetError(f"{self.path!r}: this dataset has no targets (packed from images "
                               "only); pack with --coco, --yolo, --voc or --masks")  # fmt: skip
        value = self.value(i)
        try:
            head = record.decode_header(value)
            block = record.targets_block(value, head)
            if block is None:
                raise TargetsBlockError("the record has no targets block")
            return decode(block, (int(self.sizes[i][0]), int(self.sizes[i][1])), check_crc=True,
                          mask_runs=mask_runs)  # fmt: skip
        except ValueError as exc:
            raise DatasetError(f"{self.path!r}: record {i}'s targets are damaged ({exc}); run "
                               "'augpipe inspect --verify' and re-pack") from None  # fmt: skip

    def __getitem__(self, i: int):
        """``(image, label)``, or ``(image, targets)`` for a dataset with targets."""
        if self.has_targets:
            return self.image(i), self.targets(i)
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
