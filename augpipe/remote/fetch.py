"""Downloads that either deliver the manifest's exact bytes or say why not.

A shard is read whole into ``<name>.part``, its size and SHA-256 compared with the manifest's,
then renamed into place (readers never see a partial file).  Transient failures (HTTP 5xx,
dropped connections, short bodies, timeouts, a checksum mismatch) are retried with exponential
back-off; after the last try a ``RemoteError`` names the file, the tries and the last error.
A missing file or a refused permission is not retried.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from augpipe.errors import RemoteError

CHUNK = 4 << 20


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry: ``tries`` attempts, waiting ``base_s * 2**k``
    (at most ``max_s``) after failure k."""

    tries: int = 6
    base_s: float = 0.25
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * (2**attempt))


class Mismatch(OSError):
    """Downloaded bytes that differ from the manifest (short, long or corrupted)."""


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError))


def with_retries(what: str, fn, retry: Retry):
    """``fn()``, retried on transient errors; ``what`` names the file in the final error."""
    last: BaseException | None = None
    for attempt in range(retry.tries):
        try:
            return fn()
        except Exception as exc:  # fsspec backends raise many unrelated types
            if _permanent(exc):
                raise RemoteError(f"{what}: not found or not readable ({_describe(exc)})") from None
            last = exc
        if attempt + 1 < retry.tries:
            time.sleep(retry.delay(attempt))
    raise RemoteError(
        f"{what}: gave up after {retry.tries} tries (last error: {_describe(last)}); check the "
        "URL, the network and the credentials (storage_options), or retry later"
    ) from None


def _describe(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_bytes(fs, path: str, what: str, retry: Retry) -> bytes:
    """A small file (manifest, index) read whole, with retries."""
    return with_retries(what, lambda: fs.cat_file(path), retry)


def _copy_once(fs, src: str, part: str, size: int, sha256: str | None) -> None:
    h = hashlib.sha256()
    got = 0
    with fs.open(src, "rb", block_size=CHUNK) as f, open(part, "wb") as out:
        while got <= size:
            block = f.read(min(CHUNK, size + 1 - got))
            if not block:
                break
            h.update(block)
            out.write(block)
            got += len(block)
        out.flush()
        os.fsync(out.fileno())
    if got != size:
        raise Mismatch(f"{'short' if got < size else 'long'} body: {got} bytes, expected {size}")
    if sha256 and h.hexdigest() != sha256:
        raise Mismatch(f"SHA-256 {h.hexdigest()[:16]}... differs from the manifest's")


def download(fs, src: str, dest: str, size: int, sha256: str | None, retry: Retry,
             what: str) -> None:  # fmt: skip
    """Fetch ``src`` to ``dest`` via ``dest + '.part'``: whole, checked, renamed into place.

    The caller holds the shard's download lock, so no one else writes ``.part``; a failed
    attempt leaves ``.part`` (the cache's space reservation) to be overwritten by the next.
    """
    part = dest + ".part"

    def attempt():
        _copy_once(fs, src, part, size, sha256)
        os.replace(part, dest)

    with_retries(what, attempt, retry)
