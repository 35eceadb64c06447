"""``RemoteShardDataset``: a packed dataset behind an fsspec URL, shards cached on this node.

Example::

    ds = ShardDataset("s3://bucket/photos.packed", cache_dir="/scratch/augpipe",
                      cache_limit="50GB", storage_options={"anon": True})
    img = ds.image(0)         # fetches (once per node) and opens the shard that holds record 0

``ShardDataset(url, ...)`` returns one of these.  The manifest and index are always read from
the source (a cached copy is never trusted); every shard name is checked before anything is
written; the index is checked against the manifest's SHA-256.  Shards are fetched on first use
(or ahead of use by the ``Loader``), checked against the manifest's size and SHA-256, and
opened from the cache read-only like a local dataset's.  A process notices within a few dozen
records that a shard it has open was evicted and closes it, so its disk space is freed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

from augpipe.errors import DatasetError
from augpipe.format import manifest as mf
from augpipe.format.dataset import ShardDataset, acquire_env, release_env
from augpipe.format.lmdb_check import check_shard
from augpipe.remote import fetch
from augpipe.remote.cache import ShardCache, parse_size
from augpipe.remote.urls import check_name, filesystem, join

_SWEEP_EVERY = 64  # records between checks that the open shards were not evicted


def default_cache_dir() -> str:
    return os.environ.get("AUGPIPE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "augpipe"
    )


def dataset_key(url: str, storage_options: dict | None) -> str:
    """The cache sub-directory of one dataset: readable tail + hash of URL and endpoint."""
    endpoint = ((storage_options or {}).get("client_kwargs") or {}).get("endpoint_url")
    digest = hashlib.sha256(json.dumps([url.rstrip("/"), endpoint]).encode()).hexdigest()
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1]).lstrip(".")
    return f"{tail[:40] or 'dataset'}-{digest[:12]}"


class RemoteShardDataset(ShardDataset):
    """A packed dataset at an fsspec URL (see the module docstring)."""

    _check_files = False

    def __init__(self, path, readahead: bool = False, *, cache_dir=None, cache_limit=None,
                 storage_options: dict | None = None, retry: fetch.Retry | None = None,
                 _meta: str | None = None):  # fmt: skip
        self.url = str(path).rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.cache_limit = parse_size(
            cache_limit if cache_limit is not None else os.environ.get("AUGPIPE_CACHE_LIMIT")
        )
        self.cache_root = str(cache_dir or default_cache_dir())
        self.retry = retry or fetch.Retry()
        fs, root = filesystem(self.url, self.storage_options)
        directory = os.path.join(self.cache_root, dataset_key(self.url, self.storage_options))
        os.makedirs(directory, exist_ok=True)
        if _meta is None:
            view, self.manifest_sha256 = self._fetch_meta(fs, root, directory)
        else:  # a worker: the view its main process just read from the source, by hash
            view, self.manifest_sha256 = os.path.join(directory, f".meta-{_meta}"), _meta
            got = mf.sha256_file(os.path.join(view, mf.MANIFEST))
            if got != _meta:
                raise DatasetError(f"{self.url!r}: the cached manifest changed under this run")
        super().__init__(view, readahead)
        self.view, self.path = self.path, self.url
        for name in self._names:
            check_name(name, self.url)
        self.cache = ShardCache(fs, root, self.url, directory, self.manifest["shards"],
                                self.cache_limit, self.retry)  # fmt: skip

    def _fetch_meta(self, fs, root: str, directory: str) -> tuple[str, str]:
        raw = fetch.read_bytes(fs, join(root, mf.MANIFEST), f"{join(self.url, mf.MANIFEST)!r}",
                               self.retry)  # fmt: skip
        try:
            manifest = json.loads(raw)
            shards = manifest["shards"]
            names = [s["name"] for s in shards]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"{self.url!r}: manifest.json is not an augpipe manifest ({exc}); "
                "re-create it with 'augpipe pack'"
            ) from None
        for name in names:  # before anything at all is written
            check_name(name, self.url)
        digest = hashlib.sha256(raw).hexdigest()
        index = fetch.read_bytes(fs, join(root, mf.INDEX), f"{join(self.url, mf.INDEX)!r}",
                                 self.retry)  # fmt: skip
        want = (manifest.get("index") or {}).get("sha256")
        if want and hashlib.sha256(index).hexdigest() != want:
            raise DatasetError(
                f"{join(self.url, mf.INDEX)!r}: SHA-256 differs from the manifest's; the "
                "dataset at the source is damaged, re-pack and upload it"
            )
        view = os.path.join(directory, f".meta-{digest}")
        if not os.path.isdir(view):
            tmp = f"{view}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for name, data in ((mf.MANIFEST, raw), (mf.INDEX, index)):
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            try:
                os.rename(tmp, view)
            except OSError:  # another process of this node wrote the same view first
                shutil.rmtree(tmp, ignore_errors=True)
        return view, digest

    # ---------------------------------------------------------------- pickling (workers)

    def __getstate__(self) -> dict:
        return {"path": self.url, "readahead": self.readahead, "cache_dir": self.cache_root,
                "cache_limit": self.cache_limit, "storage_options": self.storage_options,
                "meta": self.manifest_sha256}  # fmt: skip

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state.get("readahead", False), cache_dir=state["cache_dir"],
                      cache_limit=state["cache_limit"], storage_options=state["storage_options"],
                      _meta=state["meta"])  # fmt: skip

    def to_dict(self) -> dict:
        """Plain data for a fresh worker interpreter (``from_dict`` rebuilds it there from the
        manifest this process read, checked by its hash)."""
        return self.__getstate__()

    @classmethod
    def from_dict(cls, data: dict) -> RemoteShardDataset:
        obj = cls.__new__(cls)
        obj.__setstate__(data)
        return obj

    def __repr__(self) -> str:
        return (f"RemoteShardDataset({self.url!r}: {len(self)} records, {len(self._names)} "
                f"shard(s), cache {self.cache.dir!r})")  # fmt: skip

    # ---------------------------------------------------------------- shard handles

    def validate(self) -> None:
        """Nothing to check up front: each shard is checked when it arrives (size, SHA-256)
        and its LMDB structure when this process first opens it."""

    def _validate_shard(self, s: int, file: str) -> None:
        shard = self.manifest["shards"][s]
        problem = check_shard(file, shard["first"], shard["count"])
        if problem is not None:
            raise self._damaged(shard["name"], problem)

    def _open(self) -> None:
        self._envs, self._txns = [], _LazyTxns(self)
        self._pid = os.getpid()

    def _close_handles(self) -> None:
        txns = self._txns
        if isinstance(txns, _LazyTxns):
            txns.close_all()
        self._envs, self._txns = [], []

    def shard_files(self):
        """The shards' files in the cache, each downloaded first if it is not there."""
        from pathlib import Path

        self.fetch_all()
        return [Path(self.cache.path(n)) for n in self._names]

    def fetch_all(self) -> None:
        """Download every shard not yet in the cache (``augpipe inspect --verify``)."""
        for name in self._names:
            self.cache.ensure(name)


class _LazyTxns:
    """``txns[s]``: shard s's read transaction, fetched and opened on first use."""

    def __init__(self, ds: RemoteShardDataset):
        self.ds = ds
        self.open: dict[int, tuple] = {}  # shard -> (txn, file, inode)
        self.calls = 0

    def __getitem__(self, s: int):
        entry = self.open.get(s)
        self.calls += 1
        if entry is not None and self.calls % _SWEEP_EVERY:
            return entry[0]
        self.sweep(keep=s)
        entry = self.open.get(s)
        if entry is None:
            entry = self.open[s] = self._open(s)
        return entry[0]

    def _open(self, s: int) -> tuple:
        ds = self.ds
        name = ds._names[s]
        ds.cache.ensure(name)
        file = ds.cache.path(name)
        inode = os.stat(file).st_ino
        ds._validate_shard(s, file)
        env = acquire_env(file, ds.readahead)
        return env.begin(buffers=True), file, inode

    def sweep(self, keep: int) -> None:
        """Close shards whose file was evicted (or replaced) since they were opened."""
        for s, (txn, file, inode) in list(self.open.items()):
            if s == keep:
                continue
            try:
                same = os.stat(file).st_ino == inode
            except FileNotFoundError:
                same = False
            if not same:
                del self.open[s]
                txn.abort()
                release_env(file)

    def close_all(self) -> None:
        for txn, file, _ in self.open.values():
            txn.abort()
            release_env(file)
        self.open.clear()
