"""``augpipe inspect URL [--verify]``: the summary of a remote dataset (its manifest and index,
read from the source) and, with ``--verify``, every shard downloaded, checked against the
manifest's SHA-256, and every record checked as for a local dataset."""

from __future__ import annotations

import os
import tempfile

from augpipe.errors import RemoteError
from augpipe.format import inspect
from augpipe.format import manifest as mf


def summary(ds) -> dict:
    s = inspect.summary(ds.view, check_files=False)
    s.update(path=ds.url, bytes_on_disk=ds.cache.used_bytes(), cache=ds.cache.dir)
    return s


def verify(ds, progress: bool = False) -> list[str]:
    """Problems found, one line each (empty: every shard and record is fine)."""
    problems = []
    for name in ds._names:
        try:
            ds.cache.ensure(name)
        except RemoteError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        return problems
    with tempfile.TemporaryDirectory(prefix="augpipe-verify-") as tmp:
        for name in (mf.MANIFEST, mf.INDEX):  # a local dataset made of links into the cache
            os.symlink(os.path.join(ds.view, name), os.path.join(tmp, name))
        for name in ds._names:
            os.symlink(ds.cache.path(name), os.path.join(tmp, name))
        return inspect.verify(tmp, progress=progress)
