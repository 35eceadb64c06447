"""Pack as N parts + merge, against one pack: the wall time of a scaled-out pack.

    python bench/merge_speed.py [--corpus data/corpus/photos] [--images 2000] [--parts 4]
                                [--workers 2] [--repeats 3] [--quick] [--no-write]

Takes ``--images`` images spread evenly over the corpus (a list file, as bench/pack_speed.py
does), packs them once whole and once as ``--parts`` parts one after another on this machine
(``pack(..., part=(i, N))``, ``--shuffle 0``, JPEG q90, ``--workers``), then merges the parts.
Reported, median of ``--repeats`` after one discarded warm-up: the single pack's seconds; each
part's seconds (their maximum is the wall time when the parts run on N machines at once); the
merge's seconds and MB/s (a sequential copy of the payloads, no decoding); and whether the
merged dataset is byte-identical to the single pack (it must be). Writes the
``## Pack in parts + merge`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PHOTOS,
    machine_metadata,
    metadata_line,
    shown,
    write_results_section,  # noqa: E402
)
from bench.pack_speed import make_list  # noqa: E402


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def one_round(list_file: Path, corpus: Path, tmp: Path, parts: int, workers: int) -> dict:
    from augpipe.format.merge import merge
    from augpipe.format.pack import pack

    for d in tmp.glob("r-*"):
        shutil.rmtree(d)
    kw = dict(list_file=list_file, root=corpus, shuffle_seed=0, workers=workers, progress=False)
    t0 = time.perf_counter()
    single = pack(None, tmp / "r-single", **kw)
    t_single = time.perf_counter() - t0
    t_parts, dirs = [], []
    for i in range(parts):
        t0 = time.perf_counter()
        pack(None, tmp / f"r-part{i}", part=(i, parts), **kw)
        t_parts.append(time.perf_counter() - t0)
        dirs.append(tmp / f"r-part{i}")
    t0 = time.perf_counter()
    merge(dirs, tmp / "r-merged", progress=False)
    t_merge = time.perf_counter() - t0
    same = _files(tmp / "r-single") == _files(tmp / "r-merged")
    return {"single_s": t_single, "parts_s": t_parts, "merge_s": t_merge,
            "mb": single.bytes / 1e6, "images": single.packed, "identical": same}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=PHOTOS)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 images, 1 repeat, no RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats, args.no_write = 200, 1, True
    if not args.corpus.is_dir():
        print(f"merge_speed: no corpus at {args.corpus}; make it with tools/make_photo_corpus.py",
              file=sys.stderr)  # fmt: skip
        return 2
    with tempfile.TemporaryDirectory(prefix="augpipe-merge-speed-") as t:
        tmp = Path(t)
        n = make_list(args.corpus, args.images, tmp / "list.txt")
        rounds = [one_round(tmp / "list.txt", args.corpus, tmp, args.parts, args.workers)
                  for _ in range(args.repeats + 1)][1:]  # fmt: skip
    med = {k: statistics.median(r[k] for r in rounds) for k in ("single_s", "merge_s", "mb")}
    part_max = statistics.median(max(r["parts_s"]) for r in rounds)
    part_sum = statistics.median(sum(r["parts_s"]) for r in rounds)
    identical = all(r["identical"] for r in rounds)
    wall = part_max + med["merge_s"]
    text = "\n".join([
        f"`python bench/merge_speed.py --images {args.images} --parts {args.parts} --workers "
        f"{args.workers}`: {n} images of `{shown(args.corpus)}` (JPEG q90, `--shuffle 0`), "
        f"median of {args.repeats} rounds after a warm-up. The parts ran one after another "
        "here; their maximum is the wall time on N machines at once.",
        "",
        "| | seconds | note |",
        "|---|---:|---|",
        f"| single pack | {med['single_s']:.2f} | {n / med['single_s']:.0f} images/s |",
        f"| {args.parts} parts, slowest | {part_max:.2f} | sum of all parts {part_sum:.2f} |",
        f"| merge | {med['merge_s']:.2f} | {med['mb'] / med['merge_s']:.0f} MB/s "
        f"({med['mb']:.0f} MB) |",
        f"| slowest part + merge | {wall:.2f} | {med['single_s'] / wall:.2f}x faster than one "
        "pack |",
        "",
        f"Merged dataset byte-identical to the single pack: {'yes' if identical else 'NO'}.",
        "",
        metadata_line(machine_metadata()),
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_results_section("Pack in parts + merge", text)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
