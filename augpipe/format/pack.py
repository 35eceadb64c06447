"""``pack()``: images -> a packed dataset directory (LMDB shards + manifest.json + index.npy).

Example::

    from augpipe import pack
    report = pack("photos/", "photos.packed", format="jpeg", quality=90, short_side=256, workers=2)
    print(report.packed, len(report.skipped), report.bytes, report.seconds)

The dataset is built in a hidden sibling ``.OUT.tmp-HOST-PID`` and renamed to OUT only when
complete, so an interrupted or failed pack leaves nothing at OUT; stale temp directories of dead
packs on this machine are removed by the next pack to the same OUT. Shard boundaries depend only
on record sizes and ``shard_size_mb``; records are written by this process in input order, so
shards are byte-identical for any ``workers``.

``part=(i, n)`` (CLI ``--part i/N``) packs only the i-th of n contiguous slices of the inputs
into a *part* directory (``format/parts.py``); ``augpipe.format.merge.merge`` joins the parts
through the same ``ShardSink`` and ``finish_dataset`` (``format/assemble.py``) as a single
pack, so the merged dataset is byte-identical to it. ``shuffle_seed`` permutes the sorted
inputs first (``rng.permutation``), so class-sorted sources do not make single-class shards.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from augpipe import rng
from augpipe.errors import InputImageError, UserError, bad_param
from augpipe.format import manifest as mf
from augpipe.format import parts, restart, sources
from augpipe.format.assemble import ShardSink, check_out, commit_dir, finish_dataset, temp_dir
from augpipe.format.imageio import DEFAULT_MAX_PIXELS, BadImage
from augpipe.format.workers import run_ordered


@dataclass
class PackReport:
    out: str
    packed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    bytes: int = 0  # total size of the shard files
    seconds: float = 0.0
    shards: int = 0
    part: str = ""  # "i/N" for a part written by pack(part=...)
    merged: int = 0  # parts joined, for a report of merge()
    annotation_problems: int = 0  # datasets with targets: lines of annotations.tsv
    without_restarts: int = 0  # restart_rows: JPEGs stored without markers (format/restart.py)

    def summary(self) -> str:
        rate = self.packed / self.seconds if self.seconds > 0 else 0.0
        skipped = f"{len(self.skipped)} skipped"
        if self.part:
            what = f"packed part {self.part}: {self.packed} images"
            if self.skipped:
                skipped += f" (reasons in {os.path.join(self.out, parts.PART_JSON)})"
            where = "unmerged records"
        else:
            what = f"merged {self.merged} parts: " if self.merged else "packed "
            what += f"{self.packed} images"
            if self.skipped:
                skipped += f" (reasons in {os.path.join(self.out, mf.SKIPPED)})"
            if self.annotation_problems:
                skipped += (f", {self.annotation_problems} annotation problem(s) (in "
                            f"{os.path.join(self.out, 'annotations.tsv')})")  # fmt: skip
            where = f"{self.shards} shard(s)"
        if self.without_restarts:
            skipped += (f", {self.without_restarts} JPEG(s) stored without restart markers "
                        "(augpipe.format.restart.try_add_restarts says why)")  # fmt: skip
        return (
            f"{what}, {skipped}, {where}, "
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


def packing_order(source, shuffle_seed: int | None) -> list[tuple[str, int]]:
    """The inputs in the order they are packed: sorted (the source's order), then permuted by
    ``rng.permutation(n, shuffle_seed, 0)`` when a seed is given."""
    if shuffle_seed is None:
        return list(source.items)
    if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int) or shuffle_seed < 0:
        raise bad_param("shuffle_seed", "a non-negative integer (or None: sorted order)",
                        shuffle_seed)  # fmt: skip
    perm = rng.permutation(len(source.items), shuffle_seed, 0)
    return [source.items[k] for k in perm]


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
    restart_rows: bool = True,
    shuffle_seed: int | None = None,
    part=None,
    progress: bool = True,
    coco=None,
    yolo=None,
    voc=None,
    masks=None,
) -> PackReport:
    """Pack an ImageFolder tree ``src`` (or ``list_file`` lines ``path label`` relative to
    ``root``, default ``src`` or the list's folder) into the dataset directory ``out``.

    Bad inputs are skipped and listed in ``out/skipped.tsv``; with ``strict=True`` the first one
    raises ``InputImageError`` naming the file and nothing is written. ``keep_jpeg=True``
    stores source JPEGs that need no change as they are (see ``imageio.load_for_pack``).
    ``restart_rows`` (default True) writes restart markers every k MCUs, k dividing the MCU row
    (``format/restart.py``), into the JPEGs it encodes (+4-6% bytes, the same pixels), so that
    region decodes entropy-decode only the segments under a crop; ``False`` writes plain JPEGs.
    Kept JPEGs get the markers by a lossless transcode (``augpipe.format.restart.add_restarts``:
    the same pixels).
    ``shuffle_seed``: pack the inputs in a seeded random order instead of sorted order.
    ``part="i/N"`` (or ``(i, N)``): write only part i (0-based) of N to ``out``, a part
    directory for ``augpipe.format.merge.merge``. ``coco`` (instances JSON, images under
    ``root``), ``yolo``, ``voc`` or ``masks`` (folders) pack detection / segmentation / keypoint
    targets with each image (docs/targets.md).
    """
    _check_options(format, quality, max_side, short_side, shard_size_mb, workers, max_pixels)
    part = parts.parse_part(part)
    start = time.perf_counter()
    from augpipe.targets.source import open_source

    source = open_source(coco=coco, yolo=yolo, voc=voc, masks=masks, root=root)
    if source is not None:
        if list_file is not None or src is not None:
            raise UserError("pack: with --coco/--yolo/--voc/--masks give only OUT (no SRC/--list)")
        if part is not None:
            raise UserError("pack: --part does not carry targets yet; pack a dataset with "
                            "--coco/--yolo/--voc/--masks in one job")  # fmt: skip
    elif list_file is not None:
        source = sources.list_file(list_file, root if root is not None else src)
    else:
        if src is None:
            raise bad_param("src", "an image folder", src, "or pass list_file=")
        source = sources.image_folder(src)
    items = packing_order(source, shuffle_seed)
    out = Path(out)
    check_out(out, overwrite, mf.MANIFEST if part is None else parts.PART_JSON)
    opts = {
        "format": format,
        "quality": quality,
        "max_side": max_side,
        "short_side": short_side,
        "max_pixels": max_pixels,
        "keep_jpeg": bool(keep_jpeg) and format == "jpeg",
        "restart_rows": bool(restart_rows) and format == "jpeg",
    }
    options = manifest_options(opts, shard_size_mb, shuffle_seed)
    lo, hi = (0, len(items)) if part is None else parts.part_range(len(items), *part)
    tmp = temp_dir(out)
    report = PackReport(out=str(out))
    try:
        if part is None:
            sink = ShardSink(tmp, opts["format"], int(shard_size_mb * (1 << 20)), report)
        else:
            sink = parts.PartWriter(tmp)
        _consume(items, lo, hi, source, opts, workers, strict, progress, report, sink)
        if part is None:
            targets = source.finish(tmp) if hasattr(source, "finish") else None
            report.annotation_problems = targets["problems"] if targets else 0
            finish_dataset(tmp, source.classes, len(items), format, options, sink, report,
                           targets)  # fmt: skip
        else:
            info = parts.part_info(part, items, source, format, options, lo, hi)
            sink.finish(info, report)
        commit_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - start
    return report


def manifest_options(opts: dict, shard_size_mb, shuffle_seed) -> dict:
    """The manifest's ``options``: everything besides the inputs that decides the bytes."""
    return {
        "quality": opts["quality"] if opts["format"] == "jpeg" else None,
        "max_side": opts["max_side"],
        "short_side": opts["short_side"],
        "max_pixels": opts["max_pixels"],
        "keep_jpeg": opts["keep_jpeg"],
        "restart_rows": opts.get("restart_rows", False),
        "shard_size_mb": shard_size_mb,
        "shuffle_seed": shuffle_seed,
    }


def _consume(items, lo, hi, source, opts, workers, strict, progress, report, sink):
    """Process inputs ``lo .. hi-1`` of ``items`` and hand each good one to ``sink.add`` in
    order; bad ones go to ``report.skipped`` (or raise, ``strict``)."""
    from tqdm import tqdm

    work = [(pos, items[pos][0]) for pos in range(lo, hi)]  # global positions: stats streams
    results = run_ordered(work, opts, workers)  # workers start before tqdm's monitor thread
    bar = tqdm(total=len(work), unit="img", disable=None if progress else True, leave=False)
    try:
        for pos, ok, h, w, payload, partial, crc in results:
            bar.update(1)
            path, label = items[pos]
            tblock = None
            if ok and hasattr(source, "block"):  # detection/segmentation targets
                try:
                    tblock = source.block(path, h, w)
                except BadImage as exc:
                    ok, payload = False, str(exc)
            if not ok:
                if strict:
                    raise InputImageError(
                        f"{path}: {payload}; fix or remove the file, or pack without --strict "
                        "to skip bad files"
                    )
                report.skipped.append((source.relative(path), payload))
                continue
            if opts.get("restart_rows") and not restart.has_restarts(payload):
                report.without_restarts += 1  # a kept JPEG the transcode refused
            if tblock is None:  # (parts carry no targets)
                sink.add(label, h, w, payload, crc, partial)
            else:
                sink.add(label, h, w, payload, crc, partial, tblock)
        sink.close()
    finally:
        results.close()
        bar.close()
        sink.abort()
    report.packed = sink.count
