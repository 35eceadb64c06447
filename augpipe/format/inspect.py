"""Summaries and full verification of a packed dataset (``augpipe inspect``).

``verify`` checks, for every shard: the file's SHA-256 against the manifest; that LMDB opens
it; that its keys are exactly the manifest's record range, in order. For every record: the
header parses (magic, length), its index, label, height and width agree with the key and
``index.npy``, the payload's CRC32 matches, and the payload decodes (JPEG) or has
``H * W * 3`` bytes (raw). Each problem is one line naming the shard and record.

liblmdb only ever sees a file whose structure ``lmdb_check.check_shard`` has verified in Python
first (a damaged B-tree or meta page, or a truncated file, is reported for that shard and its
records are not read), so damage anywhere is a report, never a crash of ``inspect``.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import numpy as np

from augpipe.format import manifest as mf
from augpipe.format import record
from augpipe.format.dataset import acquire_env, release_env
from augpipe.format.lmdb_check import check_shard
from augpipe.targets import inspect as targets_inspect


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def summary(path, check_files: bool = True) -> dict:
    """A JSON-ready description of the dataset at ``path`` (DatasetError when invalid)."""
    manifest, index = mf.load(path, check_files=check_files)
    classes = manifest["classes"]
    labelled = index[index[:, 0] >= 0, 0]  # -1: a detection record has no image label
    counts = np.bincount(labelled, minlength=len(classes)) if len(labelled) else [0] * len(classes)
    sizes = index[:, 1:3].astype(np.float64)
    shard_bytes = sum(s["bytes"] for s in manifest["shards"])
    return {
        "path": str(path),
        "format_version": manifest["format_version"],
        "count": manifest["count"],
        "encoding": manifest["encoding"],
        "classes": {name: int(c) for name, c in zip(classes, counts)},
        "shards": len(manifest["shards"]),
        "shard_bytes": int(shard_bytes),
        "bytes_on_disk": _dir_bytes(Path(path)),
        "mean_record_bytes": shard_bytes / max(1, manifest["count"]),
        "mean_height": float(sizes[:, 0].mean()) if len(sizes) else 0.0,
        "mean_width": float(sizes[:, 1].mean()) if len(sizes) else 0.0,
        "min_side": int(sizes.min()) if len(sizes) else 0,
        "max_side": int(sizes.max()) if len(sizes) else 0,
        "skipped": manifest.get("skipped", 0),
        "options": manifest.get("options", {}),
        "stats": manifest["stats"],
        "targets": targets_inspect.summary(manifest),
    }


def _check_payload(value, head: record.RecordHeader, encoding: str) -> str | None:
    if not record.check_crc(value, head):
        return "CRC32 mismatch (payload bytes changed since packing)"
    payload = np.frombuffer(value, dtype=np.uint8, count=head.length, offset=record.HEADER_SIZE)
    if encoding == "raw":
        if payload.size != head.height * head.width * 3:
            return f"raw payload has {payload.size} bytes, expected {head.height}x{head.width}x3"
        return None
    import cv2

    img = cv2.imdecode(payload, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        return "JPEG payload does not decode"
    if img.shape[:2] != (head.height, head.width):
        return (
            f"JPEG decodes to {img.shape[0]}x{img.shape[1]} (HxW), "
            f"header says {head.height}x{head.width}"
        )
    return None


def _verify_shard(root: Path, shard: dict, index: np.ndarray, encoding: str,
                  targets: tuple = (False, 0)) -> list[str]:  # fmt: skip
    name, first, count = shard["name"], shard["first"], shard["count"]
    problems = []
    file = root / name
    if shard.get("sha256") and mf.sha256_file(file) != shard["sha256"]:
        problems.append(f"{name}: SHA-256 of the file differs from the manifest (file changed)")
    size = file.stat().st_size
    if isinstance(shard.get("bytes"), int) and size != shard["bytes"]:
        problems.append(f"{name}: file is {size} bytes, the manifest says {shard['bytes']} "
                        "(truncated or replaced)")  # fmt: skip
    structure = check_shard(file, first, count)
    if structure is not None:  # never hand a damaged file to liblmdb
        return [*problems, f"{name}: {structure}"]
    try:
        env = acquire_env(str(file), readahead=True)
    except lmdb.Error as exc:
        return [*problems, f"{name}: LMDB cannot open it ({exc})"]
    expected = first
    code = record.ENCODINGS[encoding]
    try:
        with env.begin(buffers=True) as txn:
            for k, value in txn.cursor():
                i = int.from_bytes(bytes(k), "big") if len(k) == 8 else -1
                where = f"{name} record {i}"
                if i != expected:
                    problems.append(f"{where}: unexpected key (expected record {expected})")
                    if i < first or i >= first + count:
                        continue
                expected = i + 1
                try:
                    head = record.decode_header(value)
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                label, h, w = (int(v) for v in index[i])
                if (head.index, head.label, head.height, head.width) != (i, label, h, w):
                    problems.append(
                        f"{where}: header (index {head.index}, label {head.label}, "
                        f"{head.height}x{head.width}) disagrees with index.npy "
                        f"(label {label}, {h}x{w})"
                    )
                if head.encoding != code or head.channels != 3:
                    problems.append(f"{where}: encoding/channels {head.encoding}/{head.channels}")
                bad = _check_payload(value, head, encoding)
                if bad:
                    problems.append(f"{where}: {bad}")
                bad = targets_inspect.check(value, head, *targets)
                if bad:
                    problems.append(f"{where}: targets: {bad}")
    except lmdb.Error as exc:
        problems.append(f"{name}: LMDB error while reading ({exc})")
    finally:
        release_env(str(file))
    if expected != first + count:
        problems.append(
            f"{name}: holds records up to {expected - 1}, expected {first}..{first + count - 1}"
        )
    return problems


def verify(path, progress: bool = False) -> list[str]:
    """Every problem found in the dataset at ``path``, one line each; [] when it is sound."""
    manifest, index = mf.load(path)
    root = Path(path)
    problems = []
    if manifest.get("index", {}).get("sha256") not in (None, mf.sha256_file(root / mf.INDEX)):
        problems.append(f"{mf.INDEX}: SHA-256 differs from the manifest (file changed)")
    shards = manifest["shards"]
    if progress:
        from tqdm import tqdm

        shards = tqdm(shards, unit="shard", leave=False)
    for shard in shards:
        targets = (isinstance(manifest.get("targets"), dict), len(manifest["classes"]))
        problems += _verify_shard(root, shard, index, manifest["encoding"], targets)
    return problems


def format_summary(s: dict) -> str:
    """Human-readable lines for ``summary()``'s dict."""
    st = s["stats"]
    fmt3 = lambda v: "[" + ", ".join(f"{x:.4f}" for x in v) + "]"  # noqa: E731
    lines = [
        f"{s['path']}: {s['count']} records, {len(s['classes'])} classes, {s['encoding']}"
        + (f" (quality {s['options'].get('quality')})" if s["encoding"] == "jpeg" else ""),
        f"  shards: {s['shards']}, {s['shard_bytes'] / 1e6:.2f} MB "
        f"({s['bytes_on_disk'] / 1e6:.2f} MB on disk), "
        f"{s['mean_record_bytes'] / 1e3:.1f} kB/record",
        f"  stored size: mean {s['mean_height']:.0f}x{s['mean_width']:.0f} (HxW), "
        f"sides {s['min_side']}..{s['max_side']}",
        f"  skipped at pack time: {s['skipped']}",
        f"  mean {fmt3(st['mean'])}  std {fmt3(st['std'])}  (RGB, [0,1])",
        f"  eigval {fmt3(st['eigval'])}",
        "  eigvec rows R,G,B (column k = k-th eigenvector) "
        + " ".join(fmt3(row) for row in st["eigvec"]),
        "  classes:",
    ]
    items = list(s["classes"].items())
    shown = items if len(items) <= 20 else items[:10] + [("...", None)] + items[-5:]
    for name, count in shown:
        lines.append(f"    {name}" if count is None else f"    {name}: {count}")
    if s.get("targets"):
        lines += targets_inspect.format_lines(s["targets"])
    return os.linesep.join(lines)
