"""``pack()``: images -> a packed dataset directory (LMDB shards + manifest.json + index.npy).

Example::

    from augpipe import pack
    report = pack("photos/", "photos.packed", format="jpeg", quality=90, short_side=256, workers=2)
    print(report.packed, len(report.skipped), report.bytes, report.seconds)

The dataset is built in a hidden sibling ``.OUT.tmp-PID`` and renamed to OUT only when complete,
so an interrupted or failed pack leaves nothing at OUT; stale temp directories of dead packs are
removed by the next pack to the same OUT. Shard boundaries depend only on record sizes and
``shard_size_mb``; records are written by this process in input order, so shards are
byte-identical for any ``workers``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from augpipe import __version__
from augpipe.errors import InputImageError, UserError, bad_param
from augpipe.format import manifest as mf
from augpipe.format import record, sources, stats
from augpipe.format.imageio import DEFAULT_MAX_PIXELS
from augpipe.format.workers import run_ordered
from augpipe.format.writer import ShardWriter


@dataclass
class PackReport:
    out: str
    packed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    bytes: int = 0  # total size of the shard files
    seconds: float = 0.0
    shards: int = 0

    def summary(self) -> str:
        rate = self.packed / self.seconds if self.seconds > 0 else 0.0
        skipped = f"{len(self.skipped)} skipped"
        if self.skipped:
            skipped += f" (reasons in {os.path.join(self.out, mf.SKIPPED)})"
        return (
            f"packed {self.packed} images, {skipped}, {self.shards} shard(s), "
            f"{self.bytes / 1e6:.1f} MB, {rate:.0f} images/s in {self.seconds:.1f} s -> {self.out}"
        )


def _check_options(fmt, quality, max_side, short_side, shard_size_mb, workers, max_pixels):
    if fmt not in ("jpeg", "raw"):
        raise bad_param("format", "'jpeg' or 'raw'", fmt)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise bad_param("quality", "an integer in [1, 100]", quality, "90 is a good default")
    for name, v in (("max_side", max_side), ("short_side", short_side)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad_param(name, "an integer >= 0 (0 keeps the original size)", v)
    if max_side and short_side:
        raise bad_param(
            "max_side/short_side", "at most one of them", (max_side, short_side), "pass only one"
        )
    if not isinstance(shard_size_mb, (int, float)) or not shard_size_mb > 0:
        raise bad_param("shard_size", "a positive number of MiB", shard_size_mb)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise bad_param("workers", "an integer >= 1", workers)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise bad_param("max_pixels", "a positive integer", max_pixels)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove temp dirs left by packs to the same OUT whose process is gone (killed packs)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise UserError(
            f"OUT: {str(out)!r} already exists; choose another path or pass --overwrite "
            "(overwrite=True) to replace it"
        )
    is_dataset = out.is_dir() and (out / mf.MANIFEST).is_file()
    if not (is_dataset or (out.is_dir() and not any(out.iterdir()))):
        raise UserError(
            f"OUT: {str(out)!r} exists and is not a packed dataset or an empty directory; "
            "--overwrite only replaces packed datasets, remove it yourself if you mean it"
        )


def pack(
    src,
    out,
    *,
    list_file=None,
    root=None,
    format: str = "jpeg",
    quality: int = 90,
    max_side: int = 0,
    short_side: int = 0,
    shard_size_mb: float = 256,
    workers: int = 1,
    strict: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
    keep_jpeg: bool = False,
    progress: bool = True,
) -> PackReport:
    """Pack an ImageFolder tree ``src`` (or ``list_file`` lines ``path label`` relative to
    ``root``, default ``src`` or the list's folder) into the dataset directory ``out``.

    Bad inputs are skipped and listed in ``out/skipped.tsv``; with ``strict=True`` the first one
    raises ``InputImageError`` naming the file and nothing is written. ``keep_jpeg=True``
    stores source JPEGs that need no change as they are (see ``imageio.load_for_pack``).
    """
    _check_options(format, quality, max_side, short_side, shard_size_mb, workers, max_pixels)
    start = time.perf_counter()
    if list_file is not None:
        source = sources.list_file(list_file, root if root is not None else src)
    else:
        if src is None:
            raise bad_param("src", "an image folder", src, "or pass list_file=")
        source = sources.image_folder(src)
    out = Path(out)
    _check_out(out, overwrite)
    _clean_stale(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    opts = {
        "format": format,
        "quality": quality,
        "max_side": max_side,
        "short_side": short_side,
        "max_pixels": max_pixels,
        "keep_jpeg": bool(keep_jpeg) and format == "jpeg",
    }
    report = PackReport(out=str(out))
    try:
        shards, index, total = _write_shards(
            source, tmp, opts, int(shard_size_mb * (1 << 20)), workers, strict, progress, report
        )
        _finish(tmp, out, source, opts, shard_size_mb, shards, index, total, report, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - start
    return report


def _write_shards(source, tmp, opts, budget, workers, strict, progress, report):
    from tqdm import tqdm

    items = [(pos, path) for pos, (path, _) in enumerate(source.items)]
    shards: list[dict] = []
    rows: list[tuple[int, int, int]] = []
    total = np.zeros(13, dtype=np.float64)
    writer = None
    results = run_ordered(items, opts, workers)  # workers start before tqdm's monitor thread
    bar = tqdm(total=len(items), unit="img", disable=None if progress else True, leave=False)
    try:
        for pos, ok, h, w, payload, part, crc in results:
            bar.update(1)
            path, label = source.items[pos]
            if not ok:
                if strict:
                    raise InputImageError(
                        f"{path}: {payload}; fix or remove the file, or pack without --strict "
                        "to skip bad files"
                    )
                report.skipped.append((source.relative(path), payload))
                continue
            idx = len(rows)
            value = record.encode(idx, label, h, w, opts["format"], payload, crc)
            if writer is not None and writer.payload_bytes + len(value) > budget:
                _close_shard(writer, shards, report)
                writer = None
            if writer is None:
                name = f"shard-{len(shards):05d}.lmdb"
                writer = ShardWriter(str(tmp / name), budget, first=idx)
            writer.add(idx, value)
            rows.append((label, h, w))
            total += part
        if writer is not None:
            _close_shard(writer, shards, report)
            writer = None
    finally:
        results.close()
        bar.close()
        if writer is not None:
            writer.abort()
    report.packed = len(rows)
    index = np.asarray(rows, dtype="<i4").reshape(-1, 3)
    return shards, index, total


def _close_shard(writer: ShardWriter, shards: list, report: PackReport) -> None:
    size = writer.close()
    name = os.path.basename(writer.path)
    shards.append(
        {
            "name": name,
            "first": writer.first,
            "count": writer.count,
            "bytes": size,
            "sha256": mf.sha256_file(writer.path),
        }
    )
    report.bytes += size
    report.shards += 1


def _finish(tmp, out, source, opts, shard_size_mb, shards, index, total, report, overwrite):
    if report.packed == 0:
        raise UserError(
            f"SRC: none of the {len(source.items)} inputs could be packed "
            f"(first problem: {report.skipped[0][0]}: {report.skipped[0][1]})"
        )
    mf.write_index(tmp / mf.INDEX, index)
    with open(tmp / mf.SKIPPED, "w", encoding="utf-8") as f:
        f.write("path\treason\n")
        for path, reason in report.skipped:
            f.write(f"{path}\t{reason}\n")
    counts = np.bincount(index[:, 0], minlength=len(source.classes))
    manifest = {
        "format": mf.FORMAT_NAME,
        "format_version": mf.FORMAT_VERSION,
        "created_by": f"augpipe {__version__}",
        "count": int(report.packed),
        "encoding": opts["format"],
        "classes": list(source.classes),
        "class_counts": counts.tolist(),
        "shards": shards,
        "index": {
            "file": mf.INDEX,
            "dtype": "<i4",
            "columns": ["label", "height", "width"],
            "sha256": mf.sha256_file(tmp / mf.INDEX),
        },
        "record": {
            "header_bytes": record.HEADER_SIZE,
            "key": "record index, 8 bytes big-endian",
            "lmdb": "one single-file environment per shard (subdir=False)",
        },
        "options": {
            "quality": opts["quality"] if opts["format"] == "jpeg" else None,
            "max_side": opts["max_side"],
            "short_side": opts["short_side"],
            "max_pixels": opts["max_pixels"],
            "keep_jpeg": opts["keep_jpeg"],
            "shard_size_mb": shard_size_mb,
        },
        "skipped": len(report.skipped),
        "stats": stats.finish(total),
    }
    mf.write_json(tmp / mf.MANIFEST, manifest)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if overwrite and (out.exists() or out.is_symlink()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
