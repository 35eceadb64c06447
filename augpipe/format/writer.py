"""Write one LMDB shard so that its bytes depend only on the records.

A shard is a single-file LMDB environment (``subdir=False``), ``shard-NNNNN.lmdb``. It is
built in ``NAME.build``: records are put with ``append=True`` in key order; the transaction is
committed every ``COMMIT_BYTES`` of payload (bounded memory for the replay list) and whenever
the map must grow. The map starts at twice the shard budget and doubles before the estimated
use would pass 75%; if LMDB still reports MapFullError, the uncommitted records are replayed
into a larger map. So MDB_MAP_FULL never reaches the user, at any size.

A shard built in one transaction (under ``COMMIT_BYTES`` of payload, no map growth: most small
shards) is renamed into place as it is: appended pages are allocated in key order and none is
ever freed, so it is already compact. Otherwise the environment is copied with compaction
(``env.copy(compact=True)``): the copy walks the B-tree in key order, so leaf and overflow
pages lie in key order, freed pages from earlier commits vanish, and the transaction id is
reset. Commit points and map sizes depend only on record sizes, so either way the final file is
byte-identical for the same records (LMDB zero-fills unused page bytes: ``meminit`` stays on).
"""

from __future__ import annotations

import os

import lmdb

from augpipe.format import record

COMMIT_BYTES = 64 << 20
PAGE = 4096


def _estimate(value_len: int) -> int:
    """Generous bytes an LMDB value of this size occupies (overflow pages are page-rounded)."""
    if value_len > PAGE // 2:
        return (value_len + 16 + PAGE - 1) // PAGE * PAGE + 64
    return value_len + 64


class ShardWriter:
    def __init__(self, path: str, budget_bytes: int, first: int):
        self.path = path
        self.first = first  # index of the shard's first record
        self.build_path = path + ".build"
        self.map_size = max(16 << 20, 2 * budget_bytes)
        self.count = 0
        self.payload_bytes = 0
        self._used = 1 << 20  # estimate, starts with room for meta and branch pages
        self._pending: list[tuple[bytes, bytes]] = []
        self._pending_bytes = 0
        self._commits = 0
        self._env = lmdb.open(
            self.build_path,
            subdir=False,
            map_size=self.map_size,
            lock=False,  # private temp file, one writer: no lock file, nothing pid-dependent
            sync=False,  # durability comes from fsync of the compacted copy
            metasync=False,
            readahead=False,
            meminit=True,
            max_dbs=0,
        )
        self._txn = self._env.begin(write=True)

    def add(self, index: int, value: bytes) -> None:
        est = _estimate(len(value))
        if self._used + est > self.map_size * 3 // 4:
            self._commit()
            while self._used + est > self.map_size * 3 // 4:
                self.map_size *= 2
            self._env.set_mapsize(self.map_size)
            self._txn = self._env.begin(write=True)
        key = record.key(index)
        self._put(key, value)
        self._pending.append((key, value))
        self._pending_bytes += len(value)
        self._used += est
        self.count += 1
        self.payload_bytes += len(value)
        if self._pending_bytes >= COMMIT_BYTES:
            self._commit()
            self._txn = self._env.begin(write=True)

    def _put(self, key: bytes, value: bytes) -> None:
        try:
            self._txn.put(key, value, append=True)
            return
        except lmdb.MapFullError:
            pass
        while True:  # the estimate was short: abort, grow, replay what this transaction had
            self._txn.abort()
            self.map_size *= 2
            self._env.set_mapsize(self.map_size)
            self._txn = self._env.begin(write=True)
            try:
                for k, v in self._pending:
                    self._txn.put(k, v, append=True)
                self._txn.put(key, value, append=True)
                return
            except lmdb.MapFullError:
                continue

    def _commit(self) -> None:
        self._txn.commit()
        self._commits += 1
        self._txn = None
        self._pending.clear()
        self._pending_bytes = 0

    def close(self) -> int:
        """Commit, write the compacted final file, fsync it; returns its size in bytes."""
        self._commit()
        if os.path.exists(self.path):
            os.unlink(self.path)
        if self._commits == 1:  # one transaction: nothing freed, the copy would only cost time
            self._env.close()
            os.rename(self.build_path, self.path)
        else:
            self._env.copy(self.path, compact=True)
            self._env.close()
            os.unlink(self.build_path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return os.path.getsize(self.path)

    def abort(self) -> None:
        try:
            if self._txn is not None:
                self._txn.abort()
            self._env.close()
        except lmdb.Error:
            pass
