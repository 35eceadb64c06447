"""File locks in the cache directory (``flock``), shared by every process of a node.

The kernel releases an ``flock`` when its holder exits, however it exits, so a crashed or
killed run leaves nothing that blocks the next one (no named shared memory, no PID files).
Per shard: ``.locks/<name>.dl`` (held exclusively while one process downloads it; the others
wait and then find the file) and ``.locks/<name>.pin`` (held shared while a process needs the
shard; eviction takes it exclusively without waiting, so a pinned shard is never deleted).
``.locks/cache.lock`` serialises the space accounting of the node.
"""

from __future__ import annotations

import fcntl
import os


class FileLock:
    """One lock file; ``shared``/``exclusive`` block, ``try_exclusive`` does not."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def _open(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self.fd

    def shared(self) -> FileLock:
        fcntl.flock(self._open(), fcntl.LOCK_SH)
        return self

    def exclusive(self) -> FileLock:
        fcntl.flock(self._open(), fcntl.LOCK_EX)
        return self

    def try_exclusive(self) -> bool:
        try:
            fcntl.flock(self._open(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops its lock
            self.fd = None

    def __enter__(self) -> FileLock:
        return self.exclusive()

    def __exit__(self, *exc) -> None:
        self.release()
