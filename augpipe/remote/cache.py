"""A node's bounded cache of one remote dataset's shards.

Layout: ``cache_dir/<dataset key>/<shard name>`` (complete, checked shards),
``<name>.part`` (a download in progress; counts as its full size), ``<name>.sha256`` (what the
file was checked against), ``.locks/`` (see ``locks.py``), ``.meta-<hash>/`` (the manifest and
index as last read from the source, for this run's workers).  Every process of a node (ranks,
workers) shares it; one download per shard per node.

Eviction, when a download needs room: shards that no process pins, those not in the current
manifest first, then the one whose next use is furthest away (``next_use``, set by the
Loader from the known order); a shard in any process's live window is pinned and never
evicted.  Without a schedule (a plain ``ShardDataset``), the least recently fetched goes.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time

from augpipe.errors import RemoteError, bad_param
from augpipe.remote import fetch
from augpipe.remote.locks import FileLock
from augpipe.remote.urls import join

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_ROOM_WAIT_S = 300.0


def parse_size(value, name: str = "cache_limit") -> int | None:
    """``"50GB"``, ``"1.5GiB"``, ``"800MB"`` or a number of bytes -> bytes (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise bad_param(name, "a size such as '50GB', '800MiB' or a number of bytes", value)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{math.ceil(n / scale * 100) / 100:g}{unit}"
    return f"{int(n)}B"


class ShardCache:
    """Shards of the dataset at ``url`` (fsspec ``fs``, path ``root``) in ``directory``."""

    def __init__(self, fs, root: str, url: str, directory: str, shards: list[dict],
                 limit: int | None = None, retry: fetch.Retry | None = None):  # fmt: skip
        self.fs, self.root, self.url, self.dir = fs, root, url, directory
        self.limit = limit
        self.retry = retry or fetch.Retry()
        self.size = {s["name"]: int(s.get("bytes", 0)) for s in shards}
        self.tag = {s["name"]: s.get("sha256") or f"size-{s.get('bytes')}" for s in shards}
        self.sha = {s["name"]: s.get("sha256") for s in shards}
        os.makedirs(os.path.join(directory, ".locks"), exist_ok=True)
        self.next_use = None  # name -> steps until its next use (inf: not needed again)
        self.downloads = 0  # by this process
        self._pins: dict[str, list] = {}
        self._mutex = threading.RLock()

    # ---------------------------------------------------------------- paths and state

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _lock(self, name: str, kind: str) -> FileLock:
        return FileLock(os.path.join(self.dir, ".locks", f"{name}.{kind}"))

    def present(self, name: str) -> bool:
        """The shard is here, complete, and was checked against this manifest."""
        try:
            with open(self.path(name) + ".sha256", encoding="ascii") as f:
                tag = f.read().strip()
            return tag == self.tag[name] and os.path.getsize(self.path(name)) == self.size[name]
        except (OSError, UnicodeDecodeError):
            return False

    def used_bytes(self) -> int:
        """Bytes the shards (complete or downloading) of this directory take."""
        total = 0
        for entry in os.scandir(self.dir):
            n = entry.name
            if n.startswith(".") or n.endswith(".sha256") or not entry.is_file():
                continue
            base = n[: -len(".part")] if n.endswith(".part") else n
            if n.endswith(".part") and not self._download_running(base):
                _unlink(entry.path)  # left by a process that died mid-download
                continue
            total += self.size.get(base, 0) if n.endswith(".part") else entry.stat().st_size
        return total

    def _download_running(self, name: str) -> bool:
        lock = self._lock(name, "dl")
        if lock.try_exclusive():
            lock.release()
            return False
        return True

    # ---------------------------------------------------------------- pins

    def pin(self, name: str) -> None:
        """Keep ``name`` from eviction (by any process) until ``unpin``; counted."""
        with self._mutex:
            entry = self._pins.get(name)
            if entry is None:
                self._pins[name] = [self._lock(name, "pin").shared(), 1]
            else:
                entry[1] += 1

    def unpin(self, name: str) -> None:
        with self._mutex:
            entry = self._pins.get(name)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._pins[name]
                entry[0].release()

    def unpin_all(self) -> None:
        with self._mutex:
            for lock, _ in self._pins.values():
                lock.release()
            self._pins.clear()

    # ---------------------------------------------------------------- fetch and evict

    def ensure(self, name: str, required: bool = True) -> bool:
        """Make shard ``name`` present. ``required=False`` (prefetch) gives up, returning False,
        rather than wait for room or evict a shard needed sooner than this one."""
        if self.present(name):
            return True
        with self._lock(name, "dl"):  # one download per shard per node; the others wait here
            if self.present(name):
                return True
            if not self._reserve(name, required):
                return False
            _unlink(self.path(name) + ".sha256")
            what = f"{join(self.url, name)!r}"
            try:
                fetch.download(self.fs, join(self.root, name), self.path(name), self.size[name],
                               self.sha[name], self.retry, what)  # fmt: skip
            except BaseException:
                _unlink(self.path(name) + ".part")
                raise
            _write_atomic(self.path(name) + ".sha256", self.tag[name])
            self.downloads += 1
        return True

    def _reserve(self, name: str, required: bool) -> bool:
        """Room for ``name``, made by evicting; the ``.part`` file is the reservation."""
        need = self.size[name]
        deadline = time.monotonic() + _ROOM_WAIT_S
        while True:
            with self._lock("cache", "lock"):
                used = self.used_bytes()
                if self.limit is None or used + need <= self.limit:
                    open(self.path(name) + ".part", "wb").close()
                    return True
                if self._evict(used + need - self.limit, name, required):
                    continue
            if not required:
                return False
            if time.monotonic() > deadline:
                raise RemoteError(
                    f"cache_limit: {format_size(self.limit)} is full of shards that processes "
                    f"of this node still need ({format_size(used)} used, {name!r} needs "
                    f"{format_size(need)}); raise cache_limit"
                )
            time.sleep(0.05)

    def _evict(self, excess: int, incoming: str, required: bool) -> bool:
        """Delete unpinned shards, furthest next use first, until ``excess`` bytes are gone."""
        nxt = self.next_use
        mine = nxt(incoming) if nxt is not None else 0.0
        cands = []
        for entry in os.scandir(self.dir):
            n = entry.name
            if n.startswith(".") or n.endswith((".part", ".sha256")) or not entry.is_file():
                continue
            if n not in self.size:
                key = math.inf  # not in this manifest: never needed
            elif nxt is not None:
                key = nxt(n)
            else:
                key = -entry.stat().st_mtime  # no schedule: least recently fetched first
            if not required and key <= mine:
                continue  # a prefetch never pushes out a shard needed sooner than its own
            cands.append((key, n))
        freed = 0
        for _, n in sorted(cands, reverse=True):
            if freed >= excess:
                break
            lock = self._lock(n, "pin")
            if not lock.try_exclusive():
                continue  # in some process's live window
            try:
                size = os.path.getsize(self.path(n))
                _unlink(self.path(n) + ".sha256")
                _unlink(self.path(n))
                freed += size
            except OSError:
                pass
            finally:
                lock.release()
        return freed > 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_atomic(path: str, text: str) -> None:
    head, tail = os.path.split(path)
    tmp = os.path.join(head, f".{tail}.{os.getpid()}.tmp")  # dot names are not shards
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
