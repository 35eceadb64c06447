"""``merge()``: join the parts of ``pack(..., part=(i, n))`` into one packed dataset.

Example (the parts may have been packed on different machines)::

    from augpipe.format.merge import merge
    for i in range(4):
        pack("photos/", f"parts/p{i}", part=(i, 4), shuffle_seed=0)
    report = merge([f"parts/p{i}" for i in range(4)], "photos.packed")

The parts are taken from the list given, in that order, never by listing a directory, so a
retried or orphaned attempt cannot slip in. Before anything is written, every part must come
from the same inputs and options (their fingerprints match), each of 0/n .. n-1/n must appear
exactly once and in order, and each part's counts must add up; a missing, duplicated,
misordered or foreign part is refused with one line. The records are then streamed through the
same ``ShardSink`` and ``finish_dataset`` as a single pack (payload CRC32s and file SHA-256s
checked on the way), so the result is byte-identical to ``pack()`` of the same inputs and
options, and built in a temp directory renamed into place with manifest.json written last.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from augpipe.errors import UserError
from augpipe.format import parts as pt
from augpipe.format.assemble import ShardSink, check_out, commit_dir, finish_dataset, temp_dir
from augpipe.format.pack import PackReport

_ORDER = "pass every part's directory once, in order 0/N .. N-1/N"


def _names(ks, n) -> str:
    shown = ", ".join(f"{k}/{n}" for k in ks[:8])
    return shown + (f" and {len(ks) - 8} more" if len(ks) > 8 else "")


def check_parts(infos: list[dict]) -> None:
    """Refuse (``UserError``, one line) a list of loaded parts that is not one complete pack."""
    first = infos[0]
    n = first["parts"]
    for info in infos[1:]:
        if info["fingerprint"] != first["fingerprint"] or info["parts"] != n:
            raise UserError(
                f"merge: part {info['path']!r} ({info['part']}/{info['parts']}) was packed from "
                f"other inputs or options than {first['path']!r} ({first['part']}/{n}); "
                "merge only the parts of one 'augpipe pack ... --part i/N' run"
            )
    seen: dict[int, str] = {}
    for info in infos:
        if info["part"] in seen:
            raise UserError(
                f"merge: part {info['part']}/{n} given twice ({seen[info['part']]!r} and "
                f"{info['path']!r}); {_ORDER}"
            )
        seen[info["part"]] = info["path"]
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise UserError(f"merge: part(s) {_names(missing, n)} missing ({len(infos)} of {n} "
                        f"given); {_ORDER}")  # fmt: skip
    for k, info in enumerate(infos):
        if info["part"] != k:
            raise UserError(
                f"merge: parts out of order: position {k} holds part {info['part']}/{n} "
                f"({info['path']!r}); {_ORDER}"
            )
        lo, hi = pt.part_range(info["inputs"], k, n)
        skipped = len(info["skipped"])
        if (info["first_input"], info["end_input"]) != (lo, hi) or info["count"] + skipped != (
            hi - lo
        ):
            raise UserError(
                f"merge: part {info['path']!r} holds {info['count']} records + {skipped} skipped "
                f"for inputs {info['first_input']}..{info['end_input']}, expected {hi - lo} "
                f"inputs {lo}..{hi}; re-run that part"
            )


def merge(part_dirs, out, *, overwrite: bool = False, progress: bool = True) -> PackReport:
    """Join the part directories ``part_dirs`` (in this order) into the dataset ``out``."""
    from tqdm import tqdm

    start = time.perf_counter()
    part_dirs = [str(p) for p in part_dirs]
    if not part_dirs:
        raise UserError("merge: no parts given; pass PART... OUT")
    infos = [pt.load_part(p) for p in part_dirs]
    check_parts(infos)
    out = Path(out)
    check_out(out, overwrite)
    first = infos[0]
    options = first["options"]
    report = PackReport(out=str(out), merged=len(infos))
    tmp = temp_dir(out)
    sink = ShardSink(tmp, first["encoding"], int(options["shard_size_mb"] * (1 << 20)), report)
    total = sum(info["count"] for info in infos)
    bar = tqdm(total=total, unit="img", disable=None if progress else True, leave=False)
    try:
        for info in infos:
            for label, h, w, payload, crc in pt.read_records(info):
                sink.add(label, h, w, payload, crc)
                bar.update(1)
            sink.total += np.asarray(info["stats_sums"], dtype=np.int64)
            report.skipped.extend((path, reason) for path, reason in info["skipped"])
        sink.close()
        report.packed = sink.count
        finish_dataset(tmp, first["classes"], first["inputs"], first["encoding"], options,
                       sink, report)  # fmt: skip
        commit_dir(tmp, out, overwrite)
    except BaseException:
        sink.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return report
