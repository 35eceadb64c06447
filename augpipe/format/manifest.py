"""``manifest.json`` and ``index.npy``: what a packed dataset holds, and their validation.

The manifest is plain JSON (see docs/format.md for every field). ``index.npy`` is an int32
(N, 3) array of [label, stored height, stored width] per record, loaded with
``allow_pickle=False`` so it can never run code. Both are written without timestamps, so the
same input and options give identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from augpipe.errors import DatasetError

FORMAT_NAME = "augpipe-shards"
FORMAT_VERSION = 3  # 2: records may carry a targets block (docs/targets.md); 3: row-run masks
READ_VERSIONS = (1, 2, 3)  # version 1 (no targets) and 2 (PNG semantic masks) read unchanged
MANIFEST = "manifest.json"
INDEX = "index.npy"
SKIPPED = "skipped.tsv"


def sha256_file(path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json(path, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def write_index(path, index: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(index, dtype="<i4"), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _fail(path, problem: str, fix: str = "") -> DatasetError:
    msg = f"{str(path)!r}: {problem}"
    return DatasetError(msg + (f"; {fix}" if fix else ""))


def load(path, check_files: bool = True) -> tuple[dict, np.ndarray]:
    """Read and validate the manifest and index of the dataset at ``path``.

    ``check_files=False`` skips the shard files' presence (a remote dataset's local view holds
    only its manifest and index; the shards arrive later, each checked on download).
    """
    root = Path(path)
    repack = "re-create it with 'augpipe pack'"
    if not root.exists():
        raise _fail(path, "no such packed dataset", "check the path or run 'augpipe pack' first")
    if not root.is_dir():
        raise _fail(path, "not a packed dataset (expected a directory with manifest.json)")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise _fail(
            path,
            "no manifest.json: not a packed dataset, or a pack that did not finish",
            repack,
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, f"manifest.json is not valid JSON ({exc})", repack) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _fail(path, f"manifest.json is not an {FORMAT_NAME} manifest", repack)
    version = manifest.get("format_version")
    if version not in READ_VERSIONS:
        raise _fail(
            path,
            f"format version {version!r} is not supported (this augpipe reads "
            f"{', '.join(map(str, READ_VERSIONS))})",
            "upgrade augpipe or re-pack with this version",
        )
    for field, kind in (("count", int), ("classes", list), ("encoding", str), ("shards", list),
                        ("stats", dict)):  # fmt: skip
        if not isinstance(manifest.get(field), kind):
            raise _fail(path, f"manifest.json field {field!r} is missing or not a {kind.__name__}")
    if manifest["encoding"] not in ("jpeg", "raw"):
        raise _fail(path, f"unknown encoding {manifest['encoding']!r} (expected 'jpeg' or 'raw')")
    first = 0
    for shard in manifest["shards"]:
        count = shard.get("count") if isinstance(shard, dict) else None
        if not isinstance(count, int) or count < 1 or shard.get("first") != first:
            raise _fail(path, f"manifest.json shard list is inconsistent at {shard!r}", repack)
        name = shard.get("name", "")
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise _fail(path, f"manifest.json has an invalid shard name {name!r}", repack)
        if check_files and not (root / name).is_file():
            raise _fail(path, f"shard file {name!r} is missing", repack)
        first += count
    if first != manifest["count"]:
        raise _fail(path, f"shards hold {first} records but the manifest says {manifest['count']}")
    index = load_index(root, manifest["count"])
    lowest = -1 if isinstance(manifest.get("targets"), dict) else 0  # -1: no image label
    if manifest["count"] and (
        index[:, 0].min() < lowest or index[:, 0].max() >= len(manifest["classes"])
    ):
        raise _fail(path, "index.npy has labels outside the class list", repack)
    return manifest, index


def load_index(root: Path, count: int) -> np.ndarray:
    ipath = root / INDEX
    try:
        index = np.load(ipath, allow_pickle=False)
    except FileNotFoundError:
        raise _fail(root, "index.npy is missing", "re-create it with 'augpipe pack'") from None
    except (ValueError, OSError) as exc:
        raise _fail(root, f"index.npy is unreadable ({exc})") from None
    if not isinstance(index, np.ndarray):  # an .npz archive under the .npy name
        raise _fail(root, "index.npy is not a single NumPy array")
    if index.dtype != np.dtype("<i4") or index.shape != (count, 3):
        raise _fail(
            root,
            f"index.npy has shape {index.shape} dtype {index.dtype}, expected ({count}, 3) int32",
        )
    return index


def stats_arrays(manifest: dict) -> dict:
    """The manifest's statistics as NumPy float64 arrays (mean, std, eigval, eigvec)."""
    s = manifest["stats"]
    return {
        "mean": np.asarray(s["mean"], dtype=np.float64),
        "std": np.asarray(s["std"], dtype=np.float64),
        "eigval": np.asarray(s["eigval"], dtype=np.float64),
        "eigvec": np.asarray(s["eigvec"], dtype=np.float64),
    }
