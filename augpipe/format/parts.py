"""Pack parts: what ``pack(..., part=(i, n))`` writes and ``merge`` reads.

A part holds the records of inputs ``i*N//n .. (i+1)*N//n - 1`` of the N inputs in packing
order, already decoded, resized, encoded and summed into statistics, but not yet given their
record index (that needs the counts of the parts before it, known only at merge)::

    PART/
      records.bin   the payloads back to back, in input order
      records.npy   int64 (count, 5): label, height, width, payload length, CRC32
      part.json     written last: which part of how many, a fingerprint of all the inputs and
                    options, the skipped inputs, the exact statistics sums, SHA-256 of both files

A part is built in a hidden temp directory and renamed into place like a dataset, so a part
directory is either complete or absent; it has no manifest.json, so it never opens as a dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np

from augpipe import __version__
from augpipe.errors import DatasetError, bad_param
from augpipe.format import manifest as mf

PART_FORMAT = "augpipe-pack-part"
PART_VERSION = 1
PART_JSON = "part.json"
RECORDS = "records.bin"
ROWS = "records.npy"
_PART_HELP = (
    "0-based, e.g. --part 3/16; in a Slurm array: --array=0-15 and "
    "--part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
)


def parse_part(value) -> tuple[int, int] | None:
    """``None``, ``"i/N"`` or ``(i, N)`` -> ``None`` or ``(i, N)`` with ``0 <= i < N``."""
    if value is None:
        return None
    expected = "'i/N' with integers 0 <= i < N"
    try:
        if isinstance(value, str):
            i, n = (int(v) for v in value.split("/"))
        else:
            i, n = value
            if (
                isinstance(i, bool)
                or isinstance(n, bool)
                or not (isinstance(i, int) and isinstance(n, int))
            ):
                raise TypeError
    except (TypeError, ValueError):
        raise bad_param("part", expected, value, _PART_HELP) from None
    if not 0 <= i < n:
        raise bad_param("part", expected, value, _PART_HELP)
    return i, n


def part_range(n_inputs: int, i: int, n: int) -> tuple[int, int]:
    """Inputs ``lo .. hi-1`` (positions in packing order) belong to part i of n."""
    return i * n_inputs // n, (i + 1) * n_inputs // n


def fingerprint(items, source, encoding: str, options: dict) -> str:
    """SHA-256 over everything that decides a pack's bytes: every input (path relative to the
    source root, label) in packing order, the classes, the encoding, the options, the version."""
    h = hashlib.sha256()
    head = [__version__, encoding, options, list(source.classes), len(items)]
    h.update(json.dumps(head, sort_keys=True).encode())
    for path, label in items:
        h.update(json.dumps([source.relative(path), label]).encode() + b"\n")
    return h.hexdigest()


def part_info(part, items, source, encoding: str, options: dict, lo: int, hi: int) -> dict:
    """The part.json fields known before packing (``PartWriter.finish`` adds the results)."""
    return {
        "format": PART_FORMAT,
        "format_version": PART_VERSION,
        "created_by": f"augpipe {__version__}",
        "part": part[0],
        "parts": part[1],
        "inputs": len(items),
        "first_input": lo,
        "end_input": hi,
        "fingerprint": fingerprint(items, source, encoding, options),
        "classes": list(source.classes),
        "encoding": encoding,
        "options": options,
    }


class PartWriter:
    """Collects a part's records (``add`` in input order), then ``finish`` writes part.json."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.rows: list[tuple[int, int, int, int, int]] = []
        self.total = np.zeros(13, dtype=np.int64)
        self._f = open(tmp / RECORDS, "wb")
        self._sha = hashlib.sha256()
        self.bytes = 0

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, label: int, h: int, w: int, payload, crc: int, partial) -> None:
        self._f.write(payload)
        self._sha.update(payload)
        self.bytes += len(payload)
        self.rows.append((label, h, w, len(payload), crc))
        self.total += partial

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()

    def finish(self, info: dict, report) -> None:
        with open(self.tmp / ROWS, "wb") as f:
            np.save(f, np.asarray(self.rows, dtype="<i8").reshape(-1, 5), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        info = dict(info)
        info.update(
            count=self.count,
            skipped=[list(s) for s in report.skipped],
            stats_sums=[int(v) for v in self.total],
            records={"file": RECORDS, "bytes": self.bytes, "sha256": self._sha.hexdigest()},
            rows={"file": ROWS, "sha256": mf.sha256_file(self.tmp / ROWS)},
        )
        mf.write_json(self.tmp / PART_JSON, info)
        report.bytes = self.bytes
        report.part = f"{info['part']}/{info['parts']}"


def _bad(path, problem: str) -> DatasetError:
    return DatasetError(f"PART {str(path)!r}: {problem}")


def load_part(path) -> dict:
    """Read and check a part's part.json and records.npy; ``info["rows"]`` becomes the array."""
    root = Path(path)
    redo = "re-run its 'augpipe pack ... --part i/N'"
    if not (root / PART_JSON).is_file():
        hint = " (that is a packed dataset)" if (root / mf.MANIFEST).is_file() else ""
        raise _bad(path, f"not a pack part: no {PART_JSON}{hint}; give the directories that "
                   "'augpipe pack SRC PART --part i/N' wrote")  # fmt: skip
    try:
        info = json.loads((root / PART_JSON).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(path, f"{PART_JSON} is not valid JSON ({exc}); {redo}") from None
    if not isinstance(info, dict) or info.get("format") != PART_FORMAT:
        raise _bad(path, f"{PART_JSON} is not an {PART_FORMAT} file; {redo}")
    if info.get("format_version") != PART_VERSION:
        raise _bad(path, f"part format version {info.get('format_version')!r} is not "
                   f"{PART_VERSION}; pack and merge with the same augpipe")  # fmt: skip
    for name in ("part", "parts", "inputs", "first_input", "end_input", "count"):
        if not isinstance(info.get(name), int):
            raise _bad(path, f"{PART_JSON} field {name!r} is missing or not an integer; {redo}")
    rows_file = root / ROWS
    if not rows_file.is_file() or mf.sha256_file(rows_file) != info["rows"]["sha256"]:
        raise _bad(path, f"{ROWS} is missing or changed since packing (SHA-256); {redo}")
    rows = np.load(rows_file, allow_pickle=False)
    if rows.dtype != np.dtype("<i8") or rows.shape != (info["count"], 5):
        raise _bad(path, f"{ROWS} holds {rows.shape} {rows.dtype}, expected "
                   f"({info['count']}, 5) int64; {redo}")  # fmt: skip
    size = int(rows[:, 3].sum())
    rec = root / RECORDS
    if not rec.is_file() or rec.stat().st_size != size or size != info["records"]["bytes"]:
        raise _bad(path, f"{RECORDS} is missing or not the {size} bytes its rows describe; {redo}")
    info["rows"] = rows
    info["path"] = str(path)
    return info


def read_records(info: dict, chunk: int = 64 << 20):
    """Yield (label, height, width, payload, crc) of a loaded part in order, each payload's
    CRC32 checked; the file's SHA-256 is checked at the end (before the caller commits)."""
    sha = hashlib.sha256()
    with open(Path(info["path"]) / RECORDS, "rb", buffering=chunk) as f:
        for k, (label, h, w, n, crc) in enumerate(info["rows"].tolist()):
            payload = f.read(n)
            sha.update(payload)
            if zlib.crc32(payload) != crc:
                raise _bad(info["path"], f"record {k} of {RECORDS}: CRC32 mismatch (damaged "
                           "since packing); re-run this part")  # fmt: skip
            yield label, h, w, payload, crc
    if sha.hexdigest() != info["records"]["sha256"]:
        raise _bad(info["path"], f"{RECORDS} changed since packing (SHA-256); re-run this part")
