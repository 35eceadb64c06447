"""Dataset URLs: which strings are URLs, the fsspec filesystem behind one, and safe names.

fsspec and its backends are optional extras, imported only when a URL needs them::

    pip install "augpipe[s3]"     # s3://  (s3fs; also MinIO and other S3-compatible stores)
    pip install "augpipe[gcs]"    # gs://  (gcsfs)
    pip install "augpipe[http]"   # http:// and https:// (aiohttp)
    pip install "augpipe[azure]"  # az://  (adlfs)

``storage_options`` go to fsspec unchanged (``{"client_kwargs": {"endpoint_url": ...}}`` for an
S3-compatible endpoint, ``{"anon": True}``, credentials); each backend's own environment
variables (``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...) work as usual.
"""

from __future__ import annotations

import os
import re

from augpipe.errors import DatasetError, RemoteError

# scheme -> (extra, module that the scheme needs)
_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "http": ("http", "aiohttp"),
    "https": ("http", "aiohttp"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "file": (None, None),
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme(path) -> str | None:
    """The URL scheme of ``path`` (``"s3"``), or None for a plain local path."""
    if not isinstance(path, str):
        return None
    m = _SCHEME.match(path)
    return m.group(1).lower() if m else None


def is_url(path) -> bool:
    return scheme(path) is not None


def join(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name


def filesystem(url: str, storage_options: dict | None = None):
    """``(fs, root)``: the fsspec filesystem for ``url`` and the dataset's path inside it."""
    sch = scheme(url)
    extra, module = _EXTRAS.get(sch, (sch, None))
    try:
        import fsspec
    except ImportError:
        raise RemoteError(
            f'{url!r}: reading a URL needs fsspec; pip install "augpipe[{extra or "http"}]"'
        ) from None
    if module is not None:
        try:
            __import__(module)
        except ImportError:
            raise RemoteError(
                f'{url!r}: {sch}:// URLs need the {module} package; pip install "augpipe[{extra}]"'
            ) from None
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise RemoteError(f"{url!r}: fsspec cannot open this URL ({exc})") from None
    if sch in ("http", "https"):
        root = url.rstrip("/")  # the http filesystem takes whole URLs
    return fs, root.rstrip("/")


def check_name(name, url: str) -> str:
    """A shard or file name from a manifest, refused unless it is one plain file name.

    A stranger's manifest must not make us write outside the cache directory: no separator,
    no ``..`` or hidden name, no absolute path, no NUL, nothing a URL would reinterpret.
    """
    ok = (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and not name.startswith(".")
        and not any(c in name for c in ("/", "\\", "\0", ":", "?", "#", "%"))
        and os.path.basename(name) == name
        and not os.path.isabs(name)
    )
    if not ok:
        raise DatasetError(
            f"{url!r}: manifest.json has an invalid shard name {name!r} (a plain file name "
            "without separators, '..' or a leading dot is required); the manifest is not an "
            "augpipe pack's, re-create it with 'augpipe pack'"
        )
    return name
