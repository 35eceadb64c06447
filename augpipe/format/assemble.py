"""Assembling a dataset directory: the output side shared by ``pack`` and ``merge``.

``check_out`` refuses an existing OUT unless asked to replace it; ``temp_dir`` makes the hidden
sibling ``.OUT.tmp-HOST-PID`` to build in (removing stale ones of dead processes on this
machine); ``ShardSink`` writes records in order into shards; ``finish_dataset`` writes
index.npy, skipped.tsv and, last, manifest.json; ``commit_dir`` syncs and renames the result
into place. Because pack and merge write through these same functions, the same records in the
same order give the same bytes, wherever they were decoded.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np

from augpipe import __version__
from augpipe.errors import UserError
from augpipe.format import manifest as mf
from augpipe.format import record, stats
from augpipe.format.writer import ShardWriter


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    """This machine's name as it may appear in a file name."""
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def _clean_stale(out: Path) -> None:
    """Remove temp dirs left by packs to the same OUT whose process is gone (killed packs).
    Only this machine's: on a shared file system another machine's pid means nothing here."""
    if not out.parent.is_dir():
        return
    prefix = f".{out.name}.tmp-"
    for p in out.parent.glob(prefix + "*"):
        host, _, pid = p.name[len(prefix) :].rpartition("-")
        if host in ("", _host()) and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def check_out(out: Path, overwrite: bool, marker: str = mf.MANIFEST) -> None:
    """Refuse an existing OUT unless ``overwrite`` and it holds ``marker`` (or is empty)."""
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise UserError(
            f"OUT: {str(out)!r} already exists; choose another path or pass --overwrite "
            "(overwrite=True) to replace it"
        )
    what = "packed dataset" if marker == mf.MANIFEST else "pack part"
    is_ours = out.is_dir() and (out / marker).is_file()
    if not (is_ours or (out.is_dir() and not any(out.iterdir()))):
        raise UserError(
            f"OUT: {str(out)!r} exists and is not a {what} or an empty directory; "
            f"--overwrite only replaces a {what}, remove it yourself if you mean it"
        )


def temp_dir(out: Path) -> Path:
    """A fresh hidden sibling of OUT to build in (stale ones of dead processes removed)."""
    _clean_stale(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{_host()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def commit_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """fsync the finished ``tmp`` and rename it to OUT (replacing an old OUT when allowed)."""
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


class ShardSink:
    """Writes records, in order, into the shards of a dataset being built in ``tmp``.

    The one writing path of ``pack`` and ``merge``: record ``k`` gets index and key ``k``; a
    shard closes before the record that would take its payload over ``budget`` bytes. So the
    same records in the same order give the same bytes, wherever they were decoded::

        sink = ShardSink(tmp, "jpeg", 256 << 20, report)
        sink.add(label, h, w, payload, crc, stats_partial)
        sink.close()  # then finish_dataset(tmp, classes, n_inputs, encoding, options, sink, report)
    """

    def __init__(self, tmp: Path, encoding: str, budget: int, report):
        self.tmp, self.encoding, self.budget, self.report = tmp, encoding, budget, report
        self.shards: list[dict] = []
        self.rows: list[tuple[int, int, int]] = []
        self.total = np.zeros(13, dtype=np.int64)  # exact integer statistics sums
        self._writer: ShardWriter | None = None

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, label: int, h: int, w: int, payload, crc: int, partial=None,
            targets: bytes | None = None) -> None:  # fmt: skip
        idx = len(self.rows)
        value = record.encode(idx, label, h, w, self.encoding, payload, crc, targets)
        if self._writer is not None and self._writer.payload_bytes + len(value) > self.budget:
            self._close_shard()
        if self._writer is None:
            name = f"shard-{len(self.shards):05d}.lmdb"
            self._writer = ShardWriter(str(self.tmp / name), self.budget, first=idx)
        self._writer.add(idx, value)
        self.rows.append((label, h, w))
        if partial is not None:
            self.total += partial

    def close(self) -> None:
        if self._writer is not None:
            self._close_shard()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _close_shard(self) -> None:
        writer, self._writer = self._writer, None
        size = writer.close()
        self.shards.append(
            {
                "name": os.path.basename(writer.path),
                "first": writer.first,
                "count": writer.count,
                "bytes": size,
                "sha256": mf.sha256_file(writer.path),
            }
        )
        self.report.bytes += size
        self.report.shards += 1


def finish_dataset(tmp: Path, classes, n_inputs: int, encoding: str, options: dict, sink, report,
                   targets: dict | None = None):  # fmt: skip
    """Write index.npy, skipped.tsv and, last, manifest.json into ``tmp``; ``targets``: the
    manifest's "targets" entry of a dataset packed with annotations."""
    if report.packed == 0:
        first = report.skipped[0] if report.skipped else ("(no inputs)", "nothing to pack")
        raise UserError(
            f"SRC: none of the {n_inputs} inputs could be packed "
            f"(first problem: {first[0]}: {first[1]})"
        )
    index = np.asarray(sink.rows, dtype="<i4").reshape(-1, 3)
    mf.write_index(tmp / mf.INDEX, index)
    with open(tmp / mf.SKIPPED, "w", encoding="utf-8") as f:
        f.write("path\treason\n")
        for path, reason in report.skipped:
            f.write(f"{path}\t{reason}\n")
    counts = np.bincount(index[index[:, 0] >= 0, 0], minlength=len(classes))  # -1: no label
    manifest = {
        "format": mf.FORMAT_NAME,
        "format_version": mf.FORMAT_VERSION,
        "created_by": f"augpipe {__version__}",
        "count": int(report.packed),
        "encoding": encoding,
        "classes": list(classes),
        "class_counts": counts.tolist(),
        "shards": sink.shards,
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
        "options": options,
        "skipped": len(report.skipped),
        "stats": stats.finish(sink.total),
    }
    if targets is not None:  # the targets' layout, categories, counts, problems
        manifest["targets"] = targets
    mf.write_json(tmp / mf.MANIFEST, manifest)
